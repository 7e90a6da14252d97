/**
 * Dataset layout and commitments (ARCHITECTURE.md, "Data layout and commitments"): stripes
 * of k data shards of S bytes plus m parity shards; leaf = SHA-256(0x00 ‖ shard) ordered
 * (stripe, slot); shardRoot = RFC 6962 root over all leaves. Shared by ingestion, DA
 * sampling, the trainer's reader (in Python) and third-party verifiers.
 */
import { ProofError } from "./errors.js";
import { bytesEqual } from "./encoding.js";
import { leafHash, rootFromLeafHashes } from "./rfc6962.js";

export interface DatasetGeometry {
  /** Data shards per stripe. */
  readonly k: number;
  /** Parity shards per stripe. */
  readonly m: number;
  /** Bytes per shard. */
  readonly shardSize: number;
  /** True length of the dataset in bytes (the last stripe is zero-padded). */
  readonly size: number;
}

/** Number of stripes a dataset of `size` bytes occupies (0 for an empty dataset). */
export function stripeCount(g: DatasetGeometry): number {
  return Math.ceil(g.size / (g.k * g.shardSize));
}

/** Position of shard (stripe, slot) in the leaf table. */
export function leafIndex(g: Pick<DatasetGeometry, "k" | "m">, stripe: number, slot: number): number {
  const n = g.k + g.m;
  if (slot < 0 || slot >= n) throw new ProofError("invalid-argument", `slot ${slot} outside 0..${n - 1}`);
  return stripe * n + slot;
}

/** The leaf hash of one shard: SHA-256(0x00 ‖ shard). */
export const shardLeaf = leafHash;

/** shardRoot over a leaf table ordered (stripe, slot). */
export function shardRoot(leaves: readonly Uint8Array[]): Uint8Array {
  return rootFromLeafHashes(leaves);
}

/** Checks a shard's bytes against its entry in the leaf table; throws root-mismatch naming stripe and slot. */
export function verifyShard(
  g: Pick<DatasetGeometry, "k" | "m" | "shardSize">,
  leaves: readonly Uint8Array[],
  stripe: number,
  slot: number,
  shard: Uint8Array,
): void {
  if (shard.length !== g.shardSize)
    throw new ProofError("invalid-argument", `shard (${stripe}, ${slot}) is ${shard.length} bytes, expected ${g.shardSize}`);
  const expected = leaves[leafIndex(g, stripe, slot)];
  if (!expected) throw new ProofError("index-out-of-range", `no leaf for shard (${stripe}, ${slot})`);
  if (!bytesEqual(shardLeaf(shard), expected))
    throw new ProofError("root-mismatch", `shard (${stripe}, ${slot}) does not match its leaf hash`);
}
