/**
 * Bounds on everything an upload request controls, derived from the limits downstream, so
 * that an upload the ledger must refuse, or one whose bookkeeping costs far more than its
 * bytes, is refused at create instead of being stranded after its bytes were stored.
 *
 * - The manifest statement is anchored as one DSSE envelope, and the ledger's leaf (the
 *   envelope's canonical JSON: base64 payload plus signatures) holds at most MAX_ENTRY_SIZE
 *   (65,535) bytes. With room for MAX_MANIFEST_SIGNATURES signatures, that leaves
 *   `maxStatementBytes()` for the statement. Its worst case is computed at create from the
 *   spec's own fields and the placement, with the largest values of what is only known at
 *   finish (size, stripes, digests, timestamp).
 * - S: the codec needs a multiple of 8 bytes; below 4 KiB the leaf table (32 bytes per shard)
 *   outgrows the data it commits to, above 4 MiB one stripe buffer and every part buffer
 *   grow past what a shared service should hold per session.
 * - The leaf table (stripes × n × 32 bytes) is bounded, which bounds the declared size for a
 *   given geometry, the reader manifest, and the cost of a shard proof.
 */
import { MAX_ENTRY_SIZE } from "@deai/proofs";

import { InvalidArgumentError } from "@deai/kit/errors";

/** Smallest shard size S accepted for a new upload (bytes). */
export const MIN_SHARD_SIZE = 4 * 1024;
/** Largest shard size S accepted for a new upload (bytes). */
export const MAX_SHARD_SIZE = 4 * 1024 * 1024;
/** Signatures a manifest envelope may carry (the owner's and co-signers'); room is kept for them in the ledger entry. */
export const MAX_MANIFEST_SIGNATURES = 8;
export const MAX_NAME_CHARS = 256;
export const MAX_LICENSE_CHARS = 256;
export const MAX_MEDIA_TYPE_CHARS = 256;
export const MAX_PARENTS = 64;
export const MAX_PROVENANCE_FIELDS = 128;
export const MAX_PROVENANCE_KEY_CHARS = 128;

const PAYLOAD_TYPE = "application/vnd.in-toto+json";
/** One signature in the leaf: {"keyid":"<43-char actor id>","sig":"<88-char base64>"}. */
const SIGNATURE_LEAF_BYTES = `{"keyid":"${"k".repeat(43)}","sig":"${"s".repeat(88)}"}`.length;

/** Bytes of the ledger leaf (canonical JSON of the DSSE envelope) for a payload of `payloadBytes` and `signatures` signatures. */
export function envelopeLeafBytes(payloadBytes: number, signatures: number): number {
  const head = `{"payload":"","payloadType":"${PAYLOAD_TYPE}","signatures":[]}`.length;
  const base64 = 4 * Math.ceil(payloadBytes / 3);
  return head + base64 + signatures * SIGNATURE_LEAF_BYTES + Math.max(0, signatures - 1);
}

/** The largest statement whose envelope, with MAX_MANIFEST_SIGNATURES signatures, fits one ledger entry. */
export function maxStatementBytes(entryLimit = MAX_ENTRY_SIZE, signatures = MAX_MANIFEST_SIGNATURES): number {
  const room = entryLimit - envelopeLeafBytes(0, signatures);
  return Math.floor(room / 4) * 3;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Refuses text the statement and Postgres jsonb cannot carry: NUL and lone UTF-16 surrogates
 * (jsonb refuses `\u0000` and unpaired surrogate escapes).
 */
export function checkText(field: string, value: string, maxChars?: number): void {
  if (maxChars !== undefined && value.length > maxChars)
    throw new InvalidArgumentError(`${field} is ${value.length} characters; the limit is ${maxChars}`);
  if (value.includes("\u0000")) throw new InvalidArgumentError(`${field} contains a NUL character`);
  if (LONE_SURROGATE.test(value)) throw new InvalidArgumentError(`${field} contains a lone UTF-16 surrogate`);
}

/** The spec's free-form fields, as create sees them. */
export interface SpecText {
  readonly name: string;
  readonly mediaType: string;
  readonly license: string;
  readonly usageTerms: string;
  readonly parents: readonly unknown[];
  readonly provenance: Readonly<Record<string, string>>;
}

/** Counts and lengths of the spec's fields; the statement size is checked separately (it needs the placement). */
export function checkSpecFields(spec: SpecText): void {
  checkText("spec.name", spec.name, MAX_NAME_CHARS);
  checkText("spec.media_type", spec.mediaType, MAX_MEDIA_TYPE_CHARS);
  checkText("spec.license", spec.license, MAX_LICENSE_CHARS);
  checkText("spec.usage_terms", spec.usageTerms);
  if (spec.parents.length > MAX_PARENTS)
    throw new InvalidArgumentError(`spec.parents has ${spec.parents.length} entries; the limit is ${MAX_PARENTS}`);
  const fields = Object.entries(spec.provenance);
  if (fields.length > MAX_PROVENANCE_FIELDS)
    throw new InvalidArgumentError(`spec.provenance has ${fields.length} fields; the limit is ${MAX_PROVENANCE_FIELDS}`);
  for (const [key, value] of fields) {
    checkText(`spec.provenance key ${JSON.stringify(key.slice(0, 40))}`, key, MAX_PROVENANCE_KEY_CHARS);
    checkText(`spec.provenance[${JSON.stringify(key)}]`, value);
  }
}

/** Checks S against the service's bounds (the codec's own limits are checked beside it). */
export function checkShardSize(shardSize: number): void {
  if (!Number.isInteger(shardSize) || shardSize % 8 !== 0 || shardSize < MIN_SHARD_SIZE || shardSize > MAX_SHARD_SIZE) {
    throw new InvalidArgumentError(
      `shard size must be a multiple of 8 bytes from ${MIN_SHARD_SIZE} B (4 KiB) to ${MAX_SHARD_SIZE} B (4 MiB), got ${shardSize}`,
    );
  }
}

/** Leaf table bytes of a dataset of `size` bytes. */
export function leafTableBytes(size: number, k: number, m: number, shardSize: number): number {
  return Math.ceil(size / (k * shardSize)) * (k + m) * 32;
}

/** The largest dataset (bytes) whose leaf table fits `maxLeafTableBytes` for this geometry. */
export function maxSizeForLeafTable(maxLeafTableBytes: number, k: number, m: number, shardSize: number): number {
  return Math.floor(maxLeafTableBytes / ((k + m) * 32)) * k * shardSize;
}

/**
 * Refuses a statement whose worst case does not fit: `worstCaseBytes` is the statement built
 * from the spec, the placement and the largest values of what finish fills in.
 */
export function checkStatementSize(worstCaseBytes: number, limit = maxStatementBytes()): void {
  if (worstCaseBytes > limit) {
    throw new InvalidArgumentError(
      `the manifest statement of this spec can reach ${worstCaseBytes} bytes; a ledger entry holds statements up to ${limit} bytes ` +
        `(room kept for ${MAX_MANIFEST_SIGNATURES} signatures): shorten spec.usage_terms, spec.provenance, spec.parents or spec.name`,
    );
  }
}
