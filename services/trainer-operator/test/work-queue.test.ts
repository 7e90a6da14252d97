import { ManualClock } from "@deai/kit/clock";

import { WorkQueue } from "../src/app/work-queue.js";

/** A handler whose passes finish only when the test says so, recording overlap per key. */
function gatedHandler() {
  const calls: string[] = [];
  const gates: { key: string; open: () => void; fail: (e: Error) => void }[] = [];
  const active = new Map<string, number>();
  let maxSameKey = 0;
  let maxTotal = 0;
  const handler = (key: string): Promise<void> => {
    calls.push(key);
    const n = (active.get(key) ?? 0) + 1;
    active.set(key, n);
    maxSameKey = Math.max(maxSameKey, n);
    maxTotal = Math.max(
      maxTotal,
      [...active.values()].reduce((a, b) => a + b, 0),
    );
    return new Promise<void>((resolve, reject) => {
      const done = (): void => void active.set(key, active.get(key)! - 1);
      gates.push({ key, open: () => (done(), resolve()), fail: (e) => (done(), reject(e)) });
    });
  };
  const release = async (key: string, error?: Error): Promise<void> => {
    const i = gates.findIndex((g) => g.key === key);
    if (i < 0) throw new Error(`no pass of ${key} in flight`);
    const [g] = gates.splice(i, 1);
    if (error !== undefined) g!.fail(error);
    else g!.open();
    await new Promise((r) => setImmediate(r));
  };
  return { handler, calls, release, stats: () => ({ maxSameKey, maxTotal, inFlight: gates.map((g) => g.key) }) };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe("WorkQueue", () => {
  it("never handles a key twice at once and coalesces kicks during a pass into one more pass", async () => {
    const h = gatedHandler();
    const q = new WorkQueue(h.handler, new ManualClock(), { concurrency: 4 });
    q.add("job-a");
    await tick();
    for (let i = 0; i < 5; i++) q.add("job-a");
    await tick();
    expect(h.calls).toEqual(["job-a"]);
    await h.release("job-a");
    expect(h.calls).toEqual(["job-a", "job-a"]);
    await h.release("job-a");
    await q.idle();
    expect(h.calls).toHaveLength(2);
    expect(h.stats().maxSameKey).toBe(1);
  });

  it("coalesces kicks of a waiting key and runs different keys side by side up to the concurrency", async () => {
    const h = gatedHandler();
    const q = new WorkQueue(h.handler, new ManualClock(), { concurrency: 2 });
    for (const k of ["a", "b", "c", "c", "c", "a"]) q.add(k);
    await tick();
    expect(h.stats().inFlight).toEqual(["a", "b"]);
    await h.release("b");
    expect(h.stats().inFlight).toEqual(["a", "c"]);
    await h.release("a"); // the second kick of "a" came while it ran: one more pass
    expect(h.stats().inFlight.sort()).toEqual(["a", "c"]);
    await h.release("c");
    await h.release("a");
    await q.idle();
    expect(h.calls.sort()).toEqual(["a", "a", "b", "c"]);
    expect(h.stats().maxTotal).toBe(2);
  });

  it("kicks a key later on the clock, the earliest pending kick winning", async () => {
    const h = gatedHandler();
    const clock = new ManualClock();
    const q = new WorkQueue(h.handler, clock);
    q.addAfter("j", 10_000);
    q.addAfter("j", 3_000);
    q.addAfter("j", 20_000);
    clock.advance(2_999);
    await tick();
    expect(h.calls).toEqual([]);
    clock.advance(1);
    await tick();
    expect(h.calls).toEqual(["j"]);
    await h.release("j");
    clock.advance(60_000);
    await tick();
    expect(h.calls).toEqual(["j"]);
  });

  it("retries a failed pass with doubling backoff and resets it after a success", async () => {
    const h = gatedHandler();
    const clock = new ManualClock();
    const errors: number[] = [];
    const q = new WorkQueue(h.handler, clock, { baseRetryMs: 100, onError: (_k, _e, ms) => errors.push(ms) });
    q.add("j");
    await tick();
    await h.release("j", new Error("conflict"));
    clock.advance(99);
    await tick();
    expect(h.calls).toHaveLength(1);
    clock.advance(1);
    await tick();
    expect(h.calls).toHaveLength(2);
    await h.release("j", new Error("conflict"));
    clock.advance(200);
    await tick();
    expect(h.calls).toHaveLength(3);
    await h.release("j");
    q.add("j");
    await tick();
    await h.release("j", new Error("again"));
    expect(errors).toEqual([100, 200, 100]);
    await q.stop();
  });

  it("stops: no more passes, delayed kicks cancelled", async () => {
    const h = gatedHandler();
    const clock = new ManualClock();
    const q = new WorkQueue(h.handler, clock);
    q.addAfter("j", 1000);
    await q.stop();
    q.add("k");
    clock.advance(5000);
    await tick();
    expect(h.calls).toEqual([]);
  });
});
