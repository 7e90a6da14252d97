import { createHash } from "node:crypto";

import { ErasureCodec, leafHash, rootFromLeafHashes } from "@deai/proofs";

import { CommitmentHasher, ShardChecker } from "./dataset-commitments.js";

const g = { k: 4, m: 2, shardSize: 64 };

function bytesOf(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + seed * 7 + (i >> 5)) & 0xff;
  return out;
}

/** The leaf table, computed the plain way: pad, cut, encode, hash every shard. */
function referenceLeaves(data: Buffer): Uint8Array[] {
  const stripeBytes = g.k * g.shardSize;
  const codec = new ErasureCodec(g.k, g.m);
  const padded = Buffer.alloc(Math.ceil(data.length / stripeBytes) * stripeBytes);
  data.copy(padded);
  const leaves: Uint8Array[] = [];
  for (let at = 0; at < padded.length; at += stripeBytes) {
    const shards = Array.from({ length: g.k }, (_, j) => padded.subarray(at + j * g.shardSize, at + (j + 1) * g.shardSize));
    for (const s of [...shards, ...codec.encode(shards)]) leaves.push(leafHash(s));
  }
  return leaves;
}

describe("CommitmentHasher", () => {
  it.each([1, 255, 256, 257, 1000, 4096])("gives contentDigest, size and shardRoot of %i bytes, however they are chunked", (size) => {
    const data = bytesOf(size, size);
    const whole = new CommitmentHasher(g);
    whole.update(data);
    const chunked = new CommitmentHasher(g);
    for (let at = 0, step = 1; at < size; at += step, step = (step * 7 + 3) % 300) chunked.update(data.subarray(at, at + step));
    const a = whole.digest();
    const b = chunked.digest();
    const leaves = referenceLeaves(data);
    expect(a).toEqual(b);
    expect(a.contentDigest).toBe(createHash("sha256").update(data).digest("hex"));
    expect(a.size).toBe(size);
    expect(a.stripes).toBe(Math.ceil(size / (g.k * g.shardSize)));
    expect(Buffer.from(a.shardRoot!).equals(Buffer.from(rootFromLeafHashes(leaves)))).toBe(true);
  });

  it("without a geometry gives only the digest and size", () => {
    const h = new CommitmentHasher();
    h.update(Buffer.from("abc"));
    expect(h.digest()).toEqual({ contentDigest: createHash("sha256").update("abc").digest("hex"), size: 3 });
  });
});

describe("ShardChecker", () => {
  const data = bytesOf(1000, 9);
  const leaves = Buffer.concat(referenceLeaves(data));

  it("passes the data shards of a range, fed in any pieces, up to a partial last shard", () => {
    const from = 128; // shard 2: stripe 0, slot 2
    const c = new ShardChecker(g, leaves, from);
    const out: Buffer[] = [];
    for (let at = from; at < data.length; at += 50) {
      const piece = data.subarray(at, Math.min(data.length, at + 50));
      for (const s of c.push(piece, at + piece.length === data.length)) {
        expect(s.offset).toBe(from + Buffer.concat(out).length);
        out.push(s.bytes);
      }
    }
    expect(Buffer.concat(out).equals(data.subarray(from))).toBe(true);
  });

  it("refuses a shard whose bytes are not its leaf, naming stripe and slot", () => {
    const bad = Buffer.from(data);
    bad[300]! ^= 1; // shard 4: stripe 1, slot 0
    const c = new ShardChecker(g, leaves, 256);
    expect(() => c.push(bad.subarray(256, 512), false)).toThrow(/shard \(stripe 1, slot 0\) at bytes 256-319 does not match/);
  });
});
