import { ProofError } from "./errors.js";
import {
  inclusionPlan,
  inclusionProof,
  inclusionProofFromLeaves,
  inclusionProofSize,
  rootFromInclusionProof,
  verifyInclusion,
} from "./inclusion.js";
import { planNodes, resolvePlanAsync } from "./proof-plan.js";
import { rootFromLeafHashes, rootFromSubtreeHashes, subtreeHashAccessor } from "./rfc6962.js";
import { leafHashes, uniformTree } from "../test/trees.js";

const N = 130;
const leaves = leafHashes(N);
const at = subtreeHashAccessor(leaves);

test(`generated proofs verify for every index of every size 1..${N}`, () => {
  let checked = 0;
  for (let size = 1; size <= N; size++) {
    const root = rootFromLeafHashes(leaves.slice(0, size));
    for (let index = 0; index < size; index++) {
      const proof = inclusionProof(index, size, at);
      expect(proof).toHaveLength(inclusionProofSize(index, size));
      verifyInclusion(index, size, leaves[index]!, proof, root);
      checked++;
    }
  }
  expect(checked).toBe((N * (N + 1)) / 2);
});

test("the leaf-array and accessor generators agree", () => {
  for (const size of [1, 2, 3, 7, 8, 9, 100]) {
    for (let index = 0; index < size; index += 3) {
      expect(inclusionProofFromLeaves(index, leaves.slice(0, size))).toEqual(inclusionProof(index, size, at));
    }
  }
});

test("any tampering is caught with a precise code", () => {
  const size = 77;
  const index = 42;
  const root = rootFromLeafHashes(leaves.slice(0, size));
  const proof = inclusionProof(index, size, at);
  const code = (f: () => void): string => {
    try {
      f();
      return "ok";
    } catch (e) {
      expect(e).toBeInstanceOf(ProofError);
      return (e as ProofError).code;
    }
  };
  for (let i = 0; i < proof.length; i++) {
    const bad = proof.map((p) => p.slice());
    bad[i]![0]! ^= 1;
    expect(code(() => verifyInclusion(index, size, leaves[index]!, bad, root))).toBe("root-mismatch");
  }
  expect(code(() => verifyInclusion(index, size, leaves[index + 1]!, proof, root))).toBe("root-mismatch");
  expect(code(() => verifyInclusion(index + 1, size, leaves[index]!, proof, root))).toBe("root-mismatch");
  expect(code(() => verifyInclusion(index, size, leaves[index]!, proof.slice(1), root))).toBe("wrong-proof-size");
  expect(code(() => verifyInclusion(index, size, leaves[index]!, [...proof, root], root))).toBe("wrong-proof-size");
  expect(code(() => verifyInclusion(index, size, leaves[index]!, proof, root.slice(1)))).toBe("bad-hash-size");
  expect(code(() => verifyInclusion(size, size, leaves[index]!, proof, root))).toBe("index-out-of-range");
  expect(code(() => verifyInclusion(-1, size, leaves[index]!, proof, root))).toBe("invalid-argument");
  expect(code(() => verifyInclusion(0.5, size, leaves[index]!, proof, root))).toBe("invalid-argument");
  expect(code(() => verifyInclusion(index, size, leaves[index]!, proof, root))).toBe("ok");
  expect(rootFromInclusionProof(index, size, leaves[index]!, proof)).toEqual(root);
});

test("a proof for 1,000,000 leaves reads O(log n) stored hashes", () => {
  const size = 1_000_000;
  const log2 = Math.ceil(Math.log2(size)); // 20
  const tree = uniformTree(size);
  const root = rootFromSubtreeHashes(size, tree.hashAt);
  for (const index of [0, 1, 123_456, 524_287, 524_288, 999_935, 999_999]) {
    const before = tree.reads();
    const proof = inclusionProof(index, size, tree.hashAt);
    const reads = tree.reads() - before;
    expect(reads).toBeLessThanOrEqual(2 * log2 + 2);
    expect(proof.length).toBeLessThanOrEqual(log2);
    verifyInclusion(index, size, tree.levelHash(0), proof, root);
  }
  // Near 2^53 the arithmetic must stay exact (no 32-bit bitwise operators).
  const huge = 2 ** 52 + 12345;
  const hugeTree = uniformTree(huge);
  const before = hugeTree.reads();
  const proof = inclusionProof(huge - 1, huge, hugeTree.hashAt);
  expect(hugeTree.reads() - before).toBeLessThanOrEqual(2 * 53 + 2);
  verifyInclusion(huge - 1, huge, hugeTree.levelHash(0), proof, rootFromSubtreeHashes(huge, hugeTree.hashAt));
});

test("a plan can be resolved with one batched async read", async () => {
  const plan = inclusionPlan(100, 130);
  const nodes = planNodes(plan);
  let batches = 0;
  const proof = await resolvePlanAsync(plan, async (ids) => {
    batches++;
    expect(ids).toEqual(nodes);
    return ids.map((n) => at(n.level, n.index));
  });
  expect(batches).toBe(1);
  expect(proof).toEqual(inclusionProof(100, 130, at));
  await expect(resolvePlanAsync(plan, async () => [])).rejects.toThrow(ProofError);
});
