// RFC 6962 / RFC 9162 §2.1 Merkle tree hashing with SHA-256.

import { sha256 } from "@noble/hashes/sha2.js";

import { ProofError } from "./errors.js";
import { largestPowerOfTwoBelow, pow2, requireCount } from "./tree-math.js";

/** Size in bytes of every hash in the tree (SHA-256). */
export const HASH_SIZE = 32;

/**
 * A node of the tree that roots a perfect subtree: `level` 0 is a leaf, and node
 * (level, index) covers leaves [index·2^level, (index+1)·2^level).
 */
export interface NodeId {
  readonly level: number;
  readonly index: number;
}

/**
 * Reads the hash of a perfect subtree, as stored by a log (tlog-tiles stores exactly these).
 * Proof generation only ever asks for nodes whose subtree is complete in the tree at hand.
 */
export type HashAt = (level: number, index: number) => Uint8Array;

const LEAF_PREFIX = new Uint8Array([0x00]);
const NODE_PREFIX = new Uint8Array([0x01]);

/** RFC 6962 leaf hash: SHA-256(0x00 ‖ entry). */
export function leafHash(entry: Uint8Array): Uint8Array {
  return sha256.create().update(LEAF_PREFIX).update(entry).digest();
}

// Reused for the common 32+32-byte case: sha256 copies its input, and node hashing is the
// hot loop of every proof, so a fresh 65-byte array per call is measurable.
const nodeScratch = new Uint8Array(1 + 2 * 32);
nodeScratch[0] = 0x01;

/** RFC 6962 interior node hash: SHA-256(0x01 ‖ left ‖ right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  if (left.length === 32 && right.length === 32) {
    nodeScratch.set(left, 1);
    nodeScratch.set(right, 33);
    return sha256(nodeScratch);
  }
  return sha256.create().update(NODE_PREFIX).update(left).update(right).digest();
}

/** Root of the empty tree: SHA-256 of the empty string. */
export function emptyRoot(): Uint8Array {
  return sha256(new Uint8Array(0));
}

/** Throws `bad-hash-size` unless h is a 32-byte hash. */
export function requireHash(h: Uint8Array, what: string): void {
  if (!(h instanceof Uint8Array) || h.length !== HASH_SIZE) {
    const got = h instanceof Uint8Array ? `${h.length} bytes` : typeof h;
    throw new ProofError("bad-hash-size", `${what} must be ${HASH_SIZE} bytes, got ${got}`);
  }
}

/** Merkle tree hash of a list of leaf hashes (RFC 6962 MTH: split at the largest power of two below n). */
export function rootFromLeafHashes(leafHashes: readonly Uint8Array[]): Uint8Array {
  if (leafHashes.length === 0) return emptyRoot();
  leafHashes.forEach((h, i) => requireHash(h, `leaf hash ${i}`));
  return mth(leafHashes, 0, leafHashes.length);
}

function mth(hashes: readonly Uint8Array[], lo: number, hi: number): Uint8Array {
  const n = hi - lo;
  if (n === 1) return hashes[lo]!;
  const k = largestPowerOfTwoBelow(n);
  return nodeHash(mth(hashes, lo, lo + k), mth(hashes, lo + k, hi));
}

/**
 * The perfect subtrees that make up leaves [begin, end), left to right: the compact range.
 * For a prefix [0, n) these are the nodes of n's one bits, largest first.
 */
export function compactRangeNodes(begin: number, end: number): NodeId[] {
  requireCount(begin, "begin");
  requireCount(end, "end");
  if (begin > end) throw new ProofError("invalid-argument", `range begin ${begin} > end ${end}`);
  const nodes: NodeId[] = [];
  let lo = begin;
  while (lo < end) {
    let level = 0;
    while (lo % pow2(level + 1) === 0 && lo + pow2(level + 1) <= end) level++;
    nodes.push({ level, index: lo / pow2(level) });
    lo += pow2(level);
  }
  return nodes;
}

/** Root of the tree of the given size from stored subtree hashes: popcount(size) reads. */
export function rootFromSubtreeHashes(size: number, hashAt: HashAt): Uint8Array {
  requireCount(size, "tree size");
  if (size === 0) return emptyRoot();
  const nodes = compactRangeNodes(0, size);
  return compactRangeHash(nodes.map((n) => readHash(hashAt, n)));
}

/** Hash of a tree prefix (or a proof's right border) from its compact range hashes, largest first. */
export function compactRangeHash(hashes: readonly Uint8Array[]): Uint8Array {
  let acc = hashes[hashes.length - 1];
  if (acc === undefined) throw new ProofError("invalid-argument", "cannot fold an empty range");
  for (let i = hashes.length - 2; i >= 0; i--) acc = nodeHash(hashes[i]!, acc);
  return acc;
}

/** Calls hashAt and checks that the answer is a 32-byte hash. */
export function readHash(hashAt: HashAt, node: NodeId): Uint8Array {
  const h = hashAt(node.level, node.index);
  requireHash(h, `hash of node (level ${node.level}, index ${node.index})`);
  return h;
}

/**
 * A HashAt over an in-memory list of leaf hashes, precomputing every perfect subtree
 * (≈ 2n hashes). For tests, small trees and clients holding all leaves.
 */
export function subtreeHashAccessor(leafHashes: readonly Uint8Array[]): HashAt {
  leafHashes.forEach((h, i) => requireHash(h, `leaf hash ${i}`));
  const levels: Uint8Array[][] = [leafHashes.slice()];
  for (let below = levels[0]!; below.length >= 2;) {
    const above: Uint8Array[] = [];
    for (let i = 0; i + 1 < below.length; i += 2) above.push(nodeHash(below[i]!, below[i + 1]!));
    levels.push(above);
    below = above;
  }
  return (level, index) => {
    const h = levels[level]?.[index];
    if (h === undefined) {
      throw new ProofError(
        "index-out-of-range",
        `no complete subtree at level ${level}, index ${index} in a tree of ${leafHashes.length} leaves`,
      );
    }
    return h;
  };
}
