import { ProofError } from "./errors.js";
import { MerkleFrontier } from "./merkle-frontier.js";
import { rootFromLeafHashes, subtreeHashAccessor, type NodeId } from "./rfc6962.js";
import { leafHashes } from "../test/trees.js";

const leaves = leafHashes(300);

test("the frontier root equals rootFromLeafHashes for 0..300 leaves", () => {
  const f = MerkleFrontier.empty();
  expect(f.root()).toEqual(rootFromLeafHashes([]));
  for (let n = 1; n <= 300; n++) {
    f.append(leaves[n - 1]!);
    expect(f.size).toBe(n);
    expect(f.root()).toEqual(rootFromLeafHashes(leaves.slice(0, n)));
  }
});

test("memory stays at popcount(size) hashes", () => {
  const f = MerkleFrontier.of(leaves.slice(0, 255));
  expect(f.hashes()).toHaveLength(8);
  f.append(leaves[255]!);
  expect(f.hashes()).toHaveLength(1);
});

test("the visitor sees every completed perfect subtree exactly once, with its true hash", () => {
  const seen = new Map<string, Uint8Array>();
  const f = MerkleFrontier.empty();
  // Two batches, as a log integrates them.
  const visit = (node: NodeId, hash: Uint8Array): void => {
    const key = `${node.level}/${node.index}`;
    expect(seen.has(key)).toBe(false);
    seen.set(key, hash);
  };
  f.appendAll(leaves.slice(0, 123), visit);
  f.appendAll(leaves.slice(123), visit);
  const at = subtreeHashAccessor(leaves);
  let expected = 0;
  for (let level = 0; 2 ** level <= 300; level++) {
    for (let index = 0; (index + 1) * 2 ** level <= 300; index++) {
      expected++;
      expect(seen.get(`${level}/${index}`)).toEqual(at(level, index));
    }
  }
  expect(seen.size).toBe(expected);
});

test("restore continues where a saved frontier stopped", () => {
  const saved = MerkleFrontier.of(leaves.slice(0, 77));
  const restored = MerkleFrontier.restore(saved.size, saved.hashes());
  const copy = restored.clone();
  restored.appendAll(leaves.slice(77, 200));
  expect(restored.root()).toEqual(rootFromLeafHashes(leaves.slice(0, 200)));
  expect(copy.size).toBe(77);
  expect(copy.root()).toEqual(rootFromLeafHashes(leaves.slice(0, 77)));
});

test("restore and append reject malformed input", () => {
  expect(() => MerkleFrontier.restore(77, [leaves[0]!])).toThrow(ProofError);
  expect(() => MerkleFrontier.restore(-1, [])).toThrow(ProofError);
  expect(() => MerkleFrontier.empty().append(new Uint8Array(33))).toThrow(ProofError);
});
