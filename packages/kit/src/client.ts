/**
 * Service-to-service clients: gRPC over HTTP/2 (connect-node) that inject the caller's W3C
 * trace context and, given an actor key, sign every call the contract says is signed —
 * the same rule and signature scheme the server enforces.
 */
import { toBinary, type DescMessage, type DescService, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Interceptor, type StreamRequest } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { SpanKind, SpanStatusCode, context, propagation, trace } from "@opentelemetry/api";

import { defaultIsSigned } from "./server/auth.js";
import { authorityOf, signRequest, streamDigest } from "./signing/http-signature.js";
import type { ActorKey } from "./signing/keys.js";
import { tracer } from "./telemetry.js";

/**
 * A CLIENT span per call (`{service}/{method}`, `rpc.system=grpc`, `rpc.service`, `rpc.method`,
 * `rpc.grpc.status_code`, `server.address`/`server.port`) whose context is injected into the
 * outgoing metadata (traceparent, tracestate), so the server's span is its child. Any status
 * but OK is an error of a client span. A streamed response's span lasts until the stream ends.
 */
export function traceInjector(): Interceptor {
  return (next) => async (req) => {
    const url = new URL(req.url);
    const span = tracer().startSpan(`${req.service.typeName}/${req.method.name}`, {
      kind: SpanKind.CLIENT,
      attributes: {
        "rpc.system": "grpc",
        "rpc.service": req.service.typeName,
        "rpc.method": req.method.name,
        "server.address": url.hostname,
        "server.port": Number(url.port || (url.protocol === "https:" ? 443 : 80)),
      },
    });
    let ended = false;
    const end = (e?: unknown): void => {
      if (ended) return;
      ended = true;
      const ce = e === undefined ? undefined : ConnectError.from(e);
      span.setAttribute("rpc.grpc.status_code", ce?.code ?? 0);
      if (ce) span.setStatus({ code: SpanStatusCode.ERROR, message: ce.rawMessage });
      span.end();
    };
    const ctx = trace.setSpan(context.active(), span);
    propagation.inject(ctx, req.header, { set: (h: Headers, k: string, v: string) => h.set(k, v) });
    try {
      const res = await context.with(ctx, () => next(req));
      if (!res.stream) {
        end();
        return res;
      }
      const message = res.message;
      return {
        ...res,
        message: (async function* () {
          let finished = false;
          try {
            yield* message;
            finished = true;
            end();
          } catch (e) {
            finished = true;
            end(e);
            throw e;
          } finally {
            if (!finished) end(new ConnectError("the stream was cancelled", Code.Canceled));
          }
        })(),
      };
    } catch (e) {
      end(e);
      throw e;
    }
  };
}

/** The signed `content-digest` of a client stream of `messages` (see StreamDigest). */
export function messageStreamDigest<D extends DescMessage>(schema: D, messages: Iterable<MessageShape<D>>): string {
  return streamDigest(
    (function* () {
      for (const m of messages) yield toBinary(schema, m);
    })(),
  );
}

/**
 * Signs calls of signed methods with RFC 9421 metadata over method, authority (of the URL
 * called), path and the digest of the protobuf encoding. A client stream is signed over all
 * its messages: give its digest in a `content-digest` request header (messageStreamDigest,
 * computed in a first pass) to stream it without holding it; otherwise the stream is read
 * into memory first to compute it.
 */
export function requestSigner(key: ActorKey): Interceptor {
  return (next) => async (req) => {
    if (!defaultIsSigned(req.method)) return next(req);
    const target = { method: "POST", authority: authorityOf(req.url), path: `/${req.service.typeName}/${req.method.name}` };
    if (!req.stream) {
      const sig = signRequest({ key, ...target, body: toBinary(req.method.input, req.message) });
      for (const [k, v] of Object.entries(sig)) req.header.set(k, v);
      return next(req);
    }
    let message: AsyncIterable<unknown> = req.message;
    let digest = req.header.get("content-digest");
    if (!digest) {
      const all: unknown[] = [];
      for await (const m of req.message) all.push(m);
      digest = streamDigest(all.map((m) => toBinary(req.method.input, m as Parameters<typeof toBinary>[1])));
      message = (async function* () {
        yield* all;
      })();
    }
    const sig = signRequest({ key, ...target, digest });
    for (const [k, v] of Object.entries(sig)) req.header.set(k, v);
    return next({ ...req, message } as StreamRequest);
  };
}

/** A typed gRPC client of another DeAI OS service. */
export function serviceClient<S extends DescService>(service: S, opts: { baseUrl: string; key?: ActorKey }): Client<S> {
  const interceptors = [traceInjector(), ...(opts.key ? [requestSigner(opts.key)] : [])];
  return createClient(service, createGrpcTransport({ baseUrl: opts.baseUrl, interceptors }));
}
