/**
 * Service-to-service clients: gRPC over HTTP/2 (connect-node) that inject the caller's W3C
 * trace context and, given an actor key, sign every call the contract says is signed —
 * the same rule and signature scheme the server enforces.
 */
import { toBinary, type DescMessage, type DescService, type MessageShape } from "@bufbuild/protobuf";
import { createClient, type Client, type Interceptor, type StreamRequest } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { context, propagation } from "@opentelemetry/api";

import { defaultIsSigned } from "./server/auth.js";
import { authorityOf, signRequest, streamDigest } from "./signing/http-signature.js";
import type { ActorKey } from "./signing/keys.js";

/** Injects traceparent/tracestate into outgoing metadata. */
export function traceInjector(): Interceptor {
  return (next) => async (req) => {
    propagation.inject(context.active(), req.header, { set: (h: Headers, k: string, v: string) => h.set(k, v) });
    return next(req);
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
