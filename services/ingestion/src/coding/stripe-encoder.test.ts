import { randomBytes } from "node:crypto";

import { shardLeaf, shardRoot, verifyShard } from "@deai/proofs";

import { StripeCodec } from "./reed-solomon.js";
import { encodeStripe, shardLeafAsync } from "./stripe-encoder.js";

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
});
