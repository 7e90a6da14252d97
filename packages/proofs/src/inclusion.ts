// Inclusion proofs: RFC 6962 §2.1.1 PATH for generation, RFC 9162 §2.1.3.2 for verification.

import { bytesEqual, hexEncode } from "./encoding.js";
import { ProofError } from "./errors.js";
import { resolvePlan, type ProofPlan } from "./proof-plan.js";
import { compactRangeNodes, nodeHash, requireHash, subtreeHashAccessor, type HashAt, type NodeId } from "./rfc6962.js";
import { half, largestPowerOfTwoBelow, requireCount } from "./tree-math.js";

function requireIndexInTree(index: number, size: number): void {
  requireCount(index, "leaf index");
  requireCount(size, "tree size");
  if (index >= size) {
    throw new ProofError("index-out-of-range", `leaf index ${index} is not in a tree of size ${size}`);
  }
}

/** The subtree hashes an inclusion proof for `index` in a tree of `size` is made of (leaf's sibling first). */
export function inclusionPlan(index: number, size: number): ProofPlan {
  requireIndexInTree(index, size);
  const topDown: NodeId[][] = [];
  let lo = 0;
  let hi = size;
  while (hi - lo > 1) {
    const mid = lo + largestPowerOfTwoBelow(hi - lo);
    if (index < mid) {
      topDown.push(compactRangeNodes(mid, hi));
      hi = mid;
    } else {
      topDown.push(compactRangeNodes(lo, mid));
      lo = mid;
    }
  }
  return topDown.reverse();
}

/** Inclusion proof for leaf `index` in the tree of `size` leaves, from stored subtree hashes (O(log n) reads). */
export function inclusionProof(index: number, size: number, hashAt: HashAt): Uint8Array[] {
  return resolvePlan(inclusionPlan(index, size), hashAt);
}

/** Inclusion proof for leaf `index` in the tree made of all the given leaf hashes. */
export function inclusionProofFromLeaves(index: number, leafHashes: readonly Uint8Array[]): Uint8Array[] {
  return inclusionProof(index, leafHashes.length, subtreeHashAccessor(leafHashes));
}

/** Number of hashes in an inclusion proof for `index` in a tree of `size` leaves. */
export function inclusionProofSize(index: number, size: number): number {
  requireIndexInTree(index, size);
  // Walks the RFC 9162 verification loop without hashing.
  let fn = index;
  let sn = size - 1;
  let count = 0;
  while (sn > 0) {
    if (fn % 2 === 1 || fn === sn) {
      while (fn % 2 === 0 && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    }
    fn = half(fn);
    sn = half(sn);
    count++;
  }
  return count;
}

/** The root implied by an inclusion proof (RFC 9162 §2.1.3.2); throws ProofError on malformed input. */
export function rootFromInclusionProof(index: number, size: number, leafHash: Uint8Array, proof: readonly Uint8Array[]): Uint8Array {
  requireIndexInTree(index, size);
  requireHash(leafHash, "leaf hash");
  proof.forEach((p, i) => requireHash(p, `inclusion proof hash ${i}`));
  const want = inclusionProofSize(index, size);
  if (proof.length !== want) {
    throw new ProofError("wrong-proof-size", `inclusion proof for index ${index} in size ${size} has ${want} hashes, got ${proof.length}`);
  }
  let fn = index;
  let sn = size - 1;
  let r = leafHash;
  for (const p of proof) {
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return r;
}

/** Verifies that `leafHash` is leaf `index` of the tree of `size` with `root` (RFC 9162 §2.1.3.2); throws ProofError. */
export function verifyInclusion(index: number, size: number, leafHash: Uint8Array, proof: readonly Uint8Array[], root: Uint8Array): void {
  requireHash(root, "root hash");
  const computed = rootFromInclusionProof(index, size, leafHash, proof);
  if (!bytesEqual(computed, root)) {
    throw new ProofError(
      "root-mismatch",
      `inclusion proof for index ${index} yields root ${hexEncode(computed)} at size ${size}, expected ${hexEncode(root)}`,
    );
  }
}
