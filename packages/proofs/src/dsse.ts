// DSSE, the Dead Simple Signing Envelope (github.com/secure-systems-lab/dsse, protocol v1):
// signatures over PAE(payloadType, payload), so a signature binds the payload's type as well
// as its bytes. Every signed statement on the platform is an in-toto Statement v1 in one of
// these envelopes, with keyid = the signer's actor id (base64url of its Ed25519 public key).

import { ed25519 } from "@noble/curves/ed25519.js";

import { ed25519Verify } from "./cosignature.js";
import { base64Decode, base64Encode, utf8Encode } from "./encoding.js";
import { ProofError } from "./errors.js";
import { MAX_ENTRY_SIZE } from "./tiles.js";

/** One signature of an envelope. */
export interface DsseSignature {
  readonly keyid: string;
  readonly sig: Uint8Array;
}

/** A DSSE envelope with its payload and signatures as bytes. */
export interface DsseEnvelope {
  readonly payloadType: string;
  readonly payload: Uint8Array;
  readonly signatures: readonly DsseSignature[];
}

/** The DSSE JSON form (envelope.md): payload and signatures in standard base64. */
export interface DsseEnvelopeJson {
  readonly payloadType: string;
  readonly payload: string;
  readonly signatures: readonly { readonly keyid: string; readonly sig: string }[];
}

/** Signs PAE messages for one keyid. */
export interface DsseSigner {
  readonly keyid: string;
  sign(message: Uint8Array): Uint8Array;
}

/**
 * Most signatures one envelope may carry on this platform (the ledger refuses more before
 * checking any). Each signature takes at least 153 bytes of a ledger leaf
 * (`{"keyid":"<43>","sig":"<88>"},`), so 64 of them use 9,792 of the 65,535 bytes of an entry
 * (MAX_ENTRY_SIZE) and leave a statement at least 55 KiB; at most ⌊(65,535 − 80) / 153⌋ = 427
 * could fit at all. Identical (keyid, sig) pairs are verified once, so an envelope costs at
 * most this many Ed25519 checks.
 */
export const MAX_ENVELOPE_SIGNATURES = 64;

/** Bytes one signature adds to an envelope's JSON form (actor keyid, Ed25519 signature). */
export const ENVELOPE_SIGNATURE_JSON_SIZE = 153;

// MAX_ENVELOPE_SIGNATURES is chosen within what an entry can hold at all.
if (MAX_ENVELOPE_SIGNATURES * ENVELOPE_SIGNATURE_JSON_SIZE > MAX_ENTRY_SIZE) throw new Error("MAX_ENVELOPE_SIGNATURES exceeds an entry");

const ASCII = /^[\x00-\x7f]*$/;

/**
 * DSSE pre-authentication encoding: `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`,
 * lengths in bytes as ASCII decimal. Throws for a payload type that is not valid Unicode
 * (a lone surrogate), which has no UTF-8 form to sign.
 */
export function pae(payloadType: string, payload: Uint8Array): Uint8Array {
  const type = ASCII.test(payloadType) ? asciiBytes(payloadType) : utf8Encode(payloadType);
  if (type === undefined) throw new ProofError("invalid-argument", "payloadType is not valid Unicode (lone surrogate)");
  const head = asciiBytes(`DSSEv1 ${type.length} `);
  const mid = asciiBytes(` ${payload.length} `);
  const out = new Uint8Array(head.length + type.length + mid.length + payload.length);
  out.set(head, 0);
  out.set(type, head.length);
  out.set(mid, head.length + type.length);
  out.set(payload, head.length + type.length + mid.length);
  return out;
}

// Faster than a TextEncoder call for the short ASCII heads of every PAE.
function asciiBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** An Ed25519 DSSE signer from a 32-byte seed; keyid defaults to the actor id (base64url public key). */
export function ed25519DsseSigner(seed: Uint8Array, keyid?: string): DsseSigner {
  if (seed.length !== 32) throw new ProofError("malformed-key", "an Ed25519 seed is 32 bytes");
  return { keyid: keyid ?? actorKeyid(ed25519.getPublicKey(seed)), sign: (message) => ed25519.sign(message, seed) };
}

/** The actor id of an Ed25519 public key: its unpadded base64url form (43 characters). */
export function actorKeyid(publicKey: Uint8Array): string {
  if (publicKey.length !== 32) throw new ProofError("malformed-key", "an Ed25519 public key is 32 bytes");
  return base64Encode(publicKey).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
}

/** The Ed25519 public key an actor id names, or undefined if it is not one. */
export function actorPublicKey(keyid: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/.test(keyid)) return undefined;
  return base64Decode(keyid.replace(/-/g, "+").replace(/_/g, "/") + "=");
}

/** Signs `payload` of `payloadType` with each signer, in order. */
export function dsseSign(payloadType: string, payload: Uint8Array, signers: readonly DsseSigner[]): DsseEnvelope {
  const message = pae(payloadType, payload);
  return { payloadType, payload, signatures: signers.map((s) => ({ keyid: s.keyid, sig: s.sign(message) })) };
}

/**
 * The distinct (keyid, sig) pairs of an envelope, first occurrence first, with the index of
 * each in `signatures`: repeating a pair adds nothing to verify.
 */
export function distinctSignatures(signatures: readonly DsseSignature[]): { readonly index: number; readonly signature: DsseSignature }[] {
  const seen = new Set<string>();
  const out: { index: number; signature: DsseSignature }[] = [];
  signatures.forEach((s, index) => {
    const key = `${s.keyid}\u0000${base64Encode(s.sig)}`;
    if (seen.has(key)) return;
    seen.add(key);
    out.push({ index, signature: s });
  });
  return out;
}

/** What `dsseVerify` found: the keyids whose signatures verified (distinct, in order) and those it could not check. */
export interface VerifiedDsse {
  readonly signers: readonly string[];
  /** Keyids with no public key (neither an actor id nor known to `publicKeyOf`). */
  readonly unknown: readonly string[];
}

/**
 * Verifies an envelope's Ed25519 signatures: every signature whose key is known must verify
 * (a known key's bad signature rejects the envelope, as for signed notes), at least one must,
 * and at most MAX_ENVELOPE_SIGNATURES may be present. Identical pairs are checked once.
 * `publicKeyOf` defaults to reading the keyid as an actor id. Throws ProofError.
 */
export function dsseVerify(
  envelope: DsseEnvelope,
  options: { readonly expectedPayloadType?: string; readonly publicKeyOf?: (keyid: string) => Uint8Array | undefined } = {},
): VerifiedDsse {
  if (options.expectedPayloadType !== undefined && envelope.payloadType !== options.expectedPayloadType) {
    throw new ProofError(
      "invalid-argument",
      `payloadType must be ${options.expectedPayloadType}, got ${JSON.stringify(envelope.payloadType)}`,
    );
  }
  if (envelope.signatures.length === 0) throw new ProofError("no-verified-signature", "envelope has no signatures");
  if (envelope.signatures.length > MAX_ENVELOPE_SIGNATURES) {
    throw new ProofError(
      "invalid-argument",
      `envelope has ${envelope.signatures.length} signatures; the limit is ${MAX_ENVELOPE_SIGNATURES}`,
    );
  }
  const publicKeyOf = options.publicKeyOf ?? actorPublicKey;
  const message = pae(envelope.payloadType, envelope.payload);
  const signers: string[] = [];
  const unknown: string[] = [];
  for (const { index, signature } of distinctSignatures(envelope.signatures)) {
    const key = publicKeyOf(signature.keyid);
    if (key === undefined) {
      if (!unknown.includes(signature.keyid)) unknown.push(signature.keyid);
      continue;
    }
    if (!ed25519Verify(key, message, signature.sig)) {
      throw new ProofError("invalid-signature", `signatures[${index}] does not verify for keyid ${signature.keyid}`);
    }
    if (!signers.includes(signature.keyid)) signers.push(signature.keyid);
  }
  if (signers.length === 0) throw new ProofError("no-verified-signature", "no signature of the envelope is from a known key");
  return { signers, unknown };
}

/** The envelope's DSSE JSON form. */
export function dsseToJson(envelope: DsseEnvelope): DsseEnvelopeJson {
  return {
    payloadType: envelope.payloadType,
    payload: base64Encode(envelope.payload),
    signatures: envelope.signatures.map((s) => ({ keyid: s.keyid, sig: base64Encode(s.sig) })),
  };
}

/** Parses the DSSE JSON form (a parsed JSON value); throws ProofError for anything else. */
export function dsseFromJson(json: unknown): DsseEnvelope {
  const e = json as Partial<Record<keyof DsseEnvelopeJson, unknown>> | null;
  if (e === null || typeof e !== "object" || Array.isArray(e)) throw new ProofError("invalid-argument", "a DSSE envelope is a JSON object");
  if (typeof e.payloadType !== "string") throw new ProofError("invalid-argument", "envelope payloadType must be a string");
  const payload = typeof e.payload === "string" ? base64Decode(e.payload) : undefined;
  if (payload === undefined) throw new ProofError("invalid-argument", "envelope payload must be standard base64");
  if (!Array.isArray(e.signatures)) throw new ProofError("invalid-argument", "envelope signatures must be an array");
  const signatures = e.signatures.map((s: unknown, i) => {
    const sig = s as { keyid?: unknown; sig?: unknown } | null;
    const bytes = typeof sig?.sig === "string" ? base64Decode(sig.sig) : undefined;
    if (typeof sig?.keyid !== "string" || bytes === undefined) {
      throw new ProofError("invalid-argument", `signatures[${i}] must be {keyid: string, sig: base64}`);
    }
    return { keyid: sig.keyid, sig: bytes };
  });
  return { payloadType: e.payloadType, payload, signatures };
}
