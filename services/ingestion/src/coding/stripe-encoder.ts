/**
 * Stripe → shards + leaves. Parity comes from the codec on libuv's thread pool; the n leaf hashes
 * come from worker threads (LeafHashPool) reading the shards in place from shared memory. The data
 * leaves are hashed while the parity is computed, so a stripe is encoded on every core while the
 * event loop keeps streaming.
 *
 * Fastest use (no allocation, no copy): a stripe buffer from allocStripe(), a parity buffer from
 * allocParity(), both handed back with releaseStripeBuffer() once the shards have been copied out.
 * Any Buffer works too: a plain (non-shared) stripe is copied once into recycled shared memory for
 * hashing, and without a parity buffer the parity is returned in a fresh Buffer.
 */
import { InvalidArgumentError } from "@deai/kit/errors";

import { LeafHashPool } from "./leaf-hash-pool.js";
import type { StripeCodec } from "./reed-solomon.js";
import { giveShared, isShared, takeShared } from "./stripe-buffers.js";

export { allocParity, allocStripe, releaseStripeBuffer } from "./stripe-buffers.js";

export interface EncodedStripe {
  /**
   * n = k + m shards: the k data shards (views into the input), then the m parity shards (views
   * into the parity buffer passed to encodeStripe, else into a fresh Buffer).
   */
  readonly shards: Buffer[];
  /** leaf = SHA-256(0x00 ‖ shard), one per shard, in slot order. */
  readonly leaves: Uint8Array[];
}

let pool: LeafHashPool | undefined;

function hasher(): LeafHashPool {
  return (pool ??= new LeafHashPool());
}

/** How many leaf-hash worker threads encodeStripe uses (at most; they start on demand). */
export function leafHashWorkers(): number {
  return hasher().size;
}

/**
 * Stops the leaf-hash worker threads (they never keep the process alive, so this is only needed
 * for a prompt, tidy shutdown, e.g. in tests). Encodes still running reject; a later encode starts
 * the workers again.
 */
export async function closeStripeEncoder(): Promise<void> {
  await pool?.close();
}

/** SHA-256(0x00 ‖ shard) off the event loop (on a worker thread; small shards inline). */
export async function shardLeafAsync(shard: Uint8Array): Promise<Uint8Array> {
  return (await hasher().hash([shard]))[0]!;
}

/** Views of the `count` shards of `size` bytes that lie one after another in `buf`. */
function shardViews(buf: Buffer, count: number, size: number): Buffer[] {
  const shards: Buffer[] = [];
  for (let i = 0; i < count; i++) shards.push(buf.subarray(i * size, (i + 1) * size));
  return shards;
}

/**
 * Encodes one full stripe (k × shardSize bytes; the caller zero-pads the last one).
 *
 * `parity`, if given (m × shardSize bytes, best from allocParity()), receives the parity shards,
 * which are returned as views into it. Neither `data` nor `parity` may be modified until the
 * promise settles.
 */
export async function encodeStripe(codec: StripeCodec, data: Buffer, parity?: Buffer): Promise<EncodedStripe> {
  const { k, m, shardSize: S } = codec;
  if (data.length !== k * S) throw new InvalidArgumentError(`a stripe is ${k * S} bytes, got ${data.length}`);
  if (parity !== undefined && parity.length !== m * S)
    throw new InvalidArgumentError(`a stripe's parity is ${m * S} bytes, got ${parity.length}`);
  const hashes = hasher();
  // Parity goes straight into shared memory, so a worker hashes it where the codec wrote it.
  const work = parity && isShared(parity) ? parity : takeShared(m * S);
  const parityReady = (async () => codec.encodeInto(data, work))();
  // The data shards are hashed while the parity is computed: in place if shared, else via one copy.
  let dataCopy: Buffer | undefined;
  if (!isShared(data)) data.copy((dataCopy = takeShared(k * S)));
  const leaves = hashes.hashStaged(shardViews(dataCopy ?? data, k, S), shardViews(work, m, S), parityReady);
  // The caller keeps the parity, `work` is recycled: copy it out while the workers hash.
  let parityOut = work;
  const copied = parityReady.then(() => {
    if (work !== parity) work.copy((parityOut = parity ?? Buffer.allocUnsafe(m * S)));
  });
  const [p, l] = await Promise.allSettled([copied, leaves]);
  if (dataCopy) giveShared(dataCopy);
  if (work !== parity) giveShared(work);
  if (p.status === "rejected") throw p.reason;
  if (l.status === "rejected") throw l.reason;
  const shards = [...shardViews(data, k, S), ...shardViews(parityOut, m, S)];
  return { shards, leaves: l.value };
}
