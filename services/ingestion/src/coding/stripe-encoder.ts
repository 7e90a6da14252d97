/**
 * Stripe → shards + leaves. Parity comes from the codec and the n leaf hashes from WebCrypto
 * SHA-256; both run on libuv's thread pool, so a stripe is encoded on every core while the
 * event loop keeps streaming.
 */
import { webcrypto } from "node:crypto";

import type { StripeCodec } from "./reed-solomon.js";

export interface EncodedStripe {
  /** n = k + m shards: the k data shards (views into the input), then the m parity shards. */
  readonly shards: Buffer[];
  /** leaf = SHA-256(0x00 ‖ shard), one per shard, in slot order. */
  readonly leaves: Uint8Array[];
}

/** SHA-256(0x00 ‖ shard) off the event loop. */
export async function shardLeafAsync(shard: Uint8Array): Promise<Uint8Array> {
  const prefixed = Buffer.allocUnsafe(shard.length + 1);
  prefixed[0] = 0;
  prefixed.set(shard, 1);
  return new Uint8Array(await webcrypto.subtle.digest("SHA-256", prefixed));
}

/** Encodes one full stripe (k × shardSize bytes; the caller zero-pads the last one). */
export async function encodeStripe(codec: StripeCodec, data: Buffer): Promise<EncodedStripe> {
  const S = codec.shardSize;
  const dataShards = Array.from({ length: codec.k }, (_, i) => data.subarray(i * S, (i + 1) * S));
  // Hash the data shards while the parity is computed.
  const dataLeaves = Promise.all(dataShards.map(shardLeafAsync));
  const parity = await codec.encode(data);
  const parityShards = Array.from({ length: codec.m }, (_, i) => parity.subarray(i * S, (i + 1) * S));
  const leaves = [...(await dataLeaves), ...(await Promise.all(parityShards.map(shardLeafAsync)))];
  return { shards: [...dataShards, ...parityShards], leaves };
}
