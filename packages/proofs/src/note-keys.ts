// Ed25519 note keys (type 0x01) and the key text of golang.org/x/mod/sumdb/note:
//   verifier key: <name>+<hex key ID>+<base64(type ‖ public key)>
//   signer key:   PRIVATE+KEY+<name>+<hex key ID>+<base64(type ‖ 32-byte seed)>
// The same text form carries cosignature (type 0x04) keys, as transparency-dev does.

import { ed25519 } from "@noble/curves/ed25519.js";

import { COSIGNATURE_V1_TYPE, cosignatureSigner, cosignatureVerifier, ed25519Verify } from "./cosignature.js";
import { base64Decode, base64Encode, concatBytes } from "./encoding.js";
import { ProofError } from "./errors.js";
import { isValidKeyName, keyIdHex, noteKeyId, type NoteSigner, type NoteVerifier } from "./signed-note.js";

/** Signature type byte of plain Ed25519 note signatures. */
export const ED25519_TYPE = 0x01;

/** Key types this package can sign and verify with. */
export type NoteKeyType = typeof ED25519_TYPE | typeof COSIGNATURE_V1_TYPE;

/** Signs notes with an Ed25519 key given its name and 32-byte seed. */
export function ed25519Signer(name: string, seed: Uint8Array): NoteSigner {
  if (seed.length !== 32) throw new ProofError("malformed-key", "an Ed25519 seed is 32 bytes");
  const keyId = noteKeyId(name, ED25519_TYPE, ed25519.getPublicKey(seed));
  return { name, keyId, type: ED25519_TYPE, sign: (message) => ed25519.sign(message, seed) };
}

/** Verifies Ed25519 note signatures given the key's name and 32-byte public key. */
export function ed25519Verifier(name: string, publicKey: Uint8Array): NoteVerifier {
  if (publicKey.length !== 32) throw new ProofError("malformed-key", "an Ed25519 public key is 32 bytes");
  return {
    name,
    keyId: noteKeyId(name, ED25519_TYPE, publicKey),
    type: ED25519_TYPE,
    verify: (message, signature) => ed25519Verify(publicKey, message, signature),
  };
}

function badKey(why: string): ProofError {
  return new ProofError("malformed-key", why);
}

function parseKeyFields(name: string, hash16: string, key64: string, what: string): { keyId: number; type: number; key: Uint8Array } {
  if (!isValidKeyName(name)) throw badKey(`${what}: invalid key name ${JSON.stringify(name)}`);
  if (!/^[0-9a-fA-F]{8}$/.test(hash16)) throw badKey(`${what}: key ID must be 8 hex digits`);
  const material = base64Decode(key64);
  if (material === undefined || material.length < 2) throw badKey(`${what}: key must be base64 of type ‖ key`);
  return { keyId: parseInt(hash16, 16) >>> 0, type: material[0]!, key: material.subarray(1) };
}

// Like Go's chop: the name and key ID cannot hold "+", but base64 can, so the last field is the rest.
function splitPlus(text: string, parts: number, what: string): string[] {
  const fields: string[] = [];
  let rest = text;
  for (let i = 0; i < parts - 1; i++) {
    const plus = rest.indexOf("+");
    if (plus < 0) throw badKey(`${what}: expected ${parts} "+"-separated fields`);
    fields.push(rest.slice(0, plus));
    rest = rest.slice(plus + 1);
  }
  fields.push(rest);
  return fields;
}

/** Parses verifier key text (`name+hexID+base64(type‖key)`), checking the key ID; types 0x01 and 0x04. */
export function parseVerifierKey(vkey: string): NoteVerifier {
  const [name, hash16, key64] = splitPlus(vkey, 3, "verifier key") as [string, string, string];
  const { keyId, type, key } = parseKeyFields(name, hash16, key64, "verifier key");
  const verifier =
    type === ED25519_TYPE ? ed25519Verifier(name, key) : type === COSIGNATURE_V1_TYPE ? cosignatureVerifier(name, key) : undefined;
  if (verifier === undefined) throw badKey(`verifier key: unsupported signature type 0x${type.toString(16).padStart(2, "0")}`);
  if (verifier.keyId !== keyId) {
    throw new ProofError(
      "key-id-mismatch",
      `verifier key ${name}: key ID ${keyIdHex(keyId)} does not match the key (${keyIdHex(verifier.keyId)})`,
    );
  }
  return verifier;
}

/** Parses signer key text (`PRIVATE+KEY+name+hexID+base64(type‖seed)`), checking the key ID; types 0x01 and 0x04. */
export function parseSignerKey(skey: string, options: { clock?: () => number } = {}): NoteSigner {
  const [p1, p2, name, hash16, key64] = splitPlus(skey, 5, "signer key") as [string, string, string, string, string];
  if (p1 !== "PRIVATE" || p2 !== "KEY") throw badKey('signer key must start with "PRIVATE+KEY+"');
  const { keyId, type, key } = parseKeyFields(name, hash16, key64, "signer key");
  if (key.length !== 32) throw badKey("signer key: an Ed25519 seed is 32 bytes");
  const signer =
    type === ED25519_TYPE
      ? ed25519Signer(name, key)
      : type === COSIGNATURE_V1_TYPE
        ? cosignatureSigner(name, key, options.clock)
        : undefined;
  if (signer === undefined) throw badKey(`signer key: unsupported signature type 0x${type.toString(16).padStart(2, "0")}`);
  if (signer.keyId !== keyId) {
    throw new ProofError(
      "key-id-mismatch",
      `signer key ${name}: key ID ${keyIdHex(keyId)} does not match the key (${keyIdHex(signer.keyId)})`,
    );
  }
  return signer;
}

/** Verifier key text for a public key: `name+hexID+base64(type‖key)`. */
export function formatVerifierKey(name: string, type: NoteKeyType, publicKey: Uint8Array): string {
  const keyId = noteKeyId(name, type, publicKey);
  return `${name}+${keyIdHex(keyId)}+${base64Encode(concatBytes(new Uint8Array([type]), publicKey))}`;
}

/** Signer key text for a seed: `PRIVATE+KEY+name+hexID+base64(type‖seed)`. */
export function formatSignerKey(name: string, type: NoteKeyType, seed: Uint8Array): string {
  if (seed.length !== 32) throw badKey("an Ed25519 seed is 32 bytes");
  const keyId = noteKeyId(name, type, ed25519.getPublicKey(seed));
  return `PRIVATE+KEY+${name}+${keyIdHex(keyId)}+${base64Encode(concatBytes(new Uint8Array([type]), seed))}`;
}

/** A new Ed25519 note key pair as signer and verifier key text (random seed unless one is given). */
export function generateNoteKey(
  name: string,
  options: { type?: NoteKeyType; seed?: Uint8Array } = {},
): { signerKey: string; verifierKey: string } {
  const type = options.type ?? ED25519_TYPE;
  const seed = options.seed ?? ed25519.utils.randomSecretKey();
  return {
    signerKey: formatSignerKey(name, type, seed),
    verifierKey: formatVerifierKey(name, type, ed25519.getPublicKey(seed)),
  };
}
