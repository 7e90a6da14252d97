/**
 * Requests to signed methods that must be refused with UNAUTHENTICATED: unsigned, signed
 * with the wrong key, with a tampered digest, body or path, expired, from the future, and
 * signed for another service's authority. Each is the seed request with one thing wrong,
 * so a refusal can only come from the signature check. Replays are in replayCases: they
 * need a first request that is let through.
 */
import { randomBytes } from "node:crypto";

import { contentDigest, generateActorKey, signRequest, type ActorKey } from "@deai/kit";

import type { AbuseCase, Wire } from "./abuse-case.js";
import { emptyBytes, grpcBytes, restRequest, type MethodTarget, type Signer } from "./method-requests.js";
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

function variants(key: ActorKey): Variant[] {
  const other = generateActorKey();
  return [
    { name: "unsigned", sign: undefined },
    {
      name: "signed with another key than its keyid",
      sign: (m, p, b) => {
        const h = signRequest({ key: other, method: m, path: p, body: b });
        return { ...h, "signature-input": h["signature-input"].replace(other.id, key.id) };
      },
    },
    {
      name: "content-digest tampered after signing",
      sign: (m, p, b) => ({
        ...signRequest({ key, method: m, path: p, body: b }),
        "content-digest": contentDigest(Buffer.from("tampered")),
      }),
    },
    { name: "body replaced after signing", sign: (m, p, b) => ({ ...signRequest({ key, method: m, path: p, body: b }) }), swapBody: true },
    {
      name: "signed for another path",
      sign: (m, p, b) => ({ ...signRequest({ key, method: m, path: otherPath(p), body: b }) }),
    },
    {
      name: "expired (created an hour ago)",
      sign: (m, p, b) => ({ ...signRequest({ key, method: m, path: p, body: b, created: Math.floor(Date.now() / 1000) - 3600 }) }),
    },
    {
      name: "created an hour in the future",
      sign: (m, p, b) => ({ ...signRequest({ key, method: m, path: p, body: b, created: Math.floor(Date.now() / 1000) + 3600 }) }),
    },
    {
      name: `signed for another authority (${OTHER_AUTHORITY})`,
      // Until the kit's signatures cover @authority this is an ordinary signature, and the
      // service accepting it is the defect (issue 9, item 9) this case exists to catch.
      sign: (m, p, b) => ({
        ...signRequest({ key, method: m, path: p, body: b, authority: OTHER_AUTHORITY } as Parameters<typeof signRequest>[0]),
      }),
    },
  ];
}

const TAMPERED = Buffer.from('{"tampered":true}');

/** Every signing variant of `t` on each of its signed REST routes and over gRPC. */
export function signingCases(t: MethodTarget, key: ActorKey): AbuseCase[] {
  if (!t.signed) return [];
  const cases: AbuseCase[] = [];
  const add = (label: string, send: (w: Wire) => Promise<Outcome>): void =>
    void cases.push({ label: `${t.grpcPath} ${label}`, method: t.method, kind: "signature", expect: "unauthenticated", send });
  for (const v of variants(key)) {
    for (const route of t.routes.filter((r) => r.verb !== "GET")) {
      const spec = restRequest(route, t.seed, { ...(v.sign ? { sign: v.sign } : {}) });
      if (!spec) continue;
      const sent =
        v.swapBody && spec.body ? { ...spec, body: TAMPERED, headers: { ...spec.headers, "content-length": TAMPERED.length } } : spec;
      add(`rest ${route.verb} ${route.template}: ${v.name}`, (w) => sendRest(w.baseUrl, sent));
    }
    const bytes = grpcBytes(t.method, t.seed);
    const streamed = t.kind === "client_streaming" || t.kind === "bidi_streaming";
    // Client streams sign an empty digest today (the kit binds the stream later); sign what it checks.
    const md = v.sign ? v.sign("POST", t.grpcPath, streamed ? new Uint8Array() : bytes) : {};
    const sent = v.swapBody
      ? streamed
        ? Buffer.from(emptyBytes(t.method))
        : Buffer.concat([bytes, Buffer.from([0xfa, 0xff, 0x07, 0x00])])
      : bytes;
    if (v.swapBody && streamed) continue;
    add(`grpc: ${v.name}`, (w) => sendGrpc(w.grpc, t.grpcPath, t.kind, sent, md));
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
export function replayCases(t: MethodTarget, key: ActorKey): ReplayCase[] {
  if (!t.signed) return [];
  const out: ReplayCase[] = [];
  const nonce = (): string => randomBytes(12).toString("base64url");
  for (const route of t.routes.filter((r) => r.verb !== "GET")) {
    const n = nonce();
    const spec = restRequest(route, t.seed, { sign: (m, p, b) => ({ ...signRequest({ key, method: m, path: p, body: b, nonce: n }) }) });
    if (spec)
      out.push({
        label: `${t.grpcPath} rest ${route.verb} ${route.template}: replayed nonce`,
        target: t,
        send: (w) => sendRest(w.baseUrl, spec),
      });
  }
  if (t.kind === "unary") {
    const bytes = grpcBytes(t.method, t.seed);
    const md = { ...signRequest({ key, method: "POST", path: t.grpcPath, body: bytes, nonce: nonce() }) };
    out.push({ label: `${t.grpcPath} grpc: replayed nonce`, target: t, send: (w) => sendGrpc(w.grpc, t.grpcPath, t.kind, bytes, md) });
  }
  return out;
}
