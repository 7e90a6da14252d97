// C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint): the note text of a signed tree head.
//
//   <origin>\n<decimal tree size>\n<base64 root hash>\n[<extension line>\n ...]

import { base64Decode, base64Encode, parseDecimal } from "./encoding.js";
import { ProofError } from "./errors.js";
import { HASH_SIZE } from "./rfc6962.js";
import { cosignatureTimestamp, COSIGNATURE_V1_TYPE } from "./cosignature.js";
import { openNote, signNote, type Note, type NoteSigner, type NoteVerifier, type OpenedNote } from "./signed-note.js";

/** A log's tree head: who (origin), how many leaves, and their root. */
export interface Checkpoint {
  readonly origin: string;
  readonly size: number;
  readonly rootHash: Uint8Array;
  /** Opaque extension lines (discouraged by the spec, kept verbatim). */
  readonly extensions: readonly string[];
}

/** Whom a checkpoint must be signed by. */
export interface CheckpointPolicy {
  /** The log's key (pinned). Its signature is required. */
  readonly log: NoteVerifier;
  /** Expected origin line; defaults to the log key's name. */
  readonly origin?: string;
  /** Witness keys whose cosignatures count towards `witnessThreshold`. */
  readonly witnesses?: readonly NoteVerifier[];
  /** Distinct witnesses that must have signed; defaults to all of `witnesses`. */
  readonly witnessThreshold?: number;
}

/** A witness signature found valid on a checkpoint. */
export interface CheckpointCosignature {
  readonly name: string;
  readonly keyId: number;
  /** POSIX seconds, for timestamped (type 0x04) cosignatures. */
  readonly timestamp?: number;
}

/** A checkpoint whose log signature (and witness quorum, if asked for) verified. */
export interface VerifiedCheckpoint {
  readonly checkpoint: Checkpoint;
  readonly note: OpenedNote;
  readonly cosignatures: readonly CheckpointCosignature[];
}

function malformed(why: string): ProofError {
  return new ProofError("malformed-checkpoint", `malformed checkpoint: ${why}`);
}

/** Checkpoint note text: origin, size, base64 root, extension lines, each ending in a newline. */
export function formatCheckpoint(checkpoint: Checkpoint): string {
  const { origin, size, rootHash, extensions } = checkpoint;
  if (origin.length === 0 || origin.includes("\n")) throw malformed("origin must be one non-empty line");
  if (!Number.isSafeInteger(size) || size < 0) throw malformed(`size must be a non-negative safe integer, got ${size}`);
  if (rootHash.length !== HASH_SIZE) throw malformed(`root hash must be ${HASH_SIZE} bytes, got ${rootHash.length}`);
  for (const e of extensions) if (e.length === 0 || e.includes("\n")) throw malformed("extension lines must be non-empty single lines");
  return [origin, String(size), base64Encode(rootHash), ...extensions].map((l) => l + "\n").join("");
}

/** Strictly parses checkpoint note text (not the signed note: see `openCheckpoint`). */
export function parseCheckpoint(text: string): Checkpoint {
  if (!text.endsWith("\n")) throw malformed("text must end with a newline");
  if (/[\u0000-\u0009\u000b-\u001f]/.test(text)) throw malformed("holds an ASCII control character");
  const lines = text.slice(0, -1).split("\n");
  if (lines.length < 3) throw malformed(`needs origin, size and root lines, got ${lines.length} line(s)`);
  if (lines.some((l) => l.length === 0)) throw malformed("empty line");
  const [origin, sizeText, rootText, ...extensions] = lines as [string, string, string, ...string[]];
  const size = parseDecimal(sizeText);
  if (size === undefined) throw malformed(`size must be a decimal with no leading zeros below 2^53, got ${JSON.stringify(sizeText)}`);
  const rootHash = base64Decode(rootText);
  if (rootHash === undefined || rootHash.length !== HASH_SIZE) {
    throw malformed(`root hash must be canonical base64 of ${HASH_SIZE} bytes, got ${JSON.stringify(rootText)}`);
  }
  return { origin, size, rootHash, extensions };
}

/** Signs a checkpoint (log first, then any others) and returns the signed note. */
export function signCheckpoint(checkpoint: Checkpoint, signers: readonly NoteSigner[]): string {
  return signNote(formatCheckpoint(checkpoint), signers);
}

/** Adds a witness cosignature to a signed checkpoint note, keeping its other signatures. */
export function cosignCheckpoint(note: Note, cosigner: NoteSigner): string {
  parseCheckpoint(note.text);
  return signNote(note, [cosigner]);
}

/**
 * Opens a signed checkpoint under a policy: the pinned log key must have signed, the origin
 * must match, and at least `witnessThreshold` distinct witnesses must have cosigned. Unknown
 * signatures are ignored; a bad signature from any known key rejects. Throws ProofError.
 */
export function openCheckpoint(input: string | Uint8Array | Note, policy: CheckpointPolicy): VerifiedCheckpoint {
  const witnesses = policy.witnesses ?? [];
  const threshold = policy.witnessThreshold ?? witnesses.length;
  if (!Number.isSafeInteger(threshold) || threshold < 0 || threshold > witnesses.length) {
    throw new ProofError("invalid-argument", `witness threshold ${threshold} is not within 0..${witnesses.length}`);
  }
  const note = openNote(input, [policy.log, ...witnesses.filter((w) => w !== policy.log)]);
  if (!note.verified.some((s) => s.verifier === policy.log)) {
    throw new ProofError("no-verified-signature", `checkpoint is not signed by the log key ${policy.log.name}`);
  }
  const checkpoint = parseCheckpoint(note.text);
  const origin = policy.origin ?? policy.log.name;
  if (checkpoint.origin !== origin) {
    throw new ProofError("origin-mismatch", `checkpoint origin ${JSON.stringify(checkpoint.origin)} is not ${JSON.stringify(origin)}`);
  }
  const cosignatures = note.verified
    .filter((s) => s.verifier !== policy.log)
    .map((s): CheckpointCosignature => {
      const base = { name: s.name, keyId: s.keyId };
      return s.verifier.type === COSIGNATURE_V1_TYPE ? { ...base, timestamp: cosignatureTimestamp(s.signature) } : base;
    });
  if (cosignatures.length < threshold) {
    throw new ProofError("witness-quorum", `checkpoint has ${cosignatures.length} valid witness cosignature(s), need ${threshold}`);
  }
  return { checkpoint, note, cosignatures };
}
