/**
 * RFC 9421 HTTP Message Signatures with Ed25519, as DeAI OS uses them.
 *
 * A mutating request covers `("@method" "@authority" "@path" "content-digest")` with
 * parameters `created`, `nonce`, `keyid` (the actor id) and `alg="ed25519"`.
 *
 * - `@authority` is the target's host[:port] as the client put it in the URL (lowercase,
 *   default port omitted: `new URL(url).host`), which is what HTTP/1.1 sends as `Host` and
 *   HTTP/2 as `:authority`. The verifier takes it from the request and the server refuses a
 *   request whose authority is not one of its own (ServerOptions.authorities), so a request
 *   signed for one service cannot be replayed to another that serves the same path.
 * - `content-digest` is the RFC 9530 `sha-256=:<base64>:` of the body.
 *
 * REST sends the fields as HTTP headers; gRPC sends the very same fields as metadata
 * (`signature-input`, `signature`, `content-digest`), with `@method` = POST, `@path` =
 * `/package.Service/Method`, `@authority` the HTTP/2 `:authority`, and the digest taken over
 * the request message's protobuf binary encoding. A client stream's digest covers every
 * message of the stream: see streamDigest.
 */
import { createHash, randomBytes, sign, verify, type KeyObject } from "node:crypto";

import { UnauthenticatedError } from "../errors.js";
import { systemClock, type Clock } from "../time/clock.js";
import { publicKeyOf, type ActorKey } from "./keys.js";

export const REQUIRED_COMPONENTS = ["@method", "@authority", "@path", "content-digest"] as const;

/** RFC 9530 Content-Digest value (sha-256) of a body. */
export function contentDigest(body: Uint8Array): string {
  return `sha-256=:${createHash("sha256").update(body).digest("base64")}:`;
}

/**
 * The `content-digest` of a gRPC client stream: SHA-256 over the concatenation of every
 * request message's protobuf binary encoding, each prefixed by its length as 4 bytes
 * big-endian (so message boundaries are bound too: [ab][c] and [a][bc] differ). Feed the
 * encoded messages in order, then call `digest()`.
 */
export class StreamDigest {
  private readonly hash = createHash("sha256");
  private readonly prefix = Buffer.alloc(4);

  update(encodedMessage: Uint8Array): this {
    this.prefix.writeUInt32BE(encodedMessage.length, 0);
    this.hash.update(this.prefix).update(encodedMessage);
    return this;
  }

  /** The RFC 9530 value; the object cannot be used afterwards. */
  digest(): string {
    return `sha-256=:${this.hash.digest("base64")}:`;
  }
}

/** streamDigest of messages known up front. */
export function streamDigest(encodedMessages: Iterable<Uint8Array>): string {
  const d = new StreamDigest();
  for (const m of encodedMessages) d.update(m);
  return d.digest();
}

/** The `@authority` of a URL as signers and verifiers compare it: host[:port], lowercase, default port omitted. */
export function authorityOf(url: string | URL): string {
  return (typeof url === "string" ? new URL(url) : url).host.toLowerCase();
}

export interface SignatureHeaders {
  "content-digest": string;
  "signature-input": string;
  signature: string;
}

/**
 * Signs a request; returns the three headers (or gRPC metadata entries) to send. Give the
 * target either as `url` (its authority and path are taken from it) or as `authority` and
 * `path`; give the body, or its precomputed `digest` when it is streamed.
 */
export function signRequest(
  req: {
    key: ActorKey;
    method: string;
    /** Unix seconds; default now. */
    created?: number;
    nonce?: string;
  } & ({ url: string | URL } | { authority: string; path: string }) &
    ({ body: Uint8Array } | { digest: string }),
): SignatureHeaders {
  const digest = "digest" in req ? req.digest : contentDigest(req.body);
  const target = "url" in req ? new URL(req.url) : undefined;
  const authority = target ? authorityOf(target) : (req as { authority: string }).authority.toLowerCase();
  const path = target ? target.pathname : (req as { path: string }).path;
  const created = req.created ?? Math.floor(systemClock.nowMs() / 1000);
  const nonce = req.nonce ?? randomBytes(16).toString("base64url");
  const params = `(${REQUIRED_COMPONENTS.map((c) => `"${c}"`).join(" ")});created=${created};nonce="${nonce}";keyid="${req.key.id}";alg="ed25519"`;
  const base = signatureBase({ method: req.method, authority, path, digest }, params);
  const sig = sign(null, Buffer.from(base, "utf8"), req.key.privateKey).toString("base64");
  return { "content-digest": digest, "signature-input": `sig1=${params}`, signature: `sig1=:${sig}:` };
}

/** RFC 9421 §2.5 signature base: one line per covered component, in the order the signer listed them. */
export function signatureBase(
  v: { method: string; authority: string; path: string; digest: string },
  params: string,
  components: readonly string[] = REQUIRED_COMPONENTS,
): string {
  const value: Record<string, string> = {
    "@method": v.method.toUpperCase(),
    "@authority": v.authority.toLowerCase(),
    "@path": v.path,
    "content-digest": v.digest,
  };
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
  constructor(private readonly clock: Clock = systemClock) {}
  async claim(keyid: string, nonce: string, expiresAt: Date): Promise<boolean> {
    const now = this.clock.nowMs();
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
  /**
   * The authorities this service answers to; a request addressed to another is refused. The
   * kit's server also refuses such requests before any route sees them, so a route that
   * verifies by itself (a streamed upload) may leave this out.
   */
  authorities?: readonly string[];
  /** Unix ms; default the system clock's. */
  now?: number;
}

/**
 * Verifies a signed request and returns the actor id. Checks, in order: headers present
 * and well formed, covered components, content-digest against the body (unless the body is
 * "deferred": streamed, the caller checks it against the signed header), age window,
 * Ed25519 signature, then claims the nonce (so a bad signature cannot burn a nonce).
 */
export async function verifyRequest(
  req: {
    method: string;
    path: string;
    body: Uint8Array | "deferred";
    header: (name: string) => string | null | undefined;
    /** The request's authority; default its `:authority` (HTTP/2) or `Host` header. */
    authority?: string;
  },
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
  const authority = (req.authority ?? req.header(":authority") ?? req.header("host") ?? "").toLowerCase();
  if (authority === "") throw new UnauthenticatedError("signed request names no authority (Host / :authority)");
  if (opts.authorities && !opts.authorities.includes(authority)) {
    throw new UnauthenticatedError(`request is addressed to ${JSON.stringify(authority)}, not to this service`);
  }
  const sm = new RegExp(`^\\s*${parsed.label.replace(/[.*]/g, "\\$&")}=:([A-Za-z0-9+/]+={0,2}):\\s*$`).exec(sigHeader);
  if (!sm?.[1]) throw new UnauthenticatedError(`malformed Signature header for label ${parsed.label}`);
  // A streamed body ("deferred") is checked by the caller as it arrives, against the signed header.
  if (req.body !== "deferred" && digestHeader.trim() !== contentDigest(req.body)) {
    throw new UnauthenticatedError("content-digest does not match the request body");
  }
  const now = opts.now ?? systemClock.nowMs();
  const ageS = now / 1000 - parsed.created;
  if (ageS > opts.maxAgeS) throw new UnauthenticatedError(`signature expired: created ${Math.round(ageS)} s ago, limit ${opts.maxAgeS} s`);
  if (ageS < -opts.maxAgeS) throw new UnauthenticatedError(`signature created ${Math.round(-ageS)} s in the future`);
  let publicKey;
  try {
    publicKey = cachedPublicKey(parsed.keyid);
  } catch {
    throw new UnauthenticatedError("keyid is not an actor id (base64url Ed25519 public key)");
  }
  const base = signatureBase(
    { method: req.method, authority, path: req.path, digest: digestHeader.trim() },
    parsed.params,
    parsed.components,
  );
  const sig = Buffer.from(sm[1], "base64");
  if (sig.length !== 64 || !verify(null, Buffer.from(base, "utf8"), publicKey, sig)) {
    throw new UnauthenticatedError(`signature does not verify for keyid ${parsed.keyid}`);
  }
  const fresh = await opts.nonces.claim(parsed.keyid, parsed.nonce, new Date((parsed.created + opts.maxAgeS) * 1000 + 60_000));
  if (!fresh) throw new UnauthenticatedError("replayed request: nonce already used");
  return parsed.keyid;
}
