// DSSE envelopes (https://github.com/secure-systems-lab/dsse): PAE, signature checks, and the
// ledger's leaf: the RFC 8785 canonical JSON of the envelope.
import { createPublicKey, verify, type KeyObject } from "node:crypto";

import { InvalidArgumentError } from "@deai/kit/errors";
import { base64Decode, base64Encode, leafHash, MAX_ENTRY_SIZE } from "@deai/proofs";

import { canonicalJson, type JsonValue } from "./jcs.js";
import { parseStatement, type StatementSummary } from "./statement.js";

export const IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json";
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

const encoder = new TextEncoder();

/** DSSE pre-authentication encoding: "DSSEv1 <len(type)> <type> <len(body)> <body>" (lengths in bytes). */
export function pae(payloadType: string, payload: Uint8Array): Uint8Array {
  const type = encoder.encode(payloadType);
  const head = encoder.encode(`DSSEv1 ${type.length} ${payloadType} ${payload.length} `);
  const out = new Uint8Array(head.length + payload.length);
  out.set(head, 0);
  out.set(payload, head.length);
  return out;
}

/** The envelope's DSSE JSON form (base64 payload and signatures). */
export function envelopeJson(e: Envelope): JsonValue {
  return {
    payloadType: e.payloadType,
    payload: base64Encode(e.payload),
    signatures: e.signatures.map((s) => ({ keyid: s.keyid, sig: base64Encode(s.sig) })),
  };
}

/** The leaf bytes of an envelope: RFC 8785 canonical JSON of its DSSE JSON form. */
export function envelopeLeaf(e: Envelope): Uint8Array {
  return encoder.encode(canonicalJson(envelopeJson(e)));
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
  if (!/^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/.test(keyid)) {
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

/**
 * Checks an envelope for the log: an in-toto statement, every signature valid for its keyid,
 * the leaf within MAX_LEAF_SIZE. Throws InvalidArgumentError naming the problem.
 */
export function verifyEnvelope(e: Envelope | undefined): VerifiedEntry {
  if (e === undefined) throw new InvalidArgumentError("envelope is required");
  if (e.payloadType !== IN_TOTO_PAYLOAD_TYPE) {
    throw new InvalidArgumentError(`envelope payloadType must be ${IN_TOTO_PAYLOAD_TYPE}, got ${JSON.stringify(e.payloadType)}`);
  }
  if (e.payload.length === 0) throw new InvalidArgumentError("envelope payload is empty");
  if (e.signatures.length === 0) throw new InvalidArgumentError("envelope has no signatures");
  if (e.signatures.length > 64) throw new InvalidArgumentError("envelope has more than 64 signatures");
  const leaf = envelopeLeaf(e);
  if (leaf.length > MAX_LEAF_SIZE) throw new InvalidArgumentError(`entry is ${leaf.length} bytes as a leaf; the limit is ${MAX_LEAF_SIZE}`);
  const message = pae(e.payloadType, e.payload);
  const signers: string[] = [];
  e.signatures.forEach((s, i) => {
    const key = actorPublicKey(s.keyid, i);
    if (s.sig.length !== 64)
      throw new InvalidArgumentError(`signatures[${i}].sig must be a 64-byte Ed25519 signature, got ${s.sig.length} bytes`);
    if (!verify(null, message, key, s.sig)) throw new InvalidArgumentError(`signatures[${i}] does not verify for keyid ${s.keyid}`);
    if (!signers.includes(s.keyid)) signers.push(s.keyid);
  });
  const statement = parseStatement(e.payload);
  return { leaf, leafHash: leafHash(leaf), signers, statement };
}
