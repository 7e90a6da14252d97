import { toBinary, type DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor, type StreamRequest } from "@connectrpc/connect";
import { SpanKind, SpanStatusCode, context, trace } from "@opentelemetry/api";

import { InvalidArgumentError, UnauthenticatedError } from "../errors.js";
import { codeName, isServerFault, toConnectError } from "./error-mapping.js";
import { isServerSpanError, rpcSystemOf, secondsSince, serverMetrics, UNTRACED_SERVICES } from "./rpc-telemetry.js";
import type { Logger } from "../logger.js";
import { extractContext, tracer } from "../telemetry.js";
import { StreamDigest } from "../signing/http-signature.js";
import { actorKey, authenticate, authorityKey, type SigningPolicy } from "./auth.js";
import { isUndecodable, undecodableAsInvalid } from "./rpc-handler.js";
import { badStringIn } from "./string-check.js";

type AnyMessage = Parameters<typeof toBinary>[1];

/** Wraps an async iterable: errors thrown while iterating it go through `map` first; `done` runs once at the end. */
async function* mapped<T>(it: AsyncIterable<T>, map: (e: unknown) => unknown, done?: (e?: unknown) => void): AsyncGenerator<T> {
  let finished = false;
  try {
    yield* it;
    finished = true;
    done?.();
  } catch (e) {
    const m = map(e);
    finished = true;
    done?.(m);
    throw m;
  } finally {
    // The reader stopped early (the caller went away): the stream ends as cancelled.
    if (!finished) done?.(new ConnectError("the stream was cancelled", Code.Canceled));
  }
}

/** A stream request with its message iterable replaced. */
function withMessages(req: StreamRequest, message: AsyncIterable<unknown>): StreamRequest {
  return { ...req, message } as StreamRequest;
}

/**
 * Server span and `rpc.server.call.duration` per call, parented on the caller's W3C
 * traceparent (gRPC metadata or HTTP header); a stream's span lasts until it ends. Conventions:
 * rpc-telemetry.ts. Health checks are not traced.
 */
export function tracingInterceptor(): Interceptor {
  return (next) => async (req) => {
    if (UNTRACED_SERVICES.has(req.service.typeName)) return next(req);
    const started = performance.now();
    const parent = extractContext(req.header);
    const attributes = {
      "rpc.system": rpcSystemOf(req.header.get("content-type")),
      "rpc.service": req.service.typeName,
      "rpc.method": req.method.name,
    };
    const span = tracer().startSpan(`${req.service.typeName}/${req.method.name}`, { kind: SpanKind.SERVER, attributes }, parent);
    let ended = false;
    const end = (e?: unknown): void => {
      if (ended) return;
      ended = true;
      const ce = e === undefined ? undefined : toConnectError(e);
      const code = ce?.code ?? 0;
      span.setAttribute("rpc.grpc.status_code", code);
      if (ce && attributes["rpc.system"] === "connect_rpc") span.setAttribute("rpc.connect_rpc.error_code", codeName(ce.code));
      if (ce && isServerSpanError(ce.code)) span.setStatus({ code: SpanStatusCode.ERROR, message: ce.rawMessage });
      span.end();
      serverMetrics().rpc.record(secondsSince(started), { ...attributes, "rpc.grpc.status_code": code });
    };
    try {
      const res = await context.with(trace.setSpan(parent, span), () => next(req));
      if (!res.stream) {
        end();
        return res;
      }
      return { ...res, message: mapped(res.message, (e) => e, end) };
    } catch (e) {
      const ce = toConnectError(e);
      end(ce);
      throw ce;
    }
  };
}

/**
 * Maps errors to gRPC codes in one place, for unary calls and for streams alike (an error
 * thrown while a server stream is being produced, or while a client stream is being read),
 * and logs server faults with their cause. A request message that does not decode is the
 * caller's fault: INVALID_ARGUMENT, logged at debug.
 */
export function errorInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const report = (e: unknown): unknown => {
      const ce = isUndecodable(e) ? undecodableAsInvalid(e, `a ${req.method.input.typeName} message`) : toConnectError(e);
      if (isServerFault(ce.code)) logger.error({ err: ce.cause ?? e, method: req.method.name }, "internal error");
      else logger.debug({ code: ce.code, message: ce.rawMessage, method: req.method.name }, "call refused");
      return ce;
    };
    const input = req.stream
      ? withMessages(
          req,
          mapped(req.message, (e) => (isUndecodable(e) ? undecodableAsInvalid(e, `a ${req.method.input.typeName} message`) : e)),
        )
      : req;
    try {
      const res = await next(input);
      return res.stream ? { ...res, message: mapped(res.message, report) } : res;
    } catch (e) {
      throw report(e);
    }
  };
}

/**
 * Refuses NUL and lone surrogates in every string of every request message (see
 * string-check.ts), naming the field, before any handler sees them.
 */
export function stringCheckInterceptor(): Interceptor {
  const check = (schema: DescMessage, m: unknown): void => {
    const bad = badStringIn(schema, m);
    if (bad) throw new InvalidArgumentError(`${bad.path} ${bad.problem}`, { field: bad.path });
  };
  return (next) => async (req) => {
    if (!req.stream) {
      check(req.method.input, req.message);
      return next(req);
    }
    async function* checked(it: AsyncIterable<unknown>): AsyncGenerator<unknown> {
      for await (const m of it) {
        check(req.method.input, m);
        yield m;
      }
    }
    return next(withMessages(req, checked(req.message)));
  };
}

/**
 * Verifies RFC 9421 signatures carried in gRPC/Connect metadata. The content digest covers
 * the protobuf binary encoding of the request message; for a client stream, every message of
 * the stream (StreamDigest): the stream is checked as it is read and, when it ends, a stream
 * that does not match its signed digest throws UNAUTHENTICATED from the iterator, before the
 * handler can take the stream as complete (a handler rolls back a stream that errors).
 */
export function signingInterceptor(policy: SigningPolicy): Interceptor {
  return (next) => async (req) => {
    const common = {
      httpMethod: "POST",
      authority: req.contextValues.get(authorityKey),
      path: `/${req.service.typeName}/${req.method.name}`,
      header: (n: string) => req.header.get(n),
    };
    if (!req.stream) {
      const actor = await authenticate(policy, req.method, { ...common, body: toBinary(req.method.input, req.message) });
      req.contextValues.set(actorKey, actor);
      return next(req);
    }
    if (req.method.methodKind === "server_streaming") {
      // One request message: signed, when a policy asks for it, like a unary call.
      const messages: unknown[] = [];
      for await (const m of req.message) messages.push(m);
      const body = messages.length === 1 ? toBinary(req.method.input, messages[0] as AnyMessage) : new Uint8Array();
      req.contextValues.set(actorKey, await authenticate(policy, req.method, { ...common, body }));
      return next(
        withMessages(
          req,
          (async function* () {
            yield* messages;
          })(),
        ),
      );
    }
    const actor = await authenticate(policy, req.method, { ...common, body: "deferred" });
    req.contextValues.set(actorKey, actor);
    if (actor === undefined) return next(req);
    const signed = (req.header.get("content-digest") ?? "").trim();
    const schema = req.method.input;
    async function* checked(it: AsyncIterable<unknown>): AsyncGenerator<unknown> {
      const digest = new StreamDigest();
      for await (const m of it) {
        digest.update(toBinary(schema, m as AnyMessage));
        yield m;
      }
      if (digest.digest() !== signed) throw new UnauthenticatedError("stream does not match its signed content-digest");
    }
    return next(withMessages(req, checked(req.message)));
  };
}
