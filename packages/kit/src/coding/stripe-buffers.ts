/**
 * Reusable SharedArrayBuffer-backed memory for stripe encoding. Shared memory lets the leaf-hash
 * workers read shards in place (no copy), and reuse matters because fresh memory is expensive:
 * on our VMs the first touch of a newly mapped MiB costs ~1–4 ms in page faults, more than
 * hashing it. Freed buffers wait here, a bounded number per size, for the next taker.
 */
import { types } from "node:util";

import { InvalidArgumentError } from "../errors.js";

import type { StripeCodec } from "./reed-solomon.js";

/** Free buffers kept per size: enough for a pipeline's stripes in flight, at most ~64 MiB. */
function maxFree(size: number): number {
  return Math.max(2, Math.min(64, Math.floor((64 * 2 ** 20) / size)));
}

const free = new Map<number, SharedArrayBuffer[]>();
/** Memory handed out by allocStripe/allocParity and not yet released. */
const lent = new WeakSet<SharedArrayBuffer>();

/** True when `bytes` lives in shared memory (any realm), so a worker can read it in place. */
export function isShared(bytes: Uint8Array): boolean {
  return types.isSharedArrayBuffer(bytes.buffer);
}

/** Internal: shared memory of exactly `size` bytes, reused when possible; contents are arbitrary. */
export function takeShared(size: number): Buffer {
  const sab = free.get(size)?.pop() ?? new SharedArrayBuffer(size);
  return Buffer.from(sab, 0, size);
}

/** Internal: returns a takeShared() buffer; nothing may touch it afterwards. */
export function giveShared(buf: Buffer): void {
  const sab = buf.buffer as SharedArrayBuffer;
  let list = free.get(sab.byteLength);
  if (!list) free.set(sab.byteLength, (list = []));
  if (list.length < maxFree(sab.byteLength)) list.push(sab);
}

function lend(size: number): Buffer {
  const buf = takeShared(size);
  lent.add(buf.buffer as SharedArrayBuffer);
  return buf;
}

/**
 * A stripe buffer (k × shardSize bytes) that encodeStripe encodes fastest: SharedArrayBuffer-backed,
 * so its data shards are hashed in place by the worker threads. It may be recycled memory, so its
 * contents are arbitrary: fill all of it (zero-pad a short last stripe).
 *
 * Ownership: the caller owns it until it passes it to releaseStripeBuffer(), which is optional (an
 * unreleased buffer is simply garbage-collected; releasing it saves the next allocation).
 * Note: some web APIs (TextDecoder, some fetch/Blob paths) refuse views of shared memory; copy first.
 */
export function allocStripe(codec: StripeCodec): Buffer {
  return lend(codec.k * codec.shardSize);
}

/**
 * A parity buffer (m × shardSize bytes) for encodeStripe(codec, data, parity): encodeStripe then
 * writes the parity shards into it and returns them as views into it, with no allocation or copy.
 * Ownership as for allocStripe.
 */
export function allocParity(codec: StripeCodec): Buffer {
  return lend(codec.m * codec.shardSize);
}

/**
 * Hands a buffer from allocStripe() or allocParity() back for reuse. After this call the caller
 * must not read or write it, nor any view into it — in particular the shards of an EncodedStripe
 * made from it (data shards view the stripe buffer, parity shards the parity buffer) — and must not
 * have an encodeStripe() on it still running: the next allocStripe/allocParity may hand the same
 * memory to someone else. Throws InvalidArgumentError for a buffer that did not come from
 * allocStripe/allocParity, is a view of part of one, or was already released.
 */
export function releaseStripeBuffer(buf: Buffer): void {
  const sab = buf.buffer;
  if (!types.isSharedArrayBuffer(sab) || !lent.has(sab))
    throw new InvalidArgumentError("releaseStripeBuffer: not a buffer from allocStripe/allocParity, or already released");
  if (buf.byteOffset !== 0 || buf.length !== sab.byteLength)
    throw new InvalidArgumentError("releaseStripeBuffer: pass the whole buffer allocStripe/allocParity returned, not a view of part of it");
  lent.delete(sab);
  giveShared(buf);
}
