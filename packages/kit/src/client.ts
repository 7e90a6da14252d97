/**
 * Service-to-service clients: gRPC over HTTP/2 (connect-node) that inject the caller's W3C
 * trace context and, given an actor key, sign every call the contract says is signed —
 * the same rule and signature scheme the server enforces.
 */
import { toBinary, type DescService } from "@bufbuild/protobuf";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { context, propagation } from "@opentelemetry/api";

import { defaultIsSigned } from "./server/auth.js";
import { signRequest } from "./signing/http-signature.js";
import type { ActorKey } from "./signing/keys.js";

/** Injects traceparent/tracestate into outgoing metadata. */
export function traceInjector(): Interceptor {
  return (next) => async (req) => {
    propagation.inject(context.active(), req.header, { set: (h: Headers, k: string, v: string) => h.set(k, v) });
    return next(req);
  };
}

/** Signs unary calls of signed methods with RFC 9421 metadata (digest over the protobuf encoding). */
export function requestSigner(key: ActorKey): Interceptor {
  return (next) => async (req) => {
    if (defaultIsSigned(req.method)) {
      const body = req.stream ? new Uint8Array() : toBinary(req.method.input, req.message);
      const sig = signRequest({ key, method: "POST", path: `/${req.service.typeName}/${req.method.name}`, body });
      for (const [k, v] of Object.entries(sig)) req.header.set(k, v);
    }
    return next(req);
  };
}

/** A typed gRPC client of another DeAI OS service. */
export function serviceClient<S extends DescService>(service: S, opts: { baseUrl: string; key?: ActorKey }): Client<S> {
  const interceptors = [traceInjector(), ...(opts.key ? [requestSigner(opts.key)] : [])];
  return createClient(service, createGrpcTransport({ baseUrl: opts.baseUrl, interceptors }));
}
