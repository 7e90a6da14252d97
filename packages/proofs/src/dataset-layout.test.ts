import { sha256 } from "@noble/hashes/sha2.js";

import { leafIndex, shardLeaf, shardRoot, stripeCount, verifyShard } from "./dataset-layout.js";
import { rootFromLeafHashes } from "./rfc6962.js";

describe("dataset layout", () => {
  it("counts stripes with a zero-padded last stripe", () => {
    expect(stripeCount({ k: 8, m: 4, shardSize: 1024, size: 0 })).toBe(0);
    expect(stripeCount({ k: 8, m: 4, shardSize: 1024, size: 1 })).toBe(1);
    expect(stripeCount({ k: 8, m: 4, shardSize: 1024, size: 8192 })).toBe(1);
    expect(stripeCount({ k: 8, m: 4, shardSize: 1024, size: 8193 })).toBe(2);
  });

  it("orders leaves (stripe, slot) and hashes shards with the 0x00 prefix", () => {
    expect(leafIndex({ k: 8, m: 4 }, 2, 5)).toBe(29);
    expect(() => leafIndex({ k: 8, m: 4 }, 0, 12)).toThrow(/slot 12/);
    const shard = new Uint8Array([1, 2, 3]);
    expect(shardLeaf(shard)).toEqual(sha256(new Uint8Array([0, 1, 2, 3])));
    const leaves = [shardLeaf(shard), shardLeaf(new Uint8Array([4]))];
    expect(shardRoot(leaves)).toEqual(rootFromLeafHashes(leaves));
  });

  it("accepts a valid shard and names stripe and slot of a corrupted one", () => {
    const g = { k: 1, m: 1, shardSize: 4 };
    const shards = [new Uint8Array([1, 2, 3, 4]), new Uint8Array([5, 6, 7, 8]), new Uint8Array([9, 9, 9, 9]), new Uint8Array([0, 0, 0, 1])];
    const leaves = shards.map((s) => shardLeaf(s));
    expect(() => verifyShard(g, leaves, 1, 1, shards[3]!)).not.toThrow();
    const bad = Uint8Array.from(shards[3]!);
    bad[0] = 7;
    expect(() => verifyShard(g, leaves, 1, 1, bad)).toThrow("shard (1, 1) does not match its leaf hash");
    expect(() => verifyShard(g, leaves, 1, 1, new Uint8Array(3))).toThrow(/3 bytes, expected 4/);
  });
});
