import { randomBytes } from "node:crypto";

import { StripeCodec, checkCodingParameters, codecLimits } from "./reed-solomon.js";

describe("StripeCodec (native Reed-Solomon)", () => {
  it("loads the native addon (built by its install script)", () => {
    expect(codecLimits()).toEqual({ maxK: 24, maxM: 6 });
  });

  it("rebuilds a stripe from every choice of k out of n shards (k=4, m=2)", async () => {
    const codec = new StripeCodec(4, 2, 64);
    const data = randomBytes(4 * 64);
    const parity = await codec.encode(data);
    const all: Buffer[] = [...[0, 1, 2, 3].map((i) => data.subarray(i * 64, (i + 1) * 64)), parity.subarray(0, 64), parity.subarray(64)];
    for (let a = 0; a < 6; a++) {
      for (let b = a + 1; b < 6; b++) {
        const given = all.map((s, i) => (i === a || i === b ? undefined : Buffer.from(s)));
        const rebuilt = await codec.reconstruct(given);
        expect(Buffer.concat(rebuilt)).toEqual(Buffer.concat(all));
      }
    }
  });

  it("is systematic and deterministic with the defaults (k=8, m=4, 256 KiB)", async () => {
    const codec = new StripeCodec(8, 4, 256 * 1024);
    const data = randomBytes(8 * 256 * 1024);
    const p1 = await codec.encode(data);
    const p2 = await codec.encode(Buffer.from(data));
    expect(p1.equals(p2)).toBe(true);
    const given: (Buffer | undefined)[] = [
      ...Array.from({ length: 8 }, (_, i) => data.subarray(i * 262144, (i + 1) * 262144)),
      ...[0, 1, 2, 3].map((i) => p1.subarray(i * 262144, (i + 1) * 262144)),
    ];
    for (const lost of [0, 3, 7, 9]) given[lost] = undefined;
    const rebuilt = await codec.reconstruct(given);
    expect(Buffer.concat(rebuilt.slice(0, 8)).equals(data)).toBe(true);
  });

  it("refuses parameters beyond the codec's limits, naming them", () => {
    expect(() => checkCodingParameters(25, 4, 1024)).toThrow("k must be an integer from 1 to 24, got 25");
    expect(() => checkCodingParameters(8, 7, 1024)).toThrow("m must be an integer from 1 to 6, got 7");
    expect(() => checkCodingParameters(8, 4, 1001)).toThrow(/multiple of 8/);
  });

  it("refuses to rebuild from fewer than k shards", async () => {
    const codec = new StripeCodec(2, 1, 8);
    await expect(codec.reconstruct([Buffer.alloc(8), undefined, undefined])).rejects.toThrow("need at least 2 of 3 shards");
  });
});
