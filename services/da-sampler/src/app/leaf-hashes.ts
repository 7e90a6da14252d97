/**
 * Shard leaf hashes off the event loop: repair verifies every shard it reads and every shard it
 * rebuilds (sha256(0x00 ‖ shard), the kit's `shardLeafHash`), which on the event loop costs as
 * much as the reads themselves. A few worker threads hash views of a SharedArrayBuffer (the
 * read window's buffer: nothing is copied) and answer with the 32-byte digests; the caller
 * compares them with the manifest's leaves. One pool per repair run, terminated with it.
 */
import { Worker } from "node:worker_threads";

// Plain JavaScript (evaluated, so it runs from the sources under jest as from dist/).
const WORKER = `
const { parentPort } = require("node:worker_threads");
const { createHash } = require("node:crypto");
const zero = Buffer.of(0);
parentPort.on("message", ({ id, buffer, offsets, size }) => {
  try {
    const bytes = Buffer.from(buffer);
    const out = new Uint8Array(offsets.length * 32);
    for (let i = 0; i < offsets.length; i++)
      out.set(createHash("sha256").update(zero).update(bytes.subarray(offsets[i], offsets[i] + size)).digest(), i * 32);
    parentPort.postMessage({ id, out }, [out.buffer]);
  } catch (e) {
    parentPort.postMessage({ id, error: String(e && e.message || e) });
  }
});
`;

interface Waiting {
  readonly ok: (digests: Buffer[]) => void;
  readonly fail: (e: Error) => void;
}

interface Hasher {
  readonly worker: Worker;
  readonly waiting: Map<number, Waiting>;
}

/** Allocates a buffer the hash threads can read in place. */
export function sharedBuffer(size: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(size));
}

/**
 * Shared buffers of one size reused within a repair run: a fresh SharedArrayBuffer per read
 * window costs its zeroing and page faults (as much as the copy into it) and garbage.
 */
export class SharedBuffers {
  private readonly free: Buffer[] = [];

  constructor(
    private readonly size: number,
    private readonly keep: number,
  ) {}

  acquire(): Buffer {
    return this.free.pop() ?? sharedBuffer(this.size);
  }

  /** The caller holds no view of `b` any more (nor does anything it handed one to). */
  release(b: Buffer): void {
    if (this.free.length < this.keep && b.length === this.size) this.free.push(b);
  }
}

export class LeafHashPool {
  private readonly hashers: (Hasher | undefined)[] = [];
  private nextId = 1;
  private turn = 0;
  private closed = false;

  constructor(private readonly threads: number) {}

  /**
   * The leaf hash of each shard [offset, offset + size) of `bytes` (a `sharedBuffer`), in
   * order. `bytes` may not change until it settles.
   */
  hash(bytes: Buffer, offsets: readonly number[], size: number): Promise<Buffer[]> {
    // Split over the threads: one call's shards are hashed side by side.
    const per = Math.ceil(offsets.length / Math.max(1, this.threads));
    if (offsets.length > per)
      return Promise.all(
        Array.from({ length: Math.ceil(offsets.length / per) }, (_, j) => this.hashOn(bytes, offsets.slice(j * per, (j + 1) * per), size)),
      ).then((parts) => parts.flat());
    return this.hashOn(bytes, offsets, size);
  }

  private hashOn(bytes: Buffer, offsets: readonly number[], size: number): Promise<Buffer[]> {
    if (this.closed) return Promise.reject(new Error("the leaf hash pool is closed"));
    if (!(bytes.buffer instanceof SharedArrayBuffer))
      return Promise.reject(new Error("leaf hashes need a SharedArrayBuffer-backed buffer"));
    if (offsets.length === 0) return Promise.resolve([]);
    const h = this.hasher();
    const id = this.nextId++;
    return new Promise<Buffer[]>((ok, fail) => {
      h.waiting.set(id, { ok, fail });
      h.worker.postMessage({ id, buffer: bytes.buffer, offsets: offsets.map((o) => bytes.byteOffset + o), size });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = this.hashers.splice(0).filter((h): h is Hasher => h !== undefined);
    for (const h of all) for (const w of h.waiting.values()) w.fail(new Error("the leaf hash pool was closed"));
    await Promise.all(all.map((h) => h.worker.terminate()));
  }

  /** The next thread round robin (started on first use; one that died is replaced). */
  private hasher(): Hasher {
    const i = this.turn++ % Math.max(1, this.threads);
    const existing = this.hashers[i];
    if (existing) return existing;
    const worker = new Worker(WORKER, { eval: true });
    // Never what keeps a process alive.
    worker.unref();
    const h: Hasher = { worker, waiting: new Map() };
    const fail = (e: Error): void => {
      if (this.hashers[i] === h) this.hashers[i] = undefined;
      for (const w of h.waiting.values()) w.fail(e);
      h.waiting.clear();
    };
    worker.on("message", (m: { id: number; out?: Uint8Array; error?: string }) => {
      const w = h.waiting.get(m.id);
      if (!w) return;
      h.waiting.delete(m.id);
      if (m.error !== undefined || !m.out) return w.fail(new Error(`leaf hash thread: ${m.error ?? "no answer"}`));
      const out = Buffer.from(m.out.buffer, m.out.byteOffset, m.out.byteLength);
      w.ok(Array.from({ length: out.length / 32 }, (_, j) => out.subarray(j * 32, (j + 1) * 32)));
    });
    worker.on("error", (e) => fail(e));
    worker.on("exit", (code) => fail(new Error(`leaf hash thread exited with ${code}`)));
    this.hashers[i] = h;
    return h;
  }
}
