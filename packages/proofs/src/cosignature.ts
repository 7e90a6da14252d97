// C2SP tlog-cosignature, Ed25519 flavour (signature type 0x04): a witness signs
//   "cosignature/v1\ntime <t>\n" ‖ checkpoint text
// and its signature line carries keyID ‖ 8-byte big-endian timestamp t ‖ 64-byte signature.

import { ed25519 } from "@noble/curves/ed25519.js";

import { concatBytes, utf8Encode } from "./encoding.js";
import { ProofError } from "./errors.js";
import { noteKeyId, type NoteSigner, type NoteVerifier } from "./signed-note.js";

/** Signature type byte of timestamped Ed25519 cosignatures. */
export const COSIGNATURE_V1_TYPE = 0x04;

const COSIGNATURE_SIZE = 8 + 64;
const MAX_TIMESTAMP = Number.MAX_SAFE_INTEGER; // the spec allows up to 2^63 - 1; numbers stop at 2^53 - 1

/** The message a cosignature signs: "cosignature/v1\ntime <t>\n" followed by the checkpoint text. */
export function cosignatureMessage(timestamp: number, checkpointText: Uint8Array): Uint8Array {
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
    throw new ProofError("invalid-argument", `cosignature timestamp must be a non-negative safe integer, got ${timestamp}`);
  }
  return concatBytes(utf8Encode(`cosignature/v1\ntime ${timestamp}\n`)!, checkpointText);
}

/** The POSIX timestamp (seconds) a cosignature payload carries; throws if it is not a cosignature. */
export function cosignatureTimestamp(signature: Uint8Array): number {
  if (signature.length !== COSIGNATURE_SIZE) {
    throw new ProofError("invalid-signature", `a cosignature is ${COSIGNATURE_SIZE} bytes, got ${signature.length}`);
  }
  const view = new DataView(signature.buffer, signature.byteOffset, 8);
  const t = view.getBigUint64(0);
  if (t > BigInt(MAX_TIMESTAMP)) throw new ProofError("invalid-signature", `cosignature timestamp ${t} is out of range`);
  return Number(t);
}

/** A witness's cosigner from its name and 32-byte Ed25519 seed; `clock` gives POSIX seconds. */
export function cosignatureSigner(name: string, seed: Uint8Array, clock: () => number = () => Math.floor(Date.now() / 1000)): NoteSigner {
  if (seed.length !== 32) throw new ProofError("malformed-key", "an Ed25519 seed is 32 bytes");
  const publicKey = ed25519.getPublicKey(seed);
  const keyId = noteKeyId(name, COSIGNATURE_V1_TYPE, publicKey);
  return {
    name,
    keyId,
    type: COSIGNATURE_V1_TYPE,
    sign(message) {
      const t = clock();
      const ts = new Uint8Array(8);
      new DataView(ts.buffer).setBigUint64(0, BigInt(t));
      return concatBytes(ts, ed25519.sign(cosignatureMessage(t, message), seed));
    },
  };
}

/** Verifies a witness's cosignatures given its name and 32-byte Ed25519 public key. */
export function cosignatureVerifier(name: string, publicKey: Uint8Array): NoteVerifier {
  if (publicKey.length !== 32) throw new ProofError("malformed-key", "an Ed25519 public key is 32 bytes");
  return {
    name,
    keyId: noteKeyId(name, COSIGNATURE_V1_TYPE, publicKey),
    type: COSIGNATURE_V1_TYPE,
    verify(message, signature) {
      if (signature.length !== COSIGNATURE_SIZE) return false;
      // Only checkpoints are cosigned: origin, size and root lines at least.
      if (countNewlines(message) < 3) return false;
      let t: number;
      try {
        t = cosignatureTimestamp(signature);
      } catch {
        return false;
      }
      return ed25519Verify(publicKey, cosignatureMessage(t, message), signature.subarray(8));
    },
  };
}

function countNewlines(b: Uint8Array): number {
  let n = 0;
  for (const x of b) if (x === 0x0a) n++;
  return n;
}

/** Strict RFC 8032 verification (no ZIP-215 leniency), so a signature has one valid encoding. */
export function ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 64 || publicKey.length !== 32) return false;
  try {
    return ed25519.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}
