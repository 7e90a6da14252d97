import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { DescMethod } from "@bufbuild/protobuf";

import { UnauthenticatedError } from "../errors.js";
import { verifyRequest, type NonceStore } from "../signing/http-signature.js";
import { restRoutes } from "./http-rules.js";

/** The verified actor id of a signed request, or undefined for unsigned reads. */
export const actorKey = createContextKey<string | undefined>(undefined, { description: "verified actor id" });

/** The verified actor of the current call; throws when the call was not signed. */
export function requireActor(ctx: HandlerContext): string {
  const actor = ctx.values.get(actorKey);
  if (!actor) throw new UnauthenticatedError("this call must be signed");
  return actor;
}

export interface SigningPolicy {
  nonces: NonceStore;
  maxAgeS: number;
  /** The authorities this service answers to (the server fills it in once it knows its port). */
  authorities?: () => readonly string[];
  /** Which methods need a signature. Default: every method whose REST verb is not GET, and every streaming upload. */
  isSigned?: (method: DescMethod) => boolean;
}

/**
 * Default rule, derived from the contracts: a unary method is signed when any of its REST
 * bindings uses a verb other than GET; client and bidi streams (uploads) are signed; server
 * streams (downloads) and the standard gRPC services (grpc.health.v1, grpc.reflection: read-only,
 * and their clients cannot sign) are open. The server refuses to start with an unannotated
 * unary method of a deai.* service, so no mutation slips through unsigned.
 */
export function defaultIsSigned(method: DescMethod): boolean {
  let signed = signedCache.get(method);
  if (signed === undefined) {
    signed =
      method.methodKind === "server_streaming" || method.parent.typeName.startsWith("grpc.")
        ? false
        : method.methodKind !== "unary"
          ? true
          : restRoutes(method.parent).some((r) => r.method === method && r.verb !== "GET");
    signedCache.set(method, signed);
  }
  return signed;
}

// Descriptors are immutable; the rule is computed once per method, not per request.
const signedCache = new WeakMap<DescMethod, boolean>();

/** Verifies one request against the policy; returns the actor, or undefined when the method is open. */
export async function authenticate(
  policy: SigningPolicy,
  method: DescMethod,
  req: {
    httpMethod: string;
    authority: string;
    path: string;
    /** "deferred": a client stream, whose digest the caller checks as the messages arrive. */
    body: Uint8Array | "deferred";
    header: (n: string) => string | null | undefined;
  },
): Promise<string | undefined> {
  const signed = (policy.isSigned ?? defaultIsSigned)(method);
  if (!signed) return undefined;
  return verifyRequest(
    { method: req.httpMethod, authority: req.authority, path: req.path, body: req.body, header: req.header },
    { maxAgeS: policy.maxAgeS, nonces: policy.nonces, ...(policy.authorities ? { authorities: policy.authorities() } : {}) },
  );
}

/** The authority a request was sent to: HTTP/2 `:authority`, else the `Host` header, lowercase. */
export function requestAuthority(req: { headers: Record<string, string | string[] | undefined> }): string {
  const a = req.headers[":authority"] ?? req.headers.host;
  return (Array.isArray(a) ? (a[0] ?? "") : (a ?? "")).toLowerCase();
}

/** The authority of the current RPC, put there by the server from `:authority` / `Host`. */
export const authorityKey = createContextKey<string>("", { description: "request authority" });
