/**
 * One upload's byte pipeline, held in memory by the instance receiving its stream:
 * bytes → stripe buffer (k × S) → parity + leaves (thread pool) → per-slot part buffers of G
 * stripes → one multipart part per slot, uploaded to the n providers in parallel → a Postgres
 * commit of the group's ETags and leaves and the new durable offset.
 *
 * Memory is bounded whatever the dataset size. With a declared size each slot's part is a
 * streamed PUT fed shard by shard (a few stripes in memory); otherwise one group is filling and
 * one uploading (2 × n × G × S bytes of part buffers). The next stream chunk is not read while
 * the pipeline is full, so backpressure reaches the client.
 *
 * contentDigest is hashed stripe by stripe; a copy of the hash state is kept at every durable
 * group so a broken stream resumes with it. A session rebuilt after a restart has no hash
 * state: its contentDigest is computed at completion from the stored, leaf-checked shards.
 */
import { createHash, type Hash } from "node:crypto";

import { FailedPreconditionError, InvalidArgumentError } from "@deai/kit/errors";

import type { StripeCodec } from "../coding/reed-solomon.js";
import { encodeStripe } from "../coding/stripe-encoder.js";
import type { PartWriter } from "@deai/kit";

import type { MemoryLease } from "./memory-budget.js";

export interface GroupCommit {
  readonly groupIndex: number;
  readonly stripes: number;
  /** Per slot: the part's bytes (stripes × S), when buffered. */
  readonly parts?: readonly Buffer[];
  /** Per slot: the ETags of the streamed parts, when streamed. */
  readonly etags?: Promise<string[]>;
  /** stripes × n leaves, (stripe, slot) order. */
  readonly leaves: Buffer;
  /** Dataset bytes durable once this group is committed. */
  readonly endOffset: number;
  readonly final: boolean;
}

export interface SessionStore {
  /**
   * Uploads the parts (or awaits the streamed parts' ETags) and commits the group durably;
   * throws when either fails.
   */
  commitGroup(group: GroupCommit): Promise<void>;
  /** Opens one streamed multipart part per slot for a group, each of `bytesPerSlot` bytes. */
  openParts?(groupIndex: number, bytesPerSlot: number): PartWriter[];
}

interface Group {
  index: number;
  stripes: number;
  /** Buffered mode: per-slot part buffers. */
  parts: Buffer[];
  /** Streaming mode: per-slot part requests, opened on the group's first stripe. */
  writers?: PartWriter[];
  leaves: Buffer;
}

export class UploadSession {
  readonly n: number;
  readonly stripeBytes: number;
  /** Bytes accepted into the pipeline (durable or buffered). */
  received: number;
  /** Bytes durably committed. */
  durable: number;
  /** Set when the stream was finished (final group committed): no more bytes. */
  finished = false;

  private stripe: Buffer;
  private fill = 0;
  private group: Group;
  private hash: Hash | undefined;
  private durableHash: Hash | undefined;
  private uploading: Promise<void> | undefined;
  private failure: Error | undefined;
  private free: Buffer[] | undefined;
  /** The last group (a partial stripe included) is durable: the stream can never reopen. */
  private finalCommitted = false;
  /** Whether a stream (or finish) holds the session. */
  private held = false;
  /** Whether the streamed-part queues are reserved in the memory budget. */
  private queuesReserved = false;
  /** Set once the session is closed: every later (or pending) write fails with it. */
  private closed: Error | undefined;
  /** Streamed part PUTs not yet settled, per group (the filling group's and the committing group's). */
  private readonly openWriters = new Set<PartWriter[]>();

  constructor(
    readonly uploadId: string,
    readonly codec: StripeCodec,
    readonly stripesPerGroup: number,
    private readonly store: SessionStore,
    /** Durable state to start from. */
    start: { durableOffset: number; hashValid: boolean; finished?: boolean },
    /**
     * The declared size, when known: every group's part size is then known in advance and
     * parts are streamed to the providers as stripes are encoded (memory: a few stripes).
     * Unknown: each group's parts are buffered (2 × n × G × S bytes at most).
     */
    private readonly totalSize?: number,
    /** This session's share of the instance's memory budget (reserved before each allocation). */
    private readonly memory?: MemoryLease,
  ) {
    this.n = codec.k + codec.m;
    this.stripeBytes = codec.k * codec.shardSize;
    const groupBytes = this.stripeBytes * stripesPerGroup;
    // Only a finished stream (its last group committed) ends between group boundaries.
    if (start.durableOffset % groupBytes !== 0 && !start.finished) {
      throw new Error(`upload ${uploadId}: durable offset ${start.durableOffset} is not a whole number of part groups`);
    }
    this.finished = this.finalCommitted = start.finished ?? false;
    this.received = this.durable = start.durableOffset;
    this.hash = start.hashValid ? createHash("sha256") : undefined;
    this.durableHash = this.hash?.copy();
    // Two stripe buffers are live at a time: one filling, one being encoded.
    this.memory?.reserve(2 * this.stripeBytes, "stripe buffers");
    this.stripe = Buffer.allocUnsafe(this.stripeBytes);
    this.group = this.newGroup(Math.ceil(start.durableOffset / groupBytes));
  }

  /** Takes the session for one stream (or finish); false when another holds it. */
  tryLock(): boolean {
    if (this.held) return false;
    this.held = true;
    return true;
  }

  unlock(): void {
    this.held = false;
  }

  /** Whether a stream (or finish) holds the session. */
  isLocked(): boolean {
    return this.held;
  }

  /**
   * Drops open part requests (the upload ended or the process is stopping) and gives the
   * session's memory back; a stream still attached fails at its next write.
   */
  close(): void {
    this.closed = new FailedPreconditionError(
      `upload ${this.uploadId} ended (aborted, expired, idle or the service is stopping) while receiving`,
    );
    this.failure = this.closed;
    // Every part PUT still open goes: the filling group's and the one being committed.
    for (const writers of this.openWriters) writers.forEach((w) => w.abort());
    this.openWriters.clear();
    this.memory?.close();
  }

  /** Whether contentDigest can be taken from the running hash (no restart since byte 0). */
  get hashValid(): boolean {
    return this.hash !== undefined;
  }

  /** Accepts the next bytes (in order); resolves when they are in the pipeline. */
  async write(chunk: Uint8Array): Promise<void> {
    try {
      await this.writeChunk(chunk);
    } catch (e) {
      // A part PUT cut by close() fails with the reason the session closed, not as a provider failure.
      throw this.closed ?? e;
    }
  }

  private async writeChunk(chunk: Uint8Array): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.finished) throw new InvalidArgumentError("the upload's stream is already finished");
    let at = 0;
    while (at < chunk.length) {
      const take = Math.min(chunk.length - at, this.stripeBytes - this.fill);
      this.stripe.set(chunk.subarray(at, at + take), this.fill);
      this.fill += take;
      at += take;
      this.received += take;
      if (this.fill === this.stripeBytes) await this.sealStripe(this.stripeBytes);
    }
  }

  /** Waits until every full group handed over is committed (or throws its failure). */
  async settle(): Promise<void> {
    await this.uploading;
    if (this.closed) throw this.closed;
    if (this.failure) throw this.failure;
  }

  /** Ends the stream: pads and commits the last stripe and group. */
  async finish(): Promise<void> {
    if (this.finished) return;
    if (this.fill > 0) {
      const real = this.fill;
      this.stripe.fill(0, real);
      await this.sealStripe(real);
    }
    if (this.group.stripes > 0) await this.flushGroup(true);
    await this.settle();
    this.finished = true;
  }

  /** The final contentDigest (hex), when the hash ran from byte 0. */
  digestHex(): string | undefined {
    return this.hash?.copy().digest("hex");
  }

  /**
   * Drops everything past the durable offset (a broken or rejected stream): the next stream
   * starts at `durable`.
   */
  async rollbackToDurable(): Promise<void> {
    await this.uploading?.catch(() => undefined);
    this.uploading = undefined;
    this.failure = undefined;
    this.fill = 0;
    this.received = this.durable;
    this.hash = this.durableHash?.copy();
    const groupBytes = this.stripeBytes * this.stripesPerGroup;
    this.group.writers?.forEach((w) => w.abort());
    if (this.group.writers) this.openWriters.delete(this.group.writers);
    this.recycle(this.group);
    this.group = this.newGroup(Math.ceil(this.durable / groupBytes));
    this.finished = this.finalCommitted;
  }

  /**
   * Forgets durable progress back to `offset` (rounded down to a group), after the store
   * rolled it back; the hash restarts only from byte 0.
   */
  async rollbackTo(offset: number): Promise<void> {
    const groupBytes = this.stripeBytes * this.stripesPerGroup;
    this.durable = Math.floor(offset / groupBytes) * groupBytes;
    if (this.durable === 0) this.durableHash = createHash("sha256");
    else this.durableHash = undefined;
    await this.rollbackToDurable();
  }

  private async sealStripe(realBytes: number): Promise<void> {
    const data = this.stripe;
    this.stripe = Buffer.allocUnsafe(this.stripeBytes);
    this.fill = 0;
    this.hash?.update(realBytes === data.length ? data : data.subarray(0, realBytes));
    const encoded = await encodeStripe(this.codec, data);
    const g = this.group;
    const S = this.codec.shardSize;
    for (let j = 0; j < this.n; j++) {
      Buffer.from(encoded.leaves[j]!.buffer, encoded.leaves[j]!.byteOffset, 32).copy(g.leaves, (g.stripes * this.n + j) * 32);
    }
    if (this.streaming) {
      if (!this.queuesReserved) {
        // Each streamed part PUT queues up to its highWaterMark (1 MiB) or its part, plus a shard.
        this.memory?.reserve(this.n * (Math.min(1024 * 1024, this.stripesPerGroup * S) + S), "streamed part queues");
        this.queuesReserved = true;
      }
      if (this.closed) throw this.closed;
      if (!g.writers) {
        g.writers = this.store.openParts!(g.index, this.stripesInGroup(g.index) * S);
        this.openWriters.add(g.writers);
      }
      const writers = g.writers;
      await Promise.all(writers.map((w, j) => w.write(encoded.shards[j]!)));
    } else {
      if (g.parts.length === 0) g.parts = this.partBuffers();
      for (let j = 0; j < this.n; j++) encoded.shards[j]!.copy(g.parts[j]!, g.stripes * S);
    }
    g.stripes++;
    if (g.stripes === this.stripesPerGroup) await this.flushGroup(false);
  }

  private get streaming(): boolean {
    return this.totalSize !== undefined && this.store.openParts !== undefined;
  }

  /** Stripes of group `index` given the declared size. */
  private stripesInGroup(index: number): number {
    const total = Math.ceil(this.totalSize! / this.stripeBytes);
    return Math.min(this.stripesPerGroup, total - index * this.stripesPerGroup);
  }

  private async flushGroup(final: boolean): Promise<void> {
    const g = this.group;
    this.group = this.newGroup(g.index + 1);
    const hashAfter = this.hash?.copy();
    const endOffset = final ? this.received : (g.index * this.stripesPerGroup + g.stripes) * this.stripeBytes;
    // One group uploads while the next fills: wait for the previous one before handing over.
    try {
      await this.settle();
    } catch (e) {
      // The previous group failed: this one's streamed parts must not land later.
      g.writers?.forEach((w) => w.abort());
      throw e;
    }
    const S = this.codec.shardSize;
    const writers = g.writers;
    const etags = writers ? Promise.all(writers.map((w) => w.end())) : undefined;
    etags?.catch(() => undefined);
    void etags?.finally(() => this.openWriters.delete(writers!)).catch(() => undefined);
    const commit: GroupCommit = {
      groupIndex: g.index,
      stripes: g.stripes,
      ...(etags ? { etags } : { parts: g.parts.map((p) => p.subarray(0, g.stripes * S)) }),
      leaves: g.leaves.subarray(0, g.stripes * this.n * 32),
      endOffset,
      final,
    };
    this.uploading = this.store.commitGroup(commit).then(
      () => {
        this.durable = endOffset;
        this.durableHash = hashAfter;
        if (final) this.finalCommitted = true;
        this.recycle(g);
      },
      (e: unknown) => {
        this.failure = e instanceof Error ? e : new Error(String(e));
      },
    );
  }

  private newGroup(index: number): Group {
    return { index, stripes: 0, parts: [], leaves: Buffer.allocUnsafe(this.stripesPerGroup * this.n * 32) };
  }

  /** Part buffers for a group's first stripe: the last committed group's, else fresh ones. */
  private partBuffers(): Buffer[] {
    const reused = this.free;
    this.free = undefined;
    if (reused) return reused;
    this.memory?.reserve(this.n * this.stripesPerGroup * this.codec.shardSize, "part buffers");
    return Array.from({ length: this.n }, () => Buffer.allocUnsafe(this.stripesPerGroup * this.codec.shardSize));
  }

  /** Keeps one committed group's buffers for the next group: at most two sets are ever live. */
  private recycle(g: Group): void {
    if (g.parts.length > 0) this.free = g.parts;
  }
}
