import { consistencyPlan, consistencyProof, consistencyProofFromLeaves, consistencyProofSize, verifyConsistency } from "./consistency.js";
import { ProofError } from "./errors.js";
import { rootFromLeafHashes, rootFromSubtreeHashes, subtreeHashAccessor } from "./rfc6962.js";
import { leafHashes, uniformTree } from "../test/trees.js";

const N = 130;
const leaves = leafHashes(N);
const at = subtreeHashAccessor(leaves);
const roots = Array.from({ length: N + 1 }, (_, n) => rootFromLeafHashes(leaves.slice(0, n)));

test(`generated proofs verify for every 1 ≤ size1 ≤ size2 ≤ ${N}`, () => {
  let checked = 0;
  for (let size2 = 1; size2 <= N; size2++) {
    for (let size1 = 1; size1 <= size2; size1++) {
      const proof = consistencyProof(size1, size2, at);
      expect(proof).toHaveLength(consistencyProofSize(size1, size2));
      verifyConsistency(size1, size2, proof, roots[size1]!, roots[size2]!);
      checked++;
    }
  }
  expect(checked).toBe((N * (N + 1)) / 2);
});

test("proofs do not verify against other trees", () => {
  for (const [size1, size2] of [
    [1, 2],
    [3, 8],
    [6, 8],
    [7, 130],
    [64, 129],
    [100, 101],
  ] as const) {
    const proof = consistencyProofFromLeaves(size1, leaves.slice(0, size2));
    expect(() => verifyConsistency(size1, size2, proof, roots[size1 + 1 === size2 ? size1 - 1 : size1 + 1]!, roots[size2]!)).toThrow(
      ProofError,
    );
    expect(() => verifyConsistency(size1, size2, proof, roots[size1]!, roots[size2 - 1]!)).toThrow(ProofError);
    for (let i = 0; i < proof.length; i++) {
      const bad = proof.map((p) => p.slice());
      bad[i]![31]! ^= 0x80;
      expect(() => verifyConsistency(size1, size2, bad, roots[size1]!, roots[size2]!)).toThrow(
        expect.objectContaining({ code: "root-mismatch" }),
      );
    }
  }
});

test("conventions: size1 = 0 and size1 > size2 are errors; equal sizes need an empty proof", () => {
  expect(() => consistencyPlan(0, 5)).toThrow(expect.objectContaining({ code: "invalid-argument" }));
  expect(() => verifyConsistency(0, 0, [], roots[0]!, roots[0]!)).toThrow(ProofError);
  expect(() => verifyConsistency(5, 4, [], roots[5]!, roots[4]!)).toThrow(ProofError);
  expect(consistencyPlan(9, 9)).toEqual([]);
  verifyConsistency(9, 9, [], roots[9]!, roots[9]!);
  expect(() => verifyConsistency(9, 9, [roots[1]!], roots[9]!, roots[9]!)).toThrow(expect.objectContaining({ code: "wrong-proof-size" }));
  expect(() => verifyConsistency(9, 9, [], roots[9]!, roots[8]!)).toThrow(expect.objectContaining({ code: "root-mismatch" }));
});

test("a consistency proof between trees of ~1,000,000 leaves reads O(log n) stored hashes", () => {
  const size2 = 1_000_000;
  const log2 = Math.ceil(Math.log2(size2));
  const tree = uniformTree(size2);
  for (const size1 of [1, 2, 3, 500_000, 524_288, 777_777, 999_999]) {
    const root1 = rootFromSubtreeHashes(size1, tree.hashAt);
    const root2 = rootFromSubtreeHashes(size2, tree.hashAt);
    const before = tree.reads();
    const proof = consistencyProof(size1, size2, tree.hashAt);
    expect(tree.reads() - before).toBeLessThanOrEqual(2 * log2 + 2);
    verifyConsistency(size1, size2, proof, root1, root2);
  }
});
