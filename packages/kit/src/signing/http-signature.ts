/**
 * RFC 9421 HTTP Message Signatures with Ed25519, as DeAI OS uses them.
 *
 * A mutating request covers `("@method" "@path" "content-digest")` with parameters
 * `created`, `nonce`, `keyid` (the actor id) and `alg="ed25519"`. `content-digest` is the
 * RFC 9530 `sha-256=:<base64>:` of the body. REST sends it as HTTP headers; gRPC sends the
 * very same three fields as metadata (`signature-input`, `signature`, `content-digest`),
 * with `@method` = POST, `@path` = `/package.Service/Method`, and the digest taken over the
 * request message's protobuf binary encoding.
 */
import { createHash, randomBytes, sign, verify, type KeyObject } from "node:crypto";

import { UnauthenticatedError } from "../errors.js";
import { publicKeyOf, type ActorKey } from "./keys.js";

export const REQUIRED_COMPONENTS = ["@method", "@path", "content-digest"] as const;

/** RFC 9530 Content-Digest value (sha-256) of a body. */
export function contentDigest(body: Uint8Array): string {
  return `sha-256=:${createHash("sha256").update(body).digest("base64")}:`;
}

export interface SignatureHeaders {
  "content-digest": string;
  "signature-input": string;
  signature: string;
}

/** Signs a request; returns the three headers (or gRPC metadata entries) to send. */
export function signRequest(req: {
  key: ActorKey;
  method: string;
  path: string;
  body: Uint8Array;
  /** Unix seconds; default now. */
  created?: number;
  nonce?: string;
}): SignatureHeaders {
  const digest = contentDigest(req.body);
  const created = req.created ?? Math.floor(Date.now() / 1000);
  const nonce = req.nonce ?? randomBytes(16).toString("base64url");
  const params = `(${REQUIRED_COMPONENTS.map((c) => `"${c}"`).join(" ")});created=${created};nonce="${nonce}";keyid="${req.key.id}";alg="ed25519"`;
  const base = signatureBase({ method: req.method, path: req.path, digest }, params);
  const sig = sign(null, Buffer.from(base, "utf8"), req.key.privateKey).toString("base64");
  return { "content-digest": digest, "signature-input": `sig1=${params}`, signature: `sig1=:${sig}:` };
}

/** RFC 9421 §2.5 signature base: one line per covered component, in the order the signer listed them. */
function signatureBase(
  v: { method: string; path: string; digest: string },
  params: string,
  components: readonly string[] = REQUIRED_COMPONENTS,
): string {
  const value: Record<string, string> = { "@method": v.method.toUpperCase(), "@path": v.path, "content-digest": v.digest };
  return [...components.map((c) => `"${c}": ${value[c]}`), `"@signature-params": ${params}`].join("\n");
}

export interface ParsedSignatureInput {
  label: string;
  components: string[];
  created: number;
  nonce: string;
  keyid: string;
  alg: string;
  /** The raw parameters text, exactly as signed. */
  params: string;
}

/** Parses one `label=(...);k=v` member of a Signature-Input dictionary (RFC 8941 subset). */
export function parseSignatureInput(header: string): ParsedSignatureInput {
  const m = /^\s*([a-z*][a-z0-9_\-.*]*)=(\(([^)]*)\)((?:;[a-z*][a-z0-9_\-.*]*=(?:"[^"\\]*"|-?\d+))*))\s*$/.exec(header);
  if (!m) throw new UnauthenticatedError("malformed Signature-Input: expected one signature label=(components);params");
  const [, label = "", params = "", list = "", paramText = ""] = m;
  const components =
    list.trim() === ""
      ? []
      : list
          .trim()
          .split(/\s+/)
          .map((c) => {
            if (!/^"[^"]+"$/.test(c)) throw new UnauthenticatedError(`malformed Signature-Input component ${c}`);
            return c.slice(1, -1);
          });
  const kv = new Map<string, string>();
  for (const p of paramText.split(";").slice(1)) {
    const i = p.indexOf("=");
    const k = p.slice(0, i);
    if (kv.has(k)) throw new UnauthenticatedError(`Signature-Input repeats parameter ${k}`);
    kv.set(k, p.slice(i + 1).replace(/^"(.*)"$/, "$1"));
  }
  const created = Number(kv.get("created"));
  if (!Number.isSafeInteger(created)) throw new UnauthenticatedError("Signature-Input lacks an integer created parameter");
  const nonce = kv.get("nonce");
  if (!nonce || nonce.length < 8 || nonce.length > 128)
    throw new UnauthenticatedError("Signature-Input needs a nonce of 8 to 128 characters");
  const keyid = kv.get("keyid");
  if (!keyid) throw new UnauthenticatedError("Signature-Input lacks keyid (the actor id)");
  const alg = kv.get("alg") ?? "ed25519";
  return { label, components, created, nonce, keyid, alg, params };
}

/** Where seen nonces are remembered until their signature would have expired anyway. */
export interface NonceStore {
  /** Records (keyid, nonce); false when it was already recorded. */
  claim(keyid: string, nonce: string, expiresAt: Date): Promise<boolean>;
}

/** A process-local NonceStore: enough for one replica and for clients' tests. */
export class MemoryNonceStore implements NonceStore {
  private readonly seen = new Map<string, number>();
  async claim(keyid: string, nonce: string, expiresAt: Date): Promise<boolean> {
    const now = Date.now();
    if (this.seen.size > 10_000) for (const [k, t] of this.seen) if (t < now) this.seen.delete(k);
    const k = `${keyid} ${nonce}`;
    const t = this.seen.get(k);
    if (t !== undefined && t >= now) return false;
    this.seen.set(k, expiresAt.getTime());
    return true;
  }
}

// Building a KeyObject from an actor id (and checking its spelling is canonical) costs about
// as much as the signature check itself; actors sign many requests, so keep the parsed keys.
const publicKeys = new Map<string, KeyObject>();

function cachedPublicKey(actorId: string): KeyObject {
  let key = publicKeys.get(actorId);
  if (key === undefined) {
    key = publicKeyOf(actorId);
    if (publicKeys.size >= 10_000) publicKeys.clear();
    publicKeys.set(actorId, key);
  }
  return key;
}

export interface VerifyOptions {
  maxAgeS: number;
  nonces: NonceStore;
  /** Unix ms; default Date.now(). */
  now?: number;
}

/**
 * Verifies a signed request and returns the actor id. Checks, in order: headers present
 * and well formed, covered components, content-digest against the body (unless the body is
 * "deferred": streamed, the caller checks it against the signed header), age window,
 * Ed25519 signature, then claims the nonce (so a bad signature cannot burn a nonce).
 */
export async function verifyRequest(
  req: { method: string; path: string; body: Uint8Array | "deferred"; header: (name: string) => string | null | undefined },
  opts: VerifyOptions,
): Promise<string> {
  const input = req.header("signature-input");
  const sigHeader = req.header("signature");
  const digestHeader = req.header("content-digest");
  if (!input || !sigHeader) throw new UnauthenticatedError("request is not signed: Signature-Input and Signature headers are required");
  if (!digestHeader) throw new UnauthenticatedError("signed request lacks a Content-Digest header");
  const parsed = parseSignatureInput(input);
  for (const c of REQUIRED_COMPONENTS) {
    if (!parsed.components.includes(c)) throw new UnauthenticatedError(`signature must cover ${c}`);
  }
  if (parsed.components.length !== REQUIRED_COMPONENTS.length || new Set(parsed.components).size !== parsed.components.length) {
    throw new UnauthenticatedError(`signature must cover exactly ${REQUIRED_COMPONENTS.join(", ")}`);
  }
  if (parsed.alg !== "ed25519") throw new UnauthenticatedError(`unsupported signature alg ${parsed.alg}; use ed25519`);
  const sm = new RegExp(`^\\s*${parsed.label.replace(/[.*]/g, "\\$&")}=:([A-Za-z0-9+/]+={0,2}):\\s*$`).exec(sigHeader);
  if (!sm?.[1]) throw new UnauthenticatedError(`malformed Signature header for label ${parsed.label}`);
  // A streamed body ("deferred") is checked by the caller as it arrives, against the signed header.
  if (req.body !== "deferred" && digestHeader.trim() !== contentDigest(req.body)) {
    throw new UnauthenticatedError("content-digest does not match the request body");
  }
  const now = opts.now ?? Date.now();
  const ageS = now / 1000 - parsed.created;
  if (ageS > opts.maxAgeS) throw new UnauthenticatedError(`signature expired: created ${Math.round(ageS)} s ago, limit ${opts.maxAgeS} s`);
  if (ageS < -opts.maxAgeS) throw new UnauthenticatedError(`signature created ${Math.round(-ageS)} s in the future`);
  let publicKey;
  try {
    publicKey = cachedPublicKey(parsed.keyid);
  } catch {
    throw new UnauthenticatedError("keyid is not an actor id (base64url Ed25519 public key)");
  }
  const base = signatureBase({ method: req.method, path: req.path, digest: digestHeader.trim() }, parsed.params, parsed.components);
  const sig = Buffer.from(sm[1], "base64");
  if (sig.length !== 64 || !verify(null, Buffer.from(base, "utf8"), publicKey, sig)) {
    throw new UnauthenticatedError(`signature does not verify for keyid ${parsed.keyid}`);
  }
  const fresh = await opts.nonces.claim(parsed.keyid, parsed.nonce, new Date((parsed.created + opts.maxAgeS) * 1000 + 60_000));
  if (!fresh) throw new UnauthenticatedError("replayed request: nonce already used");
  return parsed.keyid;
}
