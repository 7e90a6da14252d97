// Consistency proofs: RFC 6962 §2.1.2 SUBPROOF for generation, RFC 9162 §2.1.4.2 for verification.

import { bytesEqual, hexEncode } from "./encoding.js";
import { ProofError } from "./errors.js";
import { resolvePlan, type ProofPlan } from "./proof-plan.js";
import { compactRangeNodes, nodeHash, requireHash, subtreeHashAccessor, type HashAt, type NodeId } from "./rfc6962.js";
import { half, isPowerOfTwo, largestPowerOfTwoBelow, requireCount } from "./tree-math.js";

function requireSizes(size1: number, size2: number): void {
  requireCount(size1, "size1");
  requireCount(size2, "size2");
  if (size1 > size2) throw new ProofError("invalid-argument", `size1 ${size1} is greater than size2 ${size2}`);
  // An empty tree is consistent with everything; a proof from it proves nothing, so asking
  // for one is a caller bug (the conformance vectors reject it too).
  if (size1 === 0) throw new ProofError("invalid-argument", "a consistency proof from the empty tree is meaningless");
}

/** The subtree hashes a consistency proof from `size1` to `size2` is made of (0 < size1 ≤ size2). */
export function consistencyPlan(size1: number, size2: number): ProofPlan {
  requireSizes(size1, size2);
  if (size1 === size2) return [];
  const topDown: NodeId[][] = [];
  let lo = 0;
  let hi = size2;
  let m = size1;
  let complete = true; // RFC 6962's b: the old tree is a complete subtree here, so the client knows it.
  for (;;) {
    const n = hi - lo;
    if (m === n) {
      if (!complete) topDown.push(compactRangeNodes(lo, hi));
      break;
    }
    const k = largestPowerOfTwoBelow(n);
    if (m <= k) {
      topDown.push(compactRangeNodes(lo + k, hi));
      hi = lo + k;
    } else {
      topDown.push(compactRangeNodes(lo, lo + k));
      lo += k;
      m -= k;
      complete = false;
    }
  }
  return topDown.reverse();
}

/** Consistency proof from `size1` to `size2`, from stored subtree hashes (O(log n) reads). */
export function consistencyProof(size1: number, size2: number, hashAt: HashAt): Uint8Array[] {
  return resolvePlan(consistencyPlan(size1, size2), hashAt);
}

/** Consistency proof from `size1` to the tree made of all the given leaf hashes. */
export function consistencyProofFromLeaves(size1: number, leafHashes: readonly Uint8Array[]): Uint8Array[] {
  return consistencyProof(size1, leafHashes.length, subtreeHashAccessor(leafHashes));
}

/** Number of hashes in a consistency proof from `size1` to `size2` (0 < size1 ≤ size2). */
export function consistencyProofSize(size1: number, size2: number): number {
  requireSizes(size1, size2);
  if (size1 === size2) return 0;
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (fn % 2 === 1) {
    fn = half(fn);
    sn = half(sn);
  }
  let steps = 0;
  while (sn > 0) {
    if (fn % 2 === 1 || fn === sn) {
      while (fn % 2 === 0 && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    }
    fn = half(fn);
    sn = half(sn);
    steps++;
  }
  // The verifier's path is [seed, ...steps]; the seed is root1 itself when size1 is a power of two.
  return isPowerOfTwo(size1) ? steps : steps + 1;
}

/**
 * Verifies that the tree of `size2` with `root2` extends the tree of `size1` with `root1`
 * (RFC 9162 §2.1.4.2); throws ProofError. Equal sizes need an empty proof and equal roots;
 * size1 = 0 is rejected.
 */
export function verifyConsistency(size1: number, size2: number, proof: readonly Uint8Array[], root1: Uint8Array, root2: Uint8Array): void {
  requireSizes(size1, size2);
  if (size1 === size2) {
    if (proof.length !== 0) {
      throw new ProofError("wrong-proof-size", `sizes are equal (${size1}) but the proof has ${proof.length} hashes`);
    }
    // Nothing is hashed here, so this is a plain comparison of what the caller holds
    // (the transparency-dev vectors use 12-byte placeholder roots for this case).
    if (!bytesEqual(root1, root2)) {
      throw new ProofError("root-mismatch", `sizes are equal (${size1}) but the roots differ`);
    }
    return;
  }
  requireHash(root1, "root1");
  requireHash(root2, "root2");
  proof.forEach((p, i) => requireHash(p, `consistency proof hash ${i}`));
  const want = consistencyProofSize(size1, size2);
  if (proof.length !== want) {
    throw new ProofError("wrong-proof-size", `consistency proof from size ${size1} to ${size2} has ${want} hashes, got ${proof.length}`);
  }
  const path = isPowerOfTwo(size1) ? [root1, ...proof] : proof;
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (fn % 2 === 1) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0]!;
  let sr = path[0]!;
  for (const c of path.slice(1)) {
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (fn % 2 === 0 && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (!bytesEqual(fr, root1)) {
    throw new ProofError("root-mismatch", `consistency proof yields root ${hexEncode(fr)} at size ${size1}, expected ${hexEncode(root1)}`);
  }
  if (!bytesEqual(sr, root2)) {
    throw new ProofError("root-mismatch", `consistency proof yields root ${hexEncode(sr)} at size ${size2}, expected ${hexEncode(root2)}`);
  }
}
