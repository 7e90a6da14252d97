/**
 * RFC 6962 leaf hashes, SHA-256(0x00 ‖ shard), on worker threads that read the shards in place
 * from shared memory: node:crypto hashes at SHA-NI speed with no copy.
 *
 * Cross-thread wake-ups are what costs here (~15 µs of CPU each on our VMs, more under load), so
 * a whole stripe is one message each way: the worker hashes the data shards, then waits on a
 * shared-memory flag that the main thread raises (Atomics, no message) when the parity is ready,
 * and hashes the parity shards.
 *
 * The worker is inline plain JavaScript (eval), so it runs the same from dist/ and from the
 * TypeScript sources under jest. Workers start on first use, are unref'd while idle (they never
 * keep the process alive, but do while a batch is pending, so an awaited hash cannot be cut off
 * by the process exiting), and a worker that dies rejects the batches it held; the next batch
 * starts a replacement.
 */
import { createHash } from "node:crypto";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";

import { giveShared, isShared, takeShared } from "./stripe-buffers.js";

/** Flag states in the control array: the "later" shards of a batch are not ready / ready / never coming. */
const PENDING = 0;
const READY = 1;
const CANCELLED = 2;

/**
 * The worker. A batch is { id, shards, later?, flag }: it hashes `shards`; then, if `later` is
 * given, waits until control[flag] leaves PENDING and hashes `later` if it became READY. It replies
 * { id, leaves } with 32 bytes per hashed shard, or { id, error }.
 */
export const LEAF_HASH_WORKER_SOURCE = `
"use strict";
const { parentPort, workerData } = require("node:worker_threads");
const { createHash } = require("node:crypto");
const control = new Int32Array(workerData.control);
const prefix = new Uint8Array(1);
function hashInto(shards, out, at) {
  for (let i = 0; i < shards.length; i++) {
    out.set(createHash("sha256").update(prefix).update(shards[i]).digest(), at + 32 * i);
  }
}
parentPort.on("message", (job) => {
  let leaves;
  try {
    const later = job.later || [];
    leaves = new Uint8Array(32 * (job.shards.length + later.length));
    hashInto(job.shards, leaves, 0);
    if (later.length > 0) {
      while (Atomics.load(control, job.flag) === ${PENDING}) Atomics.wait(control, job.flag, ${PENDING}, 100);
      if (Atomics.load(control, job.flag) !== ${READY}) {
        parentPort.postMessage({ id: job.id, error: "cancelled" });
        return;
      }
      hashInto(later, leaves, 32 * job.shards.length);
    }
  } catch (e) {
    parentPort.postMessage({ id: job.id, error: String((e && e.stack) || e) });
    return;
  }
  parentPort.postMessage({ id: job.id, leaves });
});
`;

/** Batches up to this many bytes are hashed on the calling thread: cheaper than a round trip. */
export const INLINE_HASH_BYTES = 16 * 1024;

/** Batches handed to one worker ahead of its results, so it never idles waiting for the next. */
const MAX_QUEUED_PER_WORKER = 2;

/** Stripes that can wait for their parity at once (beyond that, parity goes in a second batch). */
const FLAG_SLOTS = 1024;

const LEAF_PREFIX = new Uint8Array(1);

/** SHA-256(0x00 ‖ shard) on the calling thread. */
export function leafHashSync(shard: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(LEAF_PREFIX).update(shard).digest());
}

interface Batch {
  readonly id: number;
  readonly shards: readonly Uint8Array[];
  readonly later?: readonly Uint8Array[];
  readonly flag: number;
  resolve(leaves: Uint8Array[]): void;
  reject(error: Error): void;
}

interface Slot {
  readonly worker: Worker;
  readonly batches: Map<number, Batch>;
  dead: boolean;
}

type Reply = { id: number; leaves: Uint8Array } | { id: number; error: string };

export interface LeafHashPoolOptions {
  /** Worker threads; default min(4, available cores). */
  workers?: number;
  /** Test seam: replaces the worker's JavaScript. */
  workerSource?: string;
}

export class LeafHashPool {
  readonly size: number;
  private readonly source: string;
  private readonly slots: Slot[] = [];
  private readonly queue: Batch[] = [];
  private readonly control = new Int32Array(new SharedArrayBuffer(4 * FLAG_SLOTS));
  private readonly freeFlags = Array.from({ length: FLAG_SLOTS }, (_, i) => FLAG_SLOTS - 1 - i);
  private nextId = 0;

  constructor(options: LeafHashPoolOptions = {}) {
    this.size = Math.max(1, Math.floor(options.workers ?? Math.min(4, availableParallelism())));
    this.source = options.workerSource ?? LEAF_HASH_WORKER_SOURCE;
  }

  /** Number of worker threads running now. */
  get running(): number {
    return this.slots.length;
  }

  /**
   * Leaf hashes of `shards`, in order, computed off this thread. Shards in shared memory are read
   * in place and must not change until this settles; others are first copied into shared memory.
   * Small batches (≤ INLINE_HASH_BYTES in all) are hashed right here, which is cheaper.
   */
  hash(shards: readonly Uint8Array[]): Promise<Uint8Array[]> {
    if (totalBytes(shards) <= INLINE_HASH_BYTES) return inline(shards);
    if (shards.every(isShared)) return this.submit(shards);
    const [scratch, views] = sharedCopy(shards);
    return this.submit(views).finally(() => giveShared(scratch));
  }

  /**
   * Leaf hashes of `first` then `later`, in one round trip to a worker: `later` is hashed once
   * `ready` resolves (the worker hashes `first` meanwhile); if `ready` rejects, so does this.
   * All shards must be in shared memory and unchanged until this settles (`later` from the moment
   * `ready` resolves). `ready` must settle: a worker waits for it (its other batches queue behind).
   */
  hashStaged(first: readonly Uint8Array[], later: readonly Uint8Array[], ready: Promise<unknown>): Promise<Uint8Array[]> {
    const flag = this.freeFlags.pop();
    if (totalBytes(first) + totalBytes(later) <= INLINE_HASH_BYTES || flag === undefined) {
      if (flag !== undefined) this.freeFlags.push(flag);
      const a = this.hash(first);
      const b = ready.then(() => this.hash(later));
      return Promise.all([a, b]).then(([x, y]) => [...x, ...y]);
    }
    if (!first.every(isShared) || !later.every(isShared)) {
      this.freeFlags.push(flag);
      throw new Error("hashStaged: shards must be in shared memory");
    }
    Atomics.store(this.control, flag, PENDING);
    const raise = (state: number): void => {
      Atomics.store(this.control, flag, state);
      Atomics.notify(this.control, flag);
    };
    ready.then(
      () => raise(READY),
      () => raise(CANCELLED),
    );
    // With workers idle (few stripes in flight) the stripe is split so that all of them help.
    const parts = Math.max(1, Math.min(this.idleWorkers(), first.length, later.length));
    const batches: Promise<[Uint8Array[], Uint8Array[]]>[] = [];
    for (let p = 0; p < parts; p++) {
      const f = first.slice(Math.floor((p * first.length) / parts), Math.floor(((p + 1) * first.length) / parts));
      const l = later.slice(Math.floor((p * later.length) / parts), Math.floor(((p + 1) * later.length) / parts));
      batches.push(this.submit(f, l, flag).then((leaves) => [leaves.slice(0, f.length), leaves.slice(f.length)]));
    }
    // The flag is reused only once no worker can still be waiting on it.
    void Promise.allSettled([...batches, ready]).then(() => this.freeFlags.push(flag));
    return Promise.all(batches).then((split) => [...split.flatMap(([f]) => f), ...split.flatMap(([, l]) => l)]);
  }

  /** Workers (running or not yet started) with nothing to do, if nothing is queued either. */
  private idleWorkers(): number {
    if (this.queue.length > 0) return 0;
    let idle = this.size - this.slots.length;
    for (const slot of this.slots) if (slot.batches.size === 0) idle++;
    return idle;
  }

  /**
   * Stops the workers; batches not yet hashed reject. The pool stays usable: the next hash()
   * starts workers again.
   */
  async close(): Promise<void> {
    const error = new Error("leaf-hash workers were closed");
    for (const batch of this.queue.splice(0)) batch.reject(error);
    const slots = this.slots.splice(0);
    for (const slot of slots) this.kill(slot, error);
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private submit(shards: readonly Uint8Array[], later?: readonly Uint8Array[], flag = -1): Promise<Uint8Array[]> {
    return new Promise((resolve, reject) => {
      this.queue.push(
        later ? { id: this.nextId++, shards, later, flag, resolve, reject } : { id: this.nextId++, shards, flag, resolve, reject },
      );
      this.pump();
    });
  }

  private pump(): void {
    while (this.queue.length > 0) {
      let best: Slot | undefined;
      for (const slot of this.slots) if (!best || slot.batches.size < best.batches.size) best = slot;
      if (!best || (best.batches.size > 0 && this.slots.length < this.size)) best = this.spawn();
      if (best.batches.size >= MAX_QUEUED_PER_WORKER) return;
      const batch = this.queue.shift()!;
      if (best.batches.size === 0) best.worker.ref();
      best.batches.set(batch.id, batch);
      best.worker.postMessage(
        batch.later ? { id: batch.id, shards: batch.shards, later: batch.later, flag: batch.flag } : { id: batch.id, shards: batch.shards },
      );
    }
  }

  private spawn(): Slot {
    const worker = new Worker(this.source, { eval: true, name: "leaf-hash", workerData: { control: this.control.buffer } });
    worker.unref();
    const slot: Slot = { worker, batches: new Map(), dead: false };
    worker.on("message", (reply: Reply) => this.settle(slot, reply));
    worker.on("error", (e) => this.die(slot, new Error(`a leaf-hash worker crashed: ${e.message}`, { cause: e })));
    worker.on("exit", (code) => this.die(slot, new Error(`a leaf-hash worker exited (code ${code}) with batches pending`)));
    worker.on("messageerror", (e) => {
      this.die(slot, new Error("a leaf-hash worker sent an unreadable message", { cause: e }));
      void worker.terminate();
    });
    this.slots.push(slot);
    return slot;
  }

  private settle(slot: Slot, reply: Reply): void {
    const batch = slot.batches.get(reply.id);
    if (!batch) return;
    slot.batches.delete(reply.id);
    if ("error" in reply) {
      batch.reject(new Error(`leaf hashing failed in a worker: ${reply.error}`));
    } else {
      const leaves: Uint8Array[] = [];
      for (let i = 0; 32 * i < reply.leaves.length; i++) leaves.push(reply.leaves.slice(32 * i, 32 * (i + 1)));
      batch.resolve(leaves);
    }
    this.pump();
    if (slot.batches.size === 0 && !slot.dead) slot.worker.unref();
  }

  /** Takes a worker out of service and rejects what it held; later batches go to a new one. */
  private die(slot: Slot, error: Error): void {
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
    this.kill(slot, error);
    this.pump();
  }

  private kill(slot: Slot, error: Error): void {
    if (slot.dead) return;
    slot.dead = true;
    slot.worker.unref();
    for (const batch of slot.batches.values()) batch.reject(error);
    slot.batches.clear();
  }
}

function totalBytes(shards: readonly Uint8Array[]): number {
  let bytes = 0;
  for (const s of shards) bytes += s.length;
  return bytes;
}

async function inline(shards: readonly Uint8Array[]): Promise<Uint8Array[]> {
  return shards.map(leafHashSync);
}

/** One shared buffer holding copies of `shards`, and views of the copies. */
function sharedCopy(shards: readonly Uint8Array[]): [Buffer, Uint8Array[]] {
  const scratch = takeShared(totalBytes(shards));
  const views: Uint8Array[] = [];
  let at = 0;
  for (const s of shards) {
    scratch.set(s, at);
    views.push(scratch.subarray(at, at + s.length));
    at += s.length;
  }
  return [scratch, views];
}
