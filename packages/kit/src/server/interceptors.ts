import { toBinary } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import { SpanKind, SpanStatusCode, context, trace } from "@opentelemetry/api";

import { isServerFault, toConnectError } from "./error-mapping.js";
import type { Logger } from "../logger.js";
import { extractContext, tracer } from "../telemetry.js";
import { actorKey, authenticate, type SigningPolicy } from "./auth.js";

/** Server span per call, parented on the caller's W3C traceparent (gRPC metadata or HTTP header). */
export function tracingInterceptor(): Interceptor {
  return (next) => async (req) => {
    const parent = extractContext(req.header);
    const span = tracer().startSpan(
      `${req.service.typeName}/${req.method.name}`,
      {
        kind: SpanKind.SERVER,
        attributes: { "rpc.system": "grpc", "rpc.service": req.service.typeName, "rpc.method": req.method.name },
      },
      parent,
    );
    try {
      return await context.with(trace.setSpan(parent, span), () => next(req));
    } catch (e) {
      const ce = toConnectError(e);
      span.setStatus({ code: SpanStatusCode.ERROR, message: ce.rawMessage });
      span.setAttribute("rpc.grpc.status_code", ce.code);
      throw ce;
    } finally {
      span.end();
    }
  };
}

/** Maps domain errors to gRPC codes in one place and logs internal ones with their cause. */
export function errorInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    try {
      return await next(req);
    } catch (e) {
      const ce = toConnectError(e);
      if (isServerFault(ce.code)) logger.error({ err: ce.cause ?? e, method: req.method.name }, "internal error");
      throw ce;
    }
  };
}

/**
 * Verifies RFC 9421 signatures carried in gRPC/Connect metadata. The content digest covers
 * the protobuf binary encoding of the request message (empty for client streams, whose
 * signature authenticates the stream).
 */
export function signingInterceptor(policy: SigningPolicy): Interceptor {
  return (next) => async (req) => {
    const body = req.stream ? new Uint8Array() : toBinary(req.method.input, req.message);
    const actor = await authenticate(policy, req.method, {
      httpMethod: "POST",
      path: `/${req.service.typeName}/${req.method.name}`,
      body,
      header: (n) => req.header.get(n),
    });
    req.contextValues.set(actorKey, actor);
    return next(req);
  };
}
