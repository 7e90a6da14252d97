// Deterministic trees for tests.

import { leafHash, nodeHash, type HashAt } from "../src/rfc6962.js";

/** Leaf hashes of entries "entry 0", "entry 1", ... */
export function leafHashes(n: number): Uint8Array[] {
  const enc = new TextEncoder();
  return Array.from({ length: n }, (_, i) => leafHash(enc.encode(`entry ${i}`)));
}

/**
 * A tree of `size` identical leaves, whose subtree hashes depend only on level: consistent,
 * and O(1) per read at any size. Counts reads and checks each asked-for node is complete.
 */
export function uniformTree(size: number): { hashAt: HashAt; reads: () => number; levelHash: (level: number) => Uint8Array } {
  const byLevel: Uint8Array[] = [leafHash(new Uint8Array([42]))];
  const levelHash = (level: number): Uint8Array => {
    while (byLevel.length <= level) byLevel.push(nodeHash(byLevel[byLevel.length - 1]!, byLevel[byLevel.length - 1]!));
    return byLevel[level]!;
  };
  let count = 0;
  const hashAt: HashAt = (level, index) => {
    count++;
    if (!Number.isSafeInteger(index) || index < 0 || (index + 1) * 2 ** level > size) {
      throw new Error(`asked for incomplete node (level ${level}, index ${index}) in a tree of size ${size}`);
    }
    return levelHash(level);
  };
  return { hashAt, reads: () => count, levelHash };
}
