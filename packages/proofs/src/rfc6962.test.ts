import { base64Encode, hexDecode, hexEncode } from "./encoding.js";
import { ProofError } from "./errors.js";
import {
  compactRangeNodes,
  emptyRoot,
  leafHash,
  nodeHash,
  rootFromLeafHashes,
  rootFromSubtreeHashes,
  subtreeHashAccessor,
} from "./rfc6962.js";
import { leafHashes, uniformTree } from "../test/trees.js";

// Roots of the transparency-dev/merkle reference tree, sizes 1..8.
const REFERENCE_LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];
const REFERENCE_ROOTS = [
  "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
  "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
  "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
  "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
  "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
  "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
  "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
  "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

test("empty root is SHA-256 of the empty string", () => {
  expect(hexEncode(emptyRoot())).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  expect(rootFromLeafHashes([])).toEqual(emptyRoot());
});

test("leaf and node hashes are domain separated", () => {
  expect(hexEncode(leafHash(new Uint8Array()))).toBe(REFERENCE_ROOTS[0]);
  const a = leafHash(new Uint8Array());
  const b = leafHash(hexDecode("00")!);
  expect(hexEncode(nodeHash(a, b))).toBe(REFERENCE_ROOTS[1]);
  expect(nodeHash(a, b)).not.toEqual(nodeHash(b, a));
});

test.each(REFERENCE_ROOTS.map((root, i) => [i + 1, root] as const))("reference root of size %d", (size, root) => {
  const leaves = REFERENCE_LEAVES.slice(0, size).map((h) => leafHash(hexDecode(h)!));
  expect(hexEncode(rootFromLeafHashes(leaves))).toBe(root);
  expect(hexEncode(rootFromSubtreeHashes(size, subtreeHashAccessor(leaves)))).toBe(root);
});

test("rootFromLeafHashes rejects hashes that are not 32 bytes", () => {
  expect(() => rootFromLeafHashes([new Uint8Array(31)])).toThrow(ProofError);
});

test("compact ranges are the one bits of the size, largest first", () => {
  expect(compactRangeNodes(0, 0)).toEqual([]);
  expect(compactRangeNodes(0, 13)).toEqual([
    { level: 3, index: 0 },
    { level: 2, index: 2 },
    { level: 0, index: 12 },
  ]);
  expect(compactRangeNodes(3, 9)).toEqual([
    { level: 0, index: 3 },
    { level: 2, index: 1 },
    { level: 0, index: 8 },
  ]);
  expect(() => compactRangeNodes(5, 4)).toThrow(ProofError);
});

test("rootFromSubtreeHashes reads popcount(size) nodes and agrees with the leaves", () => {
  const leaves = leafHashes(300);
  const at = subtreeHashAccessor(leaves);
  for (let n = 0; n <= 300; n += 7) expect(rootFromSubtreeHashes(n, at)).toEqual(rootFromLeafHashes(leaves.slice(0, n)));
  const big = uniformTree(1_000_003);
  rootFromSubtreeHashes(1_000_003, big.hashAt);
  expect(big.reads()).toBe((1_000_003).toString(2).replaceAll("0", "").length);
});

test("subtreeHashAccessor refuses incomplete subtrees", () => {
  const at = subtreeHashAccessor(leafHashes(5));
  expect(base64Encode(at(2, 0))).toHaveLength(44);
  expect(() => at(2, 1)).toThrow(ProofError);
  expect(() => at(0, 5)).toThrow(ProofError);
});
