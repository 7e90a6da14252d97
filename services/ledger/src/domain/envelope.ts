// DSSE envelopes as the log takes them: structural checks, signature checks with native
// Ed25519, and the ledger's leaf (the RFC 8785 canonical JSON of the envelope). PAE, the
// in-toto constants and the signature limit are @deai/proofs' (the one DSSE implementation).
import { createHash, createPublicKey, verify, type KeyObject } from "node:crypto";

import { InvalidArgumentError } from "@deai/kit/errors";
import {
  actorPublicKey as actorPublicKeyBytes,
  base64Decode,
  distinctSignatures,
  IN_TOTO_PAYLOAD_TYPE,
  MAX_ENTRY_SIZE,
  MAX_ENVELOPE_SIGNATURES,
  pae,
} from "@deai/proofs";

import type { JsonValue } from "./jcs.js";
import { parseStatement, type StatementSummary } from "./statement.js";

/** Largest leaf: entry bundles prefix each entry with a uint16 length. */
export const MAX_LEAF_SIZE = MAX_ENTRY_SIZE;

/** The envelope fields, as the contract's DsseEnvelope carries them. */
export interface Envelope {
  readonly payloadType: string;
  readonly payload: Uint8Array;
  readonly signatures: readonly { readonly keyid: string; readonly sig: Uint8Array }[];
}

/** An envelope whose signatures verified, with the exact leaf the log hashes. */
export interface VerifiedEntry {
  readonly leaf: Uint8Array;
  readonly leafHash: Uint8Array;
  readonly signers: readonly string[];
  readonly statement: StatementSummary;
}

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

/** The envelope's DSSE JSON form (base64 payload and signatures). */
export function envelopeJson(e: Envelope): JsonValue {
  return {
    payloadType: e.payloadType,
    payload: base64(e.payload),
    signatures: e.signatures.map((s) => ({ keyid: s.keyid, sig: base64(s.sig) })),
  };
}

/**
 * The leaf bytes of an envelope: RFC 8785 canonical JSON of its DSSE JSON form. Written out
 * directly (it is on every append): keys in JCS order ("payload" < "payloadType" <
 * "signatures", "keyid" < "sig"), strings escaped by JSON.stringify as JCS specifies — the
 * same bytes as `canonicalJson(envelopeJson(e))` (a test holds them equal).
 */
export function envelopeLeaf(e: Envelope): Uint8Array {
  const sigs = e.signatures.map((s) => `{"keyid":${JSON.stringify(s.keyid)},"sig":"${base64(s.sig)}"}`).join(",");
  return Buffer.from(`{"payload":"${base64(e.payload)}","payloadType":${JSON.stringify(e.payloadType)},"signatures":[${sigs}]}`, "utf8");
}

const LEAF_PREFIX = Buffer.from([0]);

/** RFC 6962 leaf hash SHA-256(0x00 ‖ leaf), with node:crypto (the same value as @deai/proofs' leafHash). */
export function entryLeafHash(leaf: Uint8Array): Uint8Array {
  return createHash("sha256").update(LEAF_PREFIX).update(leaf).digest();
}

/** Decodes a stored leaf back into its envelope. */
export function envelopeFromLeaf(leaf: Uint8Array): Envelope {
  const j = JSON.parse(new TextDecoder().decode(leaf)) as {
    payloadType: string;
    payload: string;
    signatures: { keyid: string; sig: string }[];
  };
  return {
    payloadType: j.payloadType,
    payload: base64Decode(j.payload) ?? new Uint8Array(),
    signatures: j.signatures.map((s) => ({ keyid: s.keyid, sig: base64Decode(s.sig) ?? new Uint8Array() })),
  };
}

// Native Ed25519 (node:crypto) is several times faster than a pure-JS verify, and the append
// path verifies every signature; key objects are cached because building one costs as much.
const keyCache = new Map<string, KeyObject>();

function actorPublicKey(keyid: string, i: number): KeyObject {
  const cached = keyCache.get(keyid);
  if (cached) return cached;
  if (actorPublicKeyBytes(keyid) === undefined) {
    throw new InvalidArgumentError(`signatures[${i}].keyid must be an actor id (base64url Ed25519 public key, 43 chars)`);
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: keyid }, format: "jwk" });
  } catch {
    throw new InvalidArgumentError(`signatures[${i}].keyid is not an Ed25519 public key`);
  }
  if (keyCache.size >= 10_000) keyCache.clear();
  keyCache.set(keyid, key);
  return key;
}

/** One Ed25519 check of an envelope: `sig` over `message` (the PAE) by `keyid`. */
export interface SignatureCheck {
  readonly keyid: string;
  readonly key: KeyObject;
  readonly message: Uint8Array;
  readonly sig: Uint8Array;
}

/**
 * An envelope checked for everything but its Ed25519 signatures: `checks` are the distinct
 * signatures still to verify, in order, and `positions` their indexes in the envelope;
 * `failure`, if set, is the problem with the signature after them (a keyid that is not a key,
 * a signature of the wrong length), reported only if those verify.
 */
export interface PreparedEnvelope {
  readonly payload: Uint8Array;
  readonly leaf: Uint8Array;
  readonly leafHash: Uint8Array;
  readonly checks: readonly SignatureCheck[];
  readonly positions: readonly number[];
  readonly failure?: InvalidArgumentError;
}

/**
 * The structural checks of `verifyEnvelope`, up to (not including) the signature checks:
 * payload type, non-empty payload, 1 to MAX_ENVELOPE_SIGNATURES signatures, the leaf within
 * MAX_LEAF_SIZE, then each distinct signature's keyid and length. A (keyid, sig) pair repeated
 * in the envelope is checked once (the leaf keeps every copy), so an envelope costs at most
 * MAX_ENVELOPE_SIGNATURES Ed25519 checks however it is built. Throws InvalidArgumentError.
 */
export function prepareEnvelope(e: Envelope | undefined): PreparedEnvelope {
  if (e === undefined) throw new InvalidArgumentError("envelope is required");
  if (e.payloadType !== IN_TOTO_PAYLOAD_TYPE) {
    throw new InvalidArgumentError(`envelope payloadType must be ${IN_TOTO_PAYLOAD_TYPE}, got ${JSON.stringify(e.payloadType)}`);
  }
  if (e.payload.length === 0) throw new InvalidArgumentError("envelope payload is empty");
  if (e.signatures.length === 0) throw new InvalidArgumentError("envelope has no signatures");
  if (e.signatures.length > MAX_ENVELOPE_SIGNATURES) {
    throw new InvalidArgumentError(`envelope has ${e.signatures.length} signatures; the limit is ${MAX_ENVELOPE_SIGNATURES}`);
  }
  const leaf = envelopeLeaf(e);
  if (leaf.length > MAX_LEAF_SIZE) throw new InvalidArgumentError(`entry is ${leaf.length} bytes as a leaf; the limit is ${MAX_LEAF_SIZE}`);
  const leafHash = entryLeafHash(leaf);
  const message = pae(e.payloadType, e.payload);
  const checks: SignatureCheck[] = [];
  const positions: number[] = [];
  for (const { index: i, signature: s } of distinctSignatures(e.signatures)) {
    try {
      const key = actorPublicKey(s.keyid, i);
      if (s.sig.length !== 64)
        throw new InvalidArgumentError(`signatures[${i}].sig must be a 64-byte Ed25519 signature, got ${s.sig.length} bytes`);
      checks.push({ keyid: s.keyid, key, message, sig: s.sig });
      positions.push(i);
    } catch (err) {
      if (!(err instanceof InvalidArgumentError)) throw err;
      return { payload: e.payload, leaf, leafHash, checks, positions, failure: err };
    }
  }
  return { payload: e.payload, leaf, leafHash, checks, positions };
}

/**
 * Completes a prepared envelope given the outcome of each of its checks (in order): the first
 * signature that does not verify, else the prepared failure, else the statement's problem is
 * thrown as InvalidArgumentError; otherwise the verified entry.
 */
export function completeEnvelope(p: PreparedEnvelope, verified: readonly boolean[]): VerifiedEntry {
  const signers: string[] = [];
  p.checks.forEach((c, i) => {
    if (!verified[i]) throw new InvalidArgumentError(`signatures[${p.positions[i]}] does not verify for keyid ${c.keyid}`);
    if (!signers.includes(c.keyid)) signers.push(c.keyid);
  });
  if (p.failure) throw p.failure;
  const statement = parseStatement(p.payload);
  return { leaf: p.leaf, leafHash: p.leafHash, signers, statement };
}

/** Verifies one signature check on this thread. */
export function verifySignature(c: SignatureCheck): boolean {
  return verify(null, c.message, c.key, c.sig);
}

/**
 * Checks an envelope for the log: an in-toto statement, every signature valid for its keyid,
 * the leaf within MAX_LEAF_SIZE. Throws InvalidArgumentError naming the problem.
 */
export function verifyEnvelope(e: Envelope | undefined): VerifiedEntry {
  const p = prepareEnvelope(e);
  const verified: boolean[] = [];
  for (const c of p.checks) {
    const ok = verifySignature(c);
    verified.push(ok);
    if (!ok) break;
  }
  return completeEnvelope(p, verified);
}
