// Every RFC 6962 inclusion and consistency vector in shared/testdata/rfc6962 (from
// transparency-dev/merkle), checked for its expected verdict.

import { loadJsonTree, sharedTestdata } from "../test/shared-testdata.js";
import { consistencyProofFromLeaves } from "./consistency.js";
import { base64Decode, base64Encode, bytesEqual, hexDecode } from "./encoding.js";
import { ProofError } from "./errors.js";
import { inclusionProofFromLeaves, verifyInclusion } from "./inclusion.js";
import { verifyConsistency } from "./consistency.js";
import { leafHash, rootFromLeafHashes } from "./rfc6962.js";

interface InclusionVector {
  leafIdx: number;
  treeSize: number;
  root: string;
  leafHash: string;
  proof: string[] | null;
  desc: string;
  wantErr: boolean;
}

interface ConsistencyVector {
  size1: number;
  size2: number;
  root1: string;
  root2: string;
  proof: string[] | null;
  desc: string;
  wantErr: boolean;
}

function b64(s: string): Uint8Array {
  const b = base64Decode(s);
  if (b === undefined) throw new Error(`vector holds invalid base64 ${JSON.stringify(s)}`);
  return b;
}

// The leaves behind the vectors (transparency-dev/merkle testonly).
const REFERENCE_LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"].map((h) =>
  leafHash(hexDecode(h)!),
);

function verdict(run: () => void): { ok: true } | { ok: false; error: unknown } {
  try {
    run();
    return { ok: true };
  } catch (error) {
    return { ok: false, error };
  }
}

const inclusionVectors = loadJsonTree(sharedTestdata("rfc6962/inclusion")) as [string, InclusionVector][];
const consistencyVectors = loadJsonTree(sharedTestdata("rfc6962/consistency")) as [string, ConsistencyVector][];

test("a missing testdata folder is an error, not a skip", () => {
  expect(() => sharedTestdata("rfc6962/no-such-folder")).toThrow(/conformance data missing/);
});

test("the conformance vectors are all there", () => {
  // 196 files at the time of writing; a shrinking folder must not pass quietly.
  expect(inclusionVectors.length).toBeGreaterThanOrEqual(90);
  expect(consistencyVectors.length).toBeGreaterThanOrEqual(90);
  expect(inclusionVectors.length + consistencyVectors.length).toBeGreaterThanOrEqual(196);
});

describe("inclusion vectors", () => {
  test.each(inclusionVectors)("%s", (_file, v) => {
    const proof = (v.proof ?? []).map(b64);
    const result = verdict(() => verifyInclusion(v.leafIdx, v.treeSize, b64(v.leafHash), proof, b64(v.root)));
    if (v.wantErr) {
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.error).toBeInstanceOf(ProofError);
    } else {
      if (!result.ok) throw result.error;
    }
  });
});

describe("consistency vectors", () => {
  test.each(consistencyVectors)("%s", (_file, v) => {
    const proof = (v.proof ?? []).map(b64);
    const result = verdict(() => verifyConsistency(v.size1, v.size2, proof, b64(v.root1), b64(v.root2)));
    if (v.wantErr) {
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.error).toBeInstanceOf(ProofError);
    } else {
      if (!result.ok) throw result.error;
    }
  });
});

describe("generated proofs reproduce the happy-path vectors", () => {
  const referenceRoot = (size: number): string => base64Encode(rootFromLeafHashes(REFERENCE_LEAVES.slice(0, size)));

  const inclusionHappy = inclusionVectors.filter(([f, v]) => f.endsWith("happy-path.json") && v.root === referenceRoot(v.treeSize));
  const consistencyHappy = consistencyVectors.filter(
    ([f, v]) => f.endsWith("happy-path.json") && v.size1 < v.size2 && v.root2 === referenceRoot(v.size2),
  );

  test("the reference tree explains the happy paths", () => {
    expect(inclusionHappy.length).toBeGreaterThanOrEqual(4);
    expect(consistencyHappy.length).toBeGreaterThanOrEqual(4);
  });

  test.each(inclusionHappy)("%s", (_file, v) => {
    const leaves = REFERENCE_LEAVES.slice(0, v.treeSize);
    expect(base64Encode(leaves[v.leafIdx]!)).toBe(v.leafHash);
    expect(inclusionProofFromLeaves(v.leafIdx, leaves).map(base64Encode)).toEqual(v.proof ?? []);
  });

  test.each(consistencyHappy)("%s", (_file, v) => {
    const leaves = REFERENCE_LEAVES.slice(0, v.size2);
    expect(base64Encode(rootFromLeafHashes(leaves.slice(0, v.size1)))).toBe(v.root1);
    const proof = consistencyProofFromLeaves(v.size1, leaves);
    expect(proof.map(base64Encode)).toEqual(v.proof ?? []);
    expect(bytesEqual(rootFromLeafHashes(leaves), b64(v.root2))).toBe(true);
  });
});
