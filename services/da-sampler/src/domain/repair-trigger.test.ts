import { decideRepairs, readWindows, repairedKey, sourceSlots, stripesPerGroup, type TriggerInput } from "./repair-trigger.js";

const t0 = new Date("2026-12-03T12:00:00Z");
const at = (ms: number) => new Date(t0.getTime() + ms);
const slot = (s: number, state: string, lastOutcome: string | null = null, providerId = `p${s}`) => ({
  datasetId: "d",
  slot: s,
  providerId,
  state,
  lastOutcome,
});
const input = (o: Partial<TriggerInput>): TriggerInput => ({
  slots: [],
  watch: [],
  excluded: new Map(),
  busy: new Set(),
  now: t0,
  graceMs: 60_000,
  ...o,
});

it("watches an unavailable slot and repairs it only once the grace period has passed", () => {
  const first = decideRepairs(input({ slots: [slot(1, "unavailable", "missing")] }));
  expect(first.startWatching).toEqual([{ datasetId: "d", slot: 1, providerId: "p1", since: t0 }]);
  expect(first.due.size).toBe(0);
  const watch = first.startWatching;
  expect(decideRepairs(input({ slots: [slot(1, "unavailable", "missing")], watch, now: at(59_999) })).due.size).toBe(0);
  const later = decideRepairs(input({ slots: [slot(1, "unavailable", "timeout")], watch, now: at(60_000) }));
  expect(later.due.get("d")).toEqual([{ slot: 1, providerId: "p1", reason: "unavailable" }]);
  expect(later.startWatching).toEqual([]);
});

it("a short outage (the slot available again within the grace) is forgotten and never repaired", () => {
  const watch = [{ datasetId: "d", slot: 1, providerId: "p1", since: t0 }];
  const d = decideRepairs(input({ slots: [slot(1, "available", "ok")], watch, now: at(10 * 60_000) }));
  expect(d.due.size).toBe(0);
  expect(d.stopWatching).toEqual([{ datasetId: "d", slot: 1 }]);
});

it("a suspect slot (no quorum yet) is neither watched nor repaired", () => {
  const d = decideRepairs(input({ slots: [slot(1, "suspect", "missing")], now: at(10 * 60_000) }));
  expect(d.startWatching).toEqual([]);
  expect(d.due.size).toBe(0);
});

it("repairs invalid shards and jailed or tombstoned providers at once, all of a dataset's slots together", () => {
  const d = decideRepairs(
    input({
      slots: [slot(0, "available", "ok"), slot(1, "unavailable", "invalid"), slot(2, "available", "ok"), slot(3, "available", "ok")],
      excluded: new Map([
        ["p2", "jailed"],
        ["p3", "tombstoned"],
      ]),
    }),
  );
  expect(d.due.get("d")).toEqual([
    { slot: 1, providerId: "p1", reason: "invalid" },
    { slot: 2, providerId: "p2", reason: "jailed" },
    { slot: 3, providerId: "p3", reason: "tombstoned" },
  ]);
});

it("starts nothing for a dataset with a job in progress, and restarts the watch when the provider changed", () => {
  const watch = [{ datasetId: "d", slot: 1, providerId: "p1", since: t0 }];
  const busy = decideRepairs(input({ slots: [slot(1, "unavailable", "missing")], watch, busy: new Set(["d"]), now: at(120_000) }));
  expect(busy.due.size).toBe(0);
  const moved = decideRepairs(input({ slots: [slot(1, "unavailable", "missing", "p9")], watch, now: at(120_000) }));
  expect(moved.due.size).toBe(0);
  expect(moved.stopWatching).toEqual([{ datasetId: "d", slot: 1 }]);
  expect(moved.startWatching).toEqual([{ datasetId: "d", slot: 1, providerId: "p9", since: at(120_000) }]);
});

it("plans reads and parts", () => {
  expect(sourceSlots(6, [1, 4])).toEqual([0, 2, 3, 5]);
  expect(stripesPerGroup(8 << 20, 256 << 10, 100)).toBe(32);
  expect(stripesPerGroup(4096, 256 << 10, 100)).toBe(1);
  expect(stripesPerGroup(8 << 20, 256 << 10, 4_194_304)).toBe(420);
  // Windows of 3 stripes inside groups of 4, from a resumed group boundary: none crosses a group's end.
  expect(readWindows(4, 11, 4, 3)).toEqual([
    { from: 4, to: 7 },
    { from: 7, to: 8 },
    { from: 8, to: 11 },
  ]);
  expect(readWindows(0, 3, 1, 8)).toEqual([
    { from: 0, to: 1 },
    { from: 1, to: 2 },
    { from: 2, to: 3 },
  ]);
  expect(readWindows(8, 8, 4, 2)).toEqual([]);
  expect(repairedKey("x", 3, 2)).toBe("datasets/x/slot-003-v2");
});
