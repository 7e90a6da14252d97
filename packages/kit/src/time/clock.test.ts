import { ManualClock, systemClock } from "./clock.js";

describe("ManualClock", () => {
  it("moves only when advanced and wakes sleepers whose deadline passed", async () => {
    const clock = new ManualClock(1_000);
    expect(clock.nowMs()).toBe(1_000);
    const woke: number[] = [];
    const a = clock.sleep(100).then(() => woke.push(100));
    const b = clock.sleep(500).then(() => woke.push(500));
    clock.advance(99);
    await Promise.resolve();
    expect(woke).toEqual([]);
    clock.advance(1);
    await a;
    expect(woke).toEqual([100]);
    expect(clock.pending).toBe(1);
    clock.advance(400);
    await b;
    expect(woke).toEqual([100, 500]);
    expect(clock.now().getTime()).toBe(1_500);
  });

  it("refuses to go back and rejects aborted sleeps", async () => {
    const clock = new ManualClock();
    expect(() => clock.advance(-1)).toThrow(RangeError);
    const ac = new AbortController();
    const p = clock.sleep(1_000, ac.signal);
    ac.abort(new Error("stop"));
    await expect(p).rejects.toThrow("stop");
    expect(clock.pending).toBe(0);
  });
});

describe("systemClock", () => {
  it("reads wall time and sleeps", async () => {
    const before = Date.now();
    await systemClock.sleep(5);
    expect(systemClock.nowMs()).toBeGreaterThanOrEqual(before + 4);
    const ac = new AbortController();
    const p = systemClock.sleep(10_000, ac.signal);
    ac.abort(new Error("gone"));
    await expect(p).rejects.toThrow("gone");
  });
});
