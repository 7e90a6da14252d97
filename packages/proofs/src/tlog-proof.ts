// C2SP tlog-proof (c2sp.org/tlog-proof@v1): an offline-verifiable receipt that an entry is
// in a log, as written by transparency-dev/merkle's NewTLogProof:
//
//   c2sp.org/tlog-proof@v1
//   extra <base64 opaque data>          (optional, unauthenticated)
//   index <decimal, no leading zeros>
//   <base64 inclusion proof hash>       (zero or more, leaf's sibling first)
//   <blank line>
//   <signed checkpoint note, verbatim, cosignatures included>
//
// Files holding one SHOULD be named *.tlog-proof.

import { base64Decode, base64Encode, parseDecimal, utf8Decode } from "./encoding.js";
import { ProofError } from "./errors.js";
import { HASH_SIZE, leafHash as hashLeaf, requireHash, type HashAt } from "./rfc6962.js";
import { inclusionProof, verifyInclusion } from "./inclusion.js";
import { openCheckpoint, parseCheckpoint, type CheckpointPolicy, type VerifiedCheckpoint } from "./checkpoint.js";
import { parseNote } from "./signed-note.js";

/** First line of every tlog-proof. */
export const TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1";

/** A parsed tlog-proof receipt. */
export interface TlogProof {
  /** Opaque application data; not authenticated by anything in the receipt. */
  readonly extra?: Uint8Array;
  readonly index: number;
  readonly inclusionProof: readonly Uint8Array[];
  /** The signed checkpoint note, verbatim. */
  readonly checkpoint: string;
}

/** What the receipt is about: the entry bytes, or its RFC 6962 leaf hash. */
export type ReceiptLeaf = { readonly entry: Uint8Array } | { readonly leafHash: Uint8Array };

/** A receipt that verified: the entry is at `index` in the checkpointed tree. */
export interface VerifiedTlogProof extends VerifiedCheckpoint {
  readonly index: number;
  readonly extra?: Uint8Array;
}

function malformed(why: string): ProofError {
  return new ProofError("malformed-receipt", `malformed tlog-proof: ${why}`);
}

/** Serializes a receipt in the c2sp.org/tlog-proof@v1 text format. */
export function formatTlogProof(proof: TlogProof): string {
  if (!Number.isSafeInteger(proof.index) || proof.index < 0)
    throw malformed(`index must be a non-negative safe integer, got ${proof.index}`);
  proof.inclusionProof.forEach((h, i) => requireHash(h, `inclusion proof hash ${i}`));
  if (proof.checkpoint.length === 0) throw malformed("checkpoint is empty");
  const lines = [TLOG_PROOF_HEADER];
  if (proof.extra !== undefined) lines.push(`extra ${base64Encode(proof.extra)}`);
  lines.push(`index ${proof.index}`);
  for (const h of proof.inclusionProof) lines.push(base64Encode(h));
  return lines.map((l) => l + "\n").join("") + "\n" + proof.checkpoint;
}

/**
 * Builds a receipt for entry `index` against a signed checkpoint, taking the tree size from the
 * checkpoint itself so proof and checkpoint cannot disagree. `hashAt` reads stored subtree hashes.
 */
export function buildTlogProof(index: number, signedCheckpoint: string, hashAt: HashAt, extra?: Uint8Array): string {
  const { size } = parseCheckpoint(parseNote(signedCheckpoint).text);
  const proof: TlogProof = { index, inclusionProof: inclusionProof(index, size, hashAt), checkpoint: signedCheckpoint };
  return formatTlogProof(extra === undefined ? proof : { ...proof, extra });
}

/** Strictly parses a c2sp.org/tlog-proof@v1 receipt (the checkpoint is checked by `verifyTlogProof`). */
export function parseTlogProof(input: string | Uint8Array): TlogProof {
  const text = typeof input === "string" ? input : utf8Decode(input);
  if (text === undefined) throw malformed("not valid UTF-8");
  let pos = 0;
  const nextLine = (what: string): string => {
    const nl = text.indexOf("\n", pos);
    if (nl < 0) throw malformed(`missing ${what}`);
    const line = text.slice(pos, nl);
    pos = nl + 1;
    return line;
  };
  if (nextLine("header") !== TLOG_PROOF_HEADER) throw malformed(`first line must be ${TLOG_PROOF_HEADER}`);
  let line = nextLine("index line");
  let extra: Uint8Array | undefined;
  if (line.startsWith("extra ")) {
    extra = base64Decode(line.slice("extra ".length));
    if (extra === undefined) throw malformed("extra data is not canonical base64");
    line = nextLine("index line");
  }
  if (!line.startsWith("index ")) throw malformed(`expected "index <n>", got ${JSON.stringify(line.slice(0, 40))}`);
  const index = parseDecimal(line.slice("index ".length));
  if (index === undefined) throw malformed(`index must be a decimal with no leading zeros below 2^53, got ${JSON.stringify(line)}`);
  const inclusionProof: Uint8Array[] = [];
  for (line = nextLine("blank line before the checkpoint"); line !== ""; line = nextLine("blank line before the checkpoint")) {
    const h = base64Decode(line);
    if (h === undefined || h.length !== HASH_SIZE)
      throw malformed(`proof line ${inclusionProof.length} is not base64 of a ${HASH_SIZE}-byte hash`);
    inclusionProof.push(h);
  }
  const checkpoint = text.slice(pos);
  if (checkpoint.length === 0) throw malformed("missing checkpoint");
  return extra === undefined ? { index, inclusionProof, checkpoint } : { extra, index, inclusionProof, checkpoint };
}

/**
 * Verifies a receipt offline: the checkpoint is signed by the pinned log key (and witnesses,
 * per the policy), its origin matches, and the inclusion proof puts the leaf at `index` under
 * the checkpoint's root. Throws ProofError naming the failed check.
 */
export function verifyTlogProof(receipt: string | Uint8Array | TlogProof, leaf: ReceiptLeaf, policy: CheckpointPolicy): VerifiedTlogProof {
  const proof = typeof receipt === "string" || receipt instanceof Uint8Array ? parseTlogProof(receipt) : receipt;
  const hash = "entry" in leaf ? hashLeaf(leaf.entry) : leaf.leafHash;
  requireHash(hash, "leaf hash");
  const verified = openCheckpoint(proof.checkpoint, policy);
  const { size, rootHash } = verified.checkpoint;
  verifyInclusion(proof.index, size, hash, proof.inclusionProof, rootHash);
  return proof.extra === undefined ? { ...verified, index: proof.index } : { ...verified, index: proof.index, extra: proof.extra };
}
