import { createHash, randomBytes } from "node:crypto";

import { INLINE_HASH_BYTES, LEAF_HASH_WORKER_SOURCE, LeafHashPool, leafHashSync } from "./leaf-hash-pool.js";
import { takeShared } from "./stripe-buffers.js";

function referenceLeaf(shard: Uint8Array): Buffer {
  return createHash("sha256")
    .update(Buffer.concat([Buffer.from([0x00]), shard]))
    .digest();
}

function sharedCopy(bytes: Uint8Array): Buffer {
  const b = takeShared(bytes.length);
  b.set(bytes);
  return b;
}

const messagePorts = (): number => process.getActiveResourcesInfo().filter((r) => r === "MessagePort").length;

describe("LeafHashPool", () => {
  const pools: LeafHashPool[] = [];
  const newPool = (workers: number, workerSource?: string): LeafHashPool => {
    const pool = new LeafHashPool(workerSource === undefined ? { workers } : { workers, workerSource });
    pools.push(pool);
    return pool;
  };
  afterAll(() => Promise.all(pools.map((p) => p.close())));

  it("matches SHA-256(0x00 ‖ shard) for shared, plain, empty and small shards, in order", async () => {
    const pool = newPool(2);
    const shards = [
      randomBytes(INLINE_HASH_BYTES + 1),
      sharedCopy(randomBytes(200 * 1024)),
      randomBytes(0),
      randomBytes(1),
      sharedCopy(randomBytes(64 * 1024 + 3)),
    ];
    const batches = await Promise.all([pool.hash(shards), pool.hash(shards.slice(1, 2)), pool.hash(shards.slice(2, 4))]);
    expect(batches.flat().map((l) => Buffer.from(l).toString("hex"))).toEqual(
      [...shards, shards[1]!, shards[2]!, shards[3]!].map((s) => referenceLeaf(s).toString("hex")),
    );
    expect(pool.running).toBeGreaterThanOrEqual(1);
    expect(leafHashSync(shards[0]!)).toEqual(new Uint8Array(referenceLeaf(shards[0]!)));
  });

  it("spreads batches over its workers without mixing results up", async () => {
    const pool = newPool(3);
    const shards = Array.from({ length: 40 }, (_, i) => sharedCopy(randomBytes(32 * 1024 + i * 8)));
    const leaves = await Promise.all(shards.map((s, i) => pool.hash(i % 2 ? [s] : [s, shards[(i + 1) % 40]!])));
    leaves.forEach((l, i) => {
      expect(Buffer.from(l[0]!).equals(referenceLeaf(shards[i]!))).toBe(true);
      if (i % 2 === 0) expect(Buffer.from(l[1]!).equals(referenceLeaf(shards[(i + 1) % 40]!))).toBe(true);
    });
    expect(pool.running).toBe(3);
  });

  it("hashes staged stripes: the later shards once they are ready, split over idle workers or not", async () => {
    const pool = newPool(2);
    const stripe = (): [Buffer[], Buffer[]] => [
      Array.from({ length: 5 }, () => sharedCopy(randomBytes(48 * 1024))),
      Array.from({ length: 3 }, () => sharedCopy(Buffer.alloc(48 * 1024))),
    ];
    const runs = Array.from({ length: 7 }, async (_, i) => {
      const [first, later] = stripe();
      // `later` is written only after the call, as parity is: the workers must wait for `ready`.
      const ready = new Promise<void>((resolve) =>
        setTimeout(() => {
          for (const s of later) s.set(randomBytes(s.length));
          resolve();
        }, 5 * i),
      );
      const leaves = await pool.hashStaged(first, later, ready);
      expect(leaves.map((l) => Buffer.from(l).toString("hex"))).toEqual([...first, ...later].map((s) => referenceLeaf(s).toString("hex")));
    });
    await Promise.all(runs);
    // A lone stripe on an idle pool is split over both workers.
    const [first, later] = stripe();
    for (const s of later) s.set(randomBytes(s.length));
    const leaves = await pool.hashStaged(first, later, Promise.resolve());
    expect(leaves.map((l) => Buffer.from(l).toString("hex"))).toEqual([...first, ...later].map((s) => referenceLeaf(s).toString("hex")));
  });

  it("rejects a staged stripe whose later shards never come, and carries on", async () => {
    const pool = newPool(2);
    const first = [sharedCopy(randomBytes(64 * 1024))];
    const later = [sharedCopy(randomBytes(64 * 1024))];
    await expect(pool.hashStaged(first, later, Promise.reject(new Error("no parity")))).rejects.toThrow("cancelled");
    const small = [randomBytes(10)];
    await expect(pool.hashStaged(small, small, Promise.reject(new Error("no parity")))).rejects.toThrow("no parity");
    const leaves = await pool.hashStaged(first, later, Promise.resolve());
    expect(Buffer.from(leaves[1]!).equals(referenceLeaf(later[0]!))).toBe(true);
    expect(() => pool.hashStaged([randomBytes(64 * 1024)], later, Promise.resolve())).toThrow("shared memory");
  });

  it("holds the process open only while a batch is pending", async () => {
    const pool = newPool(1);
    const idle = messagePorts();
    const pending = pool.hash([sharedCopy(randomBytes(1024 * 1024))]);
    expect(messagePorts()).toBe(idle + 1);
    await pending;
    expect(messagePorts()).toBe(idle);
  });

  it("rejects the batches of a worker that crashes instead of hanging", async () => {
    const pool = newPool(1, `require("node:worker_threads").parentPort.on("message", () => { throw new Error("boom"); });`);
    const shard = sharedCopy(randomBytes(64 * 1024));
    await expect(Promise.all([pool.hash([shard]), pool.hash([shard]), pool.hash([shard])])).rejects.toThrow(
      "a leaf-hash worker crashed: boom",
    );
    // Later batches (here queued behind the crash) reject too rather than wait forever.
    const results = await Promise.allSettled([pool.hash([shard]), pool.hash([shard]), pool.hash([shard])]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected", "rejected"]);
  });

  it("replaces a worker that exits, rejecting only what it held", async () => {
    // Exits when it sees a shard starting with 0xff, hashes normally otherwise.
    const source = `require("node:worker_threads").parentPort.on("message", (job) => { if (job.shards[0][0] === 0xff) process.exit(3); });\n${LEAF_HASH_WORKER_SOURCE}`;
    const pool = newPool(1, source);
    const good = sharedCopy(randomBytes(64 * 1024));
    good[0] = 0;
    const poison = sharedCopy(randomBytes(64 * 1024));
    poison[0] = 0xff;
    const [before, bad] = await Promise.allSettled([pool.hash([good]), pool.hash([poison])]);
    expect(before.status).toBe("fulfilled");
    expect(bad).toMatchObject({ status: "rejected", reason: { message: expect.stringContaining("exited (code 3)") } });
    const after = await pool.hash([good]);
    expect(Buffer.from(after[0]!).equals(referenceLeaf(good))).toBe(true);
  });

  it("rejects pending batches on close and starts again afterwards", async () => {
    const pool = newPool(1);
    const shard = sharedCopy(randomBytes(2 * 1024 * 1024));
    const pending = Promise.allSettled([pool.hash([shard]), pool.hash([shard]), pool.hash([shard])]);
    await pool.close();
    expect(pool.running).toBe(0);
    expect((await pending).map((r) => r.status)).toContain("rejected");
    expect(Buffer.from((await pool.hash([shard]))[0]!).equals(referenceLeaf(shard))).toBe(true);
  });
});
