import { createHash, randomBytes } from "node:crypto";

import { shardLeaf, shardRoot, verifyShard } from "@deai/proofs";

import { StripeCodec } from "./reed-solomon.js";
import {
  allocParity,
  allocStripe,
  closeStripeEncoder,
  encodeStripe,
  leafHashWorkers,
  releaseStripeBuffer,
  shardLeafAsync,
} from "./stripe-encoder.js";

/** The straightforward definition the encoder must match. */
function referenceLeaf(shard: Uint8Array): Buffer {
  return createHash("sha256")
    .update(Buffer.concat([Buffer.from([0x00]), shard]))
    .digest();
}

async function expectReferenceEncoding(codec: StripeCodec, data: Buffer, parity?: Buffer): Promise<Buffer[]> {
  const expectedParity = await codec.encode(Buffer.from(data));
  const { shards, leaves } = await encodeStripe(codec, data, parity);
  const n = codec.k + codec.m;
  expect(shards).toHaveLength(n);
  expect(leaves).toHaveLength(n);
  expect(Buffer.concat(shards.slice(0, codec.k)).equals(data)).toBe(true);
  expect(Buffer.concat(shards.slice(codec.k)).equals(expectedParity)).toBe(true);
  shards.forEach((s, slot) => {
    expect(s.length).toBe(codec.shardSize);
    expect(leaves[slot]).toHaveLength(32);
    expect(Buffer.from(leaves[slot]!).equals(referenceLeaf(s))).toBe(true);
  });
  return shards;
}

afterAll(closeStripeEncoder);

describe("encodeStripe", () => {
  it("yields k data shards, m parity shards and leaves that @deai/proofs verifies", async () => {
    const codec = new StripeCodec(4, 2, 1024);
    const data = randomBytes(4 * 1024);
    const { shards, leaves } = await encodeStripe(codec, data);
    expect(shards).toHaveLength(6);
    expect(Buffer.concat(shards.slice(0, 4)).equals(data)).toBe(true);
    shards.forEach((s, slot) => verifyShard({ k: 4, m: 2, shardSize: 1024 }, leaves, 0, slot, s));
    expect(shardRoot(leaves)).toEqual(shardRoot(shards.map((s) => shardLeaf(s))));
    // The parity really is Reed-Solomon parity: drop two data shards and rebuild them.
    const rebuilt = await codec.reconstruct(shards.map((s, i) => (i === 0 || i === 3 ? undefined : s)));
    expect(Buffer.concat(rebuilt.slice(0, 4)).equals(data)).toBe(true);
  });

  it("hashes with the RFC 6962 leaf prefix", async () => {
    const shard = randomBytes(100);
    expect(await shardLeafAsync(shard)).toEqual(shardLeaf(shard));
  });

  it("matches the reference on worker threads for plain Buffers, including views at an offset", async () => {
    expect(leafHashWorkers()).toBeGreaterThanOrEqual(1);
    const codec = new StripeCodec(8, 4, 64 * 1024);
    await expectReferenceEncoding(codec, randomBytes(8 * 64 * 1024));
    const backing = randomBytes(8 * 64 * 1024 + 13);
    const shards = await expectReferenceEncoding(codec, backing.subarray(13));
    // Data shards are views into the input.
    expect(shards[0]!.buffer).toBe(backing.buffer);
  });

  it("matches the reference for shared stripe and parity buffers, writing parity in place", async () => {
    const codec = new StripeCodec(8, 4, 64 * 1024);
    const data = allocStripe(codec);
    const parity = allocParity(codec);
    expect(data).toHaveLength(8 * 64 * 1024);
    expect(parity).toHaveLength(4 * 64 * 1024);
    data.set(randomBytes(data.length));
    const shards = await expectReferenceEncoding(codec, data, parity);
    expect(shards[0]!.buffer).toBe(data.buffer);
    expect(shards[8]!.buffer).toBe(parity.buffer);
    releaseStripeBuffer(parity);
    releaseStripeBuffer(data);
  });

  it("matches the reference for a plain parity buffer and a plain stripe in a shared parity", async () => {
    const codec = new StripeCodec(4, 2, 32 * 1024);
    const parity = Buffer.alloc(2 * 32 * 1024);
    const shards = await expectReferenceEncoding(codec, randomBytes(4 * 32 * 1024), parity);
    expect(shards[4]!.buffer).toBe(parity.buffer);
    const shared = allocParity(codec);
    await expectReferenceEncoding(codec, randomBytes(4 * 32 * 1024), shared);
    releaseStripeBuffer(shared);
  });

  it("keeps many concurrent stripes apart while recycling their buffers", async () => {
    const codec = new StripeCodec(8, 4, 32 * 1024);
    const one = async (): Promise<void> => {
      for (let round = 0; round < 4; round++) {
        const data = allocStripe(codec);
        data.set(randomBytes(data.length));
        const parity = allocParity(codec);
        const expectedParity = await codec.encode(Buffer.from(data));
        const { shards, leaves } = await encodeStripe(codec, data, parity);
        expect(parity.equals(expectedParity)).toBe(true);
        shards.forEach((s, slot) => expect(Buffer.from(leaves[slot]!).equals(referenceLeaf(s))).toBe(true));
        releaseStripeBuffer(parity);
        releaseStripeBuffer(data);
      }
    };
    await Promise.all(Array.from({ length: 12 }, one));
  });

  it("refuses stripes and parity buffers of the wrong size", async () => {
    const codec = new StripeCodec(4, 2, 1024);
    await expect(encodeStripe(codec, Buffer.alloc(4 * 1024 - 8))).rejects.toThrow("a stripe is 4096 bytes, got 4088");
    await expect(encodeStripe(codec, Buffer.alloc(4 * 1024), Buffer.alloc(1024))).rejects.toThrow(
      "a stripe's parity is 2048 bytes, got 1024",
    );
  });

  it("computes large leaves off the event loop like small ones", async () => {
    const shard = randomBytes(300 * 1024);
    expect(Buffer.from(await shardLeafAsync(shard)).equals(referenceLeaf(shard))).toBe(true);
    const shared = allocStripe(new StripeCodec(1, 1, 300 * 1024));
    shared.set(shard);
    expect(Buffer.from(await shardLeafAsync(shared)).equals(referenceLeaf(shard))).toBe(true);
    releaseStripeBuffer(shared);
  });

  it("starts again after closeStripeEncoder", async () => {
    await closeStripeEncoder();
    const codec = new StripeCodec(2, 1, 64 * 1024);
    await expectReferenceEncoding(codec, randomBytes(2 * 64 * 1024));
  });
});

describe("stripe buffers", () => {
  it("recycles released memory and refuses foreign, partial or double releases", () => {
    const codec = new StripeCodec(3, 2, 8 * 1024 * 7);
    const a = allocStripe(codec);
    const sab = a.buffer;
    releaseStripeBuffer(a);
    expect(() => releaseStripeBuffer(a)).toThrow("already released");
    const b = allocStripe(codec);
    expect(b.buffer).toBe(sab);
    expect(() => releaseStripeBuffer(Buffer.alloc(b.length))).toThrow("not a buffer from allocStripe/allocParity");
    expect(() => releaseStripeBuffer(b.subarray(8))).toThrow("not a view of part of it");
    releaseStripeBuffer(b);
  });
});
