// Cross-checks against the native addon the services encode with. Test-only: @deai/proofs
// itself never loads it.
import { createRequire } from "node:module";

import { ERASURE_MAX_K, ERASURE_MAX_M, ErasureCodec } from "./erasure.js";
import { codeOf } from "../test/error-code.js";

interface NativeCodec {
  MAX_K: number;
  MAX_M: number;
  create(k: number, m: number): Uint8Array;
  encode(
    context: Uint8Array,
    sources: number,
    targets: number,
    buffer: Uint8Array,
    bufferOffset: number,
    bufferSize: number,
    parity: Uint8Array,
    parityOffset: number,
    paritySize: number,
    callback: (error?: Error) => void,
  ): void;
}

const native = createRequire(import.meta.url)("@ronomon/reed-solomon") as NativeCodec;

/** Deterministic bytes (xorshift32) so a failure reproduces. */
function randomBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const randomShards = (count: number, shardSize: number, seed: number): Uint8Array[] =>
  Array.from({ length: count }, (_, i) => randomBytes(shardSize, seed * 1000 + i + 1));

const concat = (shards: readonly Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(shards.reduce((n, s) => n + s.length, 0));
  let offset = 0;
  for (const s of shards) {
    out.set(s, offset);
    offset += s.length;
  }
  return out;
};

const split = (bytes: Uint8Array, count: number): Uint8Array[] => {
  const size = bytes.length / count;
  return Array.from({ length: count }, (_, i) => bytes.slice(i * size, (i + 1) * size));
};

/**
 * Runs the addon over a stripe: `present` slots are sources, the rest targets (computed in
 * place). Returns all n shards as the addon leaves them.
 */
function nativeRun(k: number, m: number, shards: readonly (Uint8Array | undefined)[], shardSize: number): Promise<Uint8Array[]> {
  const filled = shards.map((s) => s ?? new Uint8Array(shardSize));
  const buffer = Buffer.from(concat(filled.slice(0, k)));
  const parity = Buffer.from(concat(filled.slice(k)));
  let sources = 0;
  let targets = 0;
  shards.forEach((s, i) => {
    if (s === undefined) targets |= 1 << i;
    else sources |= 1 << i;
  });
  return new Promise((resolve, reject) =>
    native.encode(native.create(k, m), sources, targets, buffer, 0, buffer.length, parity, 0, parity.length, (error) =>
      error ? reject(error) : resolve([...split(buffer, k), ...split(parity, m)]),
    ),
  );
}

const nativeParity = async (k: number, m: number, data: readonly Uint8Array[]): Promise<Uint8Array[]> =>
  (await nativeRun(k, m, [...data, ...Array<undefined>(m)], data[0]!.length)).slice(k);

/** Every subset of {0..n-1} of the given size, as sorted index lists. */
function combinations(n: number, size: number): number[][] {
  if (size === 0) return [[]];
  const out: number[][] = [];
  for (let first = 0; first <= n - size; first++)
    for (const rest of combinations(n - first - 1, size - 1)) out.push([first, ...rest.map((r) => r + first + 1)]);
  return out;
}

/** Indexes at which two shard lists differ ([] when byte-identical); cheaper than toEqual on big stripes. */
const differing = (a: readonly Uint8Array[], b: readonly Uint8Array[]): number[] =>
  Array.from({ length: Math.max(a.length, b.length) }, (_, i) => i).filter(
    (i) => !a[i] || !b[i] || !Buffer.from(a[i].buffer, a[i].byteOffset, a[i].length).equals(b[i]),
  );

/** A shuffled copy of 0..n-1 (Fisher-Yates over seeded bytes). */
function shuffled(n: number, seed: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  const r = randomBytes(n, seed);
  for (let i = n - 1; i > 0; i--) {
    const j = r[i]! % (i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

const erase = (shards: readonly Uint8Array[], missing: readonly number[]): (Uint8Array | undefined)[] =>
  shards.map((s, i) => (missing.includes(i) ? undefined : s));

describe("ErasureCodec limits", () => {
  it("matches the addon's MAX_K and MAX_M", () => {
    expect([ERASURE_MAX_K, ERASURE_MAX_M]).toEqual([native.MAX_K, native.MAX_M]);
    expect(() => native.create(ERASURE_MAX_K + 1, 1)).toThrow("k > MAX_K");
    expect(() => native.create(1, ERASURE_MAX_M + 1)).toThrow("m > MAX_M");
  });

  test.each([
    [0, 1, "k (data shards) must be an integer from 1 to 24, got 0"],
    [25, 1, "k (data shards) must be an integer from 1 to 24, got 25"],
    [1.5, 1, "k (data shards) must be an integer from 1 to 24, got 1.5"],
    [Number.NaN, 1, "k (data shards) must be an integer from 1 to 24, got NaN"],
    [1, 0, "m (parity shards) must be an integer from 1 to 6, got 0"],
    [24, 7, "m (parity shards) must be an integer from 1 to 6, got 7"],
    [8, 2.5, "m (parity shards) must be an integer from 1 to 6, got 2.5"],
  ])("rejects k=%p, m=%p with a RangeError", (k, m, message) => {
    expect(() => new ErasureCodec(k, m)).toThrow(new RangeError(message));
    expect(() => new ErasureCodec(k, m)).toThrow(RangeError);
  });
});

describe("ErasureCodec parity equals the addon's", () => {
  it("for every (k, m) the addon supports", async () => {
    for (let k = 1; k <= ERASURE_MAX_K; k++) {
      for (let m = 1; m <= ERASURE_MAX_M; m++) {
        const data = randomShards(k, 64, k * 31 + m);
        const codec = new ErasureCodec(k, m);
        expect([codec.k, codec.m]).toEqual([k, m]);
        expect({ k, m, parity: codec.encode(data) }).toEqual({ k, m, parity: await nativeParity(k, m, data) });
      }
    }
  });

  test.each([
    // k, m, shard size: the deployed geometry; replication; the largest code; packets of 1
    // and 3 bytes; superpackets halved to fit the addon's cache budget (k=8 → 16 KiB packets,
    // k=24 → 4 KiB); halving that stops at an odd packet size (65537 bytes).
    [8, 4, 262144],
    [8, 4, 1024],
    [1, 1, 8],
    [1, 6, 4096],
    [24, 6, 8],
    [24, 6, 262144],
    [16, 1, 24],
    [13, 4, 200],
    [12, 5, 8 * 65537],
    [2, 2, 8],
    [3, 3, 2048],
  ])("k=%d, m=%d, %d-byte shards", async (k, m, shardSize) => {
    const data = randomShards(k, shardSize, k + m + shardSize);
    const parity = new ErasureCodec(k, m).encode(data);
    const expected = await nativeParity(k, m, data);
    expect(parity).toHaveLength(m);
    expect(differing(parity, expected)).toEqual([]);
  });

  it("reads shards at any byte offset", async () => {
    const k = 8;
    const m = 4;
    const backing = randomBytes(1 + k * 4096, 7);
    const data = Array.from({ length: k }, (_, i) => backing.subarray(1 + i * 4096, 1 + (i + 1) * 4096));
    expect(new ErasureCodec(k, m).encode(data)).toEqual(await nativeParity(k, m, data));
  });
});

describe("ErasureCodec.reconstruct", () => {
  it("rebuilds every pattern of up to m erasures (k=5, m=3) and returns present shards as given", async () => {
    const k = 5;
    const m = 3;
    const codec = new ErasureCodec(k, m);
    const data = randomShards(k, 256, 11);
    const stripe = [...data, ...(await nativeParity(k, m, data))];
    for (let size = 0; size <= m; size++) {
      for (const missing of combinations(k + m, size)) {
        const given = erase(stripe, missing);
        const rebuilt = codec.reconstruct(given);
        expect({ missing, differing: differing(rebuilt, stripe) }).toEqual({ missing, differing: [] });
        given.forEach((s, i) => {
          if (s) expect(rebuilt[i]).toBe(s);
        });
      }
    }
  });

  it("rebuilds every pattern of m erasures of the deployed geometry (k=8, m=4) as the addon does", async () => {
    const k = 8;
    const m = 4;
    const codec = new ErasureCodec(k, m);
    const data = randomShards(k, 1024, 12);
    const stripe = [...data, ...(await nativeParity(k, m, data))];
    const patterns = combinations(k + m, m);
    expect(patterns).toHaveLength(495);
    for (const missing of patterns)
      expect({ missing, differing: differing(codec.reconstruct(erase(stripe, missing)), stripe) }).toEqual({ missing, differing: [] });
    // The addon's own decoder agrees on a pattern that loses data and parity.
    expect(await nativeRun(k, m, erase(stripe, [0, 3, 7, 9]), 1024)).toEqual(stripe);
  });

  test.each([
    [24, 6, 4096],
    [13, 4, 200],
    [8, 4, 262144],
    [1, 6, 16],
    [11, 6, 8 * 65537],
  ])("rebuilds random erasure patterns for k=%d, m=%d, %d-byte shards", async (k, m, shardSize) => {
    const codec = new ErasureCodec(k, m);
    const data = randomShards(k, shardSize, k * m);
    const stripe = [...data, ...(await nativeParity(k, m, data))];
    for (let trial = 0; trial < 8; trial++) {
      const missing = shuffled(k + m, shardSize + trial).slice(0, trial < 4 ? m : 1 + (trial % m));
      expect({ missing, differing: differing(codec.reconstruct(erase(stripe, missing)), stripe) }).toEqual({ missing, differing: [] });
    }
  });

  it("k=1 is replication", () => {
    const codec = new ErasureCodec(1, 2);
    const shard = randomBytes(16, 3);
    expect(codec.encode([shard])).toEqual([shard, shard]);
    expect(codec.reconstruct([undefined, undefined, shard])).toEqual([shard, shard, shard]);
  });
});

describe("ErasureCodec input errors", () => {
  const codec = new ErasureCodec(4, 2);
  const shard = (size: number): Uint8Array => new Uint8Array(size);

  test.each([
    ["too few data shards", () => codec.encode([shard(8), shard(8), shard(8)]), "expected 4 data shards, got 3"],
    [
      "unequal lengths",
      () => codec.encode([shard(8), shard(8), shard(16), shard(8)]),
      "shard 2 is 16 bytes, expected 8 like the shards before it",
    ],
    [
      "empty shards",
      () => codec.encode([shard(0), shard(0), shard(0), shard(0)]),
      "shard size must be a positive multiple of 8 bytes, got 0 (shard 0)",
    ],
    [
      "unaligned size",
      () => codec.encode([shard(12), shard(12), shard(12), shard(12)]),
      "shard size must be a positive multiple of 8 bytes, got 12 (shard 0)",
    ],
    [
      "wrong slot count",
      () => codec.reconstruct([shard(8), shard(8), shard(8), shard(8), shard(8)]),
      "expected 6 shard slots (k=4 + m=2), got 5",
    ],
    [
      "too few shards",
      () => codec.reconstruct([shard(8), undefined, shard(8), undefined, undefined, shard(8)]),
      "need at least 4 of 6 shards to reconstruct, got 3",
    ],
    [
      "unequal lengths",
      () => codec.reconstruct([undefined, shard(16), shard(16), shard(8), shard(16), undefined]),
      "shard 3 is 8 bytes, expected 16 like the shards before it",
    ],
    [
      "not bytes",
      () => codec.encode([shard(8), [0, 0, 0, 0, 0, 0, 0, 0] as unknown as Uint8Array, shard(8), shard(8)]),
      "shard 1 is not a Uint8Array",
    ],
  ])("%s", (_name, f, message) => {
    expect(codeOf(f)).toBe("invalid-argument");
    expect(f).toThrow(message);
  });
});
