// Ed25519 checks of appended envelopes, off the event loop. An Ed25519 verify is the largest
// single cost of an append (tens of µs of native code); with batched appends the main thread
// would spend most of its time there. Checks submitted in the same turn of the event loop are
// gathered, and large groups are split across worker threads; small ones (a lone append) are
// verified inline, where the hop to a worker would cost more than it saves.
import { Worker } from "node:worker_threads";

import { verifySignature, type SignatureCheck } from "../domain/envelope.js";

// The worker, as a CommonJS script (eval: no file to resolve, in dist or under ts-jest). It
// receives packed checks, verifies them with its own cached key objects, and answers one
// byte (1 = valid) per check.
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const { createPublicKey, verify } = require("node:crypto");
const keys = new Map();
parentPort.on("message", (m) => {
  const out = new Uint8Array(m.keyids.length);
  const data = new Uint8Array(m.data);
  for (let i = 0; i < m.keyids.length; i++) {
    const keyid = m.keyids[i];
    let key = keys.get(keyid);
    if (key === undefined) {
      key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: keyid }, format: "jwk" });
      if (keys.size >= 10000) keys.clear();
      keys.set(keyid, key);
    }
    const msg = data.subarray(m.offsets[i], m.offsets[i + 1] - 64);
    const sig = data.subarray(m.offsets[i + 1] - 64, m.offsets[i + 1]);
    out[i] = verify(null, msg, key, sig) ? 1 : 0;
  }
  parentPort.postMessage({ id: m.id, ok: out }, [out.buffer]);
});
`;

interface Request {
  readonly checks: readonly SignatureCheck[];
  readonly resolve: (ok: boolean[]) => void;
  readonly reject: (e: unknown) => void;
}

interface Slot {
  readonly worker: Worker;
  readonly pending: Map<number, { resolve: (ok: Uint8Array) => void; reject: (e: unknown) => void }>;
  /** Checks sent and not answered yet. */
  load: number;
}

export interface SignatureVerifierOptions {
  /** Worker threads; 0 verifies everything inline. */
  readonly threads: number;
  /** Gathered checks below this many are verified inline. @default 16 */
  readonly minOffload?: number;
}

export class SignatureVerifier {
  private readonly slots: Slot[] = [];
  private queue: Request[] = [];
  private scheduled = false;
  private nextId = 1;
  private closed = false;
  private readonly minOffload: number;
  /** Ed25519 checks requested so far (what an abuse test bounds; a metric would read it). */
  checked = 0;

  constructor(o: SignatureVerifierOptions) {
    this.minOffload = o.minOffload ?? 16;
    for (let i = 0; i < o.threads; i++) this.slots.push(this.spawn());
  }

  get threads(): number {
    return this.slots.length;
  }

  /** Verifies each check; resolves to one boolean per check, in order. */
  verify(checks: readonly SignatureCheck[]): Promise<boolean[]> {
    if (checks.length === 0) return Promise.resolve([]);
    this.checked += checks.length;
    if (this.slots.length === 0 || this.closed) return Promise.resolve(checks.map(verifySignature));
    return new Promise((resolve, reject) => {
      this.queue.push({ checks, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private spawn(): Slot {
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    worker.unref();
    const slot: Slot = { worker, pending: new Map(), load: 0 };
    worker.on("message", (m: { id: number; ok: Uint8Array }) => {
      const p = slot.pending.get(m.id);
      if (!p) return;
      slot.pending.delete(m.id);
      p.resolve(m.ok);
    });
    const fail = (e: unknown): void => {
      for (const p of slot.pending.values()) p.reject(e);
      slot.pending.clear();
      slot.load = 0;
      // Replace a dead worker, so one crash does not take signature checks down for good.
      const i = this.slots.indexOf(slot);
      if (i >= 0 && !this.closed) this.slots[i] = this.spawn();
    };
    worker.on("error", fail);
    worker.on("exit", (code) => {
      if (!this.closed) fail(new Error(`signature worker exited with code ${code}`));
    });
    return slot;
  }

  private flush(): void {
    this.scheduled = false;
    const requests = this.queue;
    this.queue = [];
    const all = requests.flatMap((r) => r.checks);
    if (all.length < this.minOffload) {
      // Few checks: inline is cheaper than a round trip to a worker.
      for (const r of requests) {
        try {
          r.resolve(r.checks.map(verifySignature));
        } catch (e) {
          r.reject(e);
        }
      }
      return;
    }
    // Split across the workers, each part to the least loaded one.
    const parts = Math.min(this.slots.length, Math.ceil(all.length / this.minOffload));
    const size = Math.ceil(all.length / parts);
    const chunks: Promise<Uint8Array>[] = [];
    for (let start = 0; start < all.length; start += size) chunks.push(this.send(all.slice(start, start + size)));
    Promise.all(chunks).then(
      (results) => {
        let at = 0;
        const flat = results.length === 1 ? results[0]! : Buffer.concat(results);
        for (const r of requests) {
          r.resolve(Array.from(flat.subarray(at, at + r.checks.length), (b) => b === 1));
          at += r.checks.length;
        }
      },
      (e: unknown) => requests.forEach((r) => r.reject(e)),
    );
  }

  private send(checks: readonly SignatureCheck[]): Promise<Uint8Array> {
    const slot = this.slots.reduce((a, b) => (b.load < a.load ? b : a));
    // Pack every message and its signature into one transferable buffer.
    let total = 0;
    for (const c of checks) total += c.message.length + 64;
    const data = new Uint8Array(total);
    const offsets = new Array<number>(checks.length + 1);
    offsets[0] = 0;
    let at = 0;
    checks.forEach((c, i) => {
      data.set(c.message, at);
      at += c.message.length;
      data.set(c.sig, at);
      at += 64;
      offsets[i + 1] = at;
    });
    const id = this.nextId++;
    slot.load += checks.length;
    return new Promise<Uint8Array>((resolve, reject) => {
      slot.pending.set(id, {
        resolve: (ok) => {
          slot.load -= checks.length;
          resolve(ok);
        },
        reject,
      });
      slot.worker.postMessage({ id, keyids: checks.map((c) => c.keyid), offsets, data: data.buffer }, [data.buffer]);
    });
  }
}
