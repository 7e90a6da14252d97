/**
 * Requests to signed methods that must be refused with UNAUTHENTICATED: unsigned, signed
 * with the wrong key, with a tampered digest, body or path, expired, from the future, and
 * signed for another service's authority. Each is the seed request with one thing wrong,
 * so a refusal can only come from the signature check. Replays are in replayCases: they
 * need a first request that is let through.
 */
import { randomBytes } from "node:crypto";

import { contentDigest, generateActorKey, type ActorKey } from "@deai/kit";

import type { AbuseCase, Wire } from "./abuse-case.js";
import { grpcBytes, isClientStream, restRequest, signerOf, type MethodTarget, type Signer } from "./method-requests.js";
import { sendGrpc, sendRest, type Outcome } from "./transports.js";

interface Variant {
  readonly name: string;
  /** Signs like a client would, except for one thing. */
  readonly sign: Signer | undefined;
  /** Replaces the body after signing (tampered body). */
  readonly swapBody?: boolean;
}

/** A signature over the path of another RPC (the same body, key and time). */
const OTHER_REST_PATH = "/v1/system/whoami";
const OTHER_GRPC_PATH = "/deai.system.v1.SystemService/WhoAmI";
function otherPath(p: string): string {
  const other = p.startsWith("/v1/") ? OTHER_REST_PATH : OTHER_GRPC_PATH;
  return other === p ? `${p}x` : other;
}

/** The authority of another deployment of a service that serves the same paths. */
export const OTHER_AUTHORITY = "other-service.invalid:443";

function variants(key: ActorKey, authority: string): Variant[] {
  const other = generateActorKey();
  const now = Math.floor(Date.now() / 1000);
  const valid = signerOf({ key, authority });
  return [
    { name: "unsigned", sign: undefined },
    {
      name: "signed with another key than its keyid",
      sign: (m, p, b, s) => {
        const h = signerOf({ key: other, authority })(m, p, b, s);
        return { ...h, "signature-input": h["signature-input"]!.replace(other.id, key.id) };
      },
    },
    {
      name: "content-digest tampered after signing",
      sign: (m, p, b, s) => ({ ...valid(m, p, b, s), "content-digest": contentDigest(Buffer.from("tampered")) }),
    },
    { name: "body replaced after signing", sign: valid, swapBody: true },
    { name: "signed for another path", sign: (m, p, b, s) => valid(m, otherPath(p), b, s) },
    { name: "expired (created an hour ago)", sign: signerOf({ key, authority, created: now - 3600 }) },
    { name: "created an hour in the future", sign: signerOf({ key, authority, created: now + 3600 }) },
    { name: `signed for another authority (${OTHER_AUTHORITY})`, sign: signerOf({ key, authority: OTHER_AUTHORITY }) },
  ];
}

const TAMPERED = Buffer.from('{"tampered":true}');

/** Every signing variant of `t` on each of its signed REST routes and over gRPC. */
export function signingCases(t: MethodTarget, key: ActorKey, authority: string): AbuseCase[] {
  if (!t.signed) return [];
  const cases: AbuseCase[] = [];
  const add = (label: string, send: (w: Wire) => Promise<Outcome>, alsoAccept?: number[]): void =>
    void cases.push({
      label: `${t.grpcPath} ${label}`,
      method: t.method,
      kind: "signature",
      expect: "unauthenticated",
      send,
      ...(alsoAccept ? { alsoAccept } : {}),
    });
  for (const v of variants(key, authority)) {
    for (const route of t.routes.filter((r) => r.verb !== "GET")) {
      const spec = restRequest(route, t.seed, { ...(v.sign ? { sign: v.sign } : {}) });
      if (!spec) continue;
      const sent =
        v.swapBody && spec.body ? { ...spec, body: TAMPERED, headers: { ...spec.headers, "content-length": TAMPERED.length } } : spec;
      add(`rest ${route.verb} ${route.template}: ${v.name}`, (w) => sendRest(w.baseUrl, sent));
    }
    const bytes = grpcBytes(t.method, t.seed);
    const streamed = isClientStream(t);
    const md = v.sign ? v.sign("POST", t.grpcPath, bytes, streamed) : {};
    // An unknown field appended: the same message to a handler, other bytes to the digest.
    const sent = v.swapBody ? Buffer.concat([bytes, Buffer.from([0xfa, 0xff, 0x07, 0x00])]) : bytes;
    // A stream's digest is known only at its end, so its handler may refuse the messages first;
    // any refusal is right there, and the state snapshot shows nothing was kept.
    const alsoAccept = streamed && v.swapBody ? [3, 5, 9, 11] : undefined;
    add(`grpc: ${v.name}`, (w) => sendGrpc(w.grpc, t.grpcPath, t.kind, sent, md), alsoAccept);
  }
  return cases;
}

/** A pair of identical signed requests (same nonce): the second must be refused as a replay. */
export interface ReplayCase {
  readonly label: string;
  readonly target: MethodTarget;
  send(w: Wire): Promise<Outcome>;
}

/** One replay pair per signed REST route and over gRPC (unary). */
export function replayCases(t: MethodTarget, key: ActorKey, authority: string): ReplayCase[] {
  if (!t.signed) return [];
  const out: ReplayCase[] = [];
  const nonce = (): string => randomBytes(12).toString("base64url");
  for (const route of t.routes.filter((r) => r.verb !== "GET")) {
    const n = nonce();
    const spec = restRequest(route, t.seed, { sign: signerOf({ key, authority, nonce: n }) });
    if (spec)
      out.push({
        label: `${t.grpcPath} rest ${route.verb} ${route.template}: replayed nonce`,
        target: t,
        send: (w) => sendRest(w.baseUrl, spec),
      });
  }
  if (t.kind === "unary") {
    const bytes = grpcBytes(t.method, t.seed);
    const md = signerOf({ key, authority, nonce: nonce() })("POST", t.grpcPath, bytes);
    out.push({ label: `${t.grpcPath} grpc: replayed nonce`, target: t, send: (w) => sendGrpc(w.grpc, t.grpcPath, t.kind, bytes, md) });
  }
  return out;
}
