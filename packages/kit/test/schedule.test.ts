/**
 * The scheduler on a ManualClock: jitter, kick, no overlap, shutdown, persisted cadence and
 * leadership (two schedulers on separate pools) against real Postgres.
 */
import { SpanStatusCode } from "@opentelemetry/api";
import { sql } from "kysely";

import {
  InMemorySpanExporter,
  ManualClock,
  Scheduler,
  createLogger,
  migrate,
  openDatabase,
  startTelemetry,
  type Database,
  type RunContext,
  type Telemetry,
} from "@deai/kit";
import { createTestDatabase, type TestDatabase } from "@deai/testkit";

import { metricPoints, type MetricPoint } from "./metric-points.js";

const spans = new InMemorySpanExporter();
let telemetry: Telemetry;
beforeAll(() => {
  telemetry = startTelemetry({ service: "schedule-test", memoryExporter: spans });
});
afterAll(async () => {
  await telemetry?.shutdown();
});

/** Data points of a metric for one loop. */
async function points(name: string, loop: string): Promise<MetricPoint[]> {
  return (await metricPoints(name)).filter((p) => p.attributes["deai.schedule.loop"] === loop);
}

const logger = createLogger({ service: "schedule-test", level: "silent" });
const T0 = Date.UTC(2026, 0, 1);

/** Waits (real time) until `cond` holds. */
async function eventually(cond: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}
/** Lets the scheduler's promises settle (real time), for checks that nothing happened. */
const settle = (ms = 60): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A run that blocks until released, recording concurrency. */
function gatedRun(): {
  run: (ctx: RunContext) => Promise<void>;
  release: () => void;
  starts: RunContext[];
  ends: number;
  maxConcurrent: number;
} {
  const state = {
    starts: [] as RunContext[],
    ends: 0,
    maxConcurrent: 0,
    active: 0,
    gate: undefined as (() => void) | undefined,
    release: () => undefined as void,
    run: async (ctx: RunContext): Promise<void> => {
      state.starts.push(ctx);
      state.active++;
      state.maxConcurrent = Math.max(state.maxConcurrent, state.active);
      await new Promise<void>((r) => (state.gate = r));
      state.active--;
      state.ends++;
    },
  };
  state.release = () => {
    const g = state.gate;
    state.gate = undefined;
    g?.();
  };
  return state;
}

describe("scheduler without a database", () => {
  it("spaces runs by the interval ± jitter, from the random source", async () => {
    const clock = new ManualClock(T0);
    const randoms = [0, 0.999999, 0.5];
    const s = new Scheduler({ logger, clock, random: () => randoms.shift() ?? 0.5 });
    const at: number[] = [];
    s.register({ name: "jittered", intervalMs: 1000, jitter: 0.5, persist: false, run: async () => void at.push(clock.nowMs() - T0) });
    s.start();
    await eventually(() => at.length === 1);
    expect(at).toEqual([0]);
    // random 0 → interval × (1 - 0.5) = 500 ms.
    clock.advance(499);
    await settle();
    expect(at).toHaveLength(1);
    clock.advance(1);
    await eventually(() => at.length === 2);
    // random ~1 → interval × 1.5 = 1500 ms after the second run.
    clock.advance(1498);
    await settle();
    expect(at).toHaveLength(2);
    clock.advance(2);
    await eventually(() => at.length === 3);
    expect(at).toEqual([0, 500, 2000]);
    await s.stop();
  });

  it("keeps every delay within ±jitter with Math.random", () => {
    const s = new Scheduler({ logger });
    const delays = Array.from({ length: 2000 }, () => s.nextDelay(1000, 0.2));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(800);
    expect(Math.max(...delays)).toBeLessThanOrEqual(1200);
    // Not constant: jitter actually spreads runs.
    expect(new Set(delays).size).toBeGreaterThan(100);
    expect(new Set(Array.from({ length: 10 }, () => s.nextDelay(1000, 0))).size).toBe(1);
  });

  it("runs soon after a kick, and kicks during a run coalesce into one more run, never overlapping", async () => {
    const clock = new ManualClock(T0);
    const s = new Scheduler({ logger, clock });
    const g = gatedRun();
    const loop = s.register({ name: "kicked", intervalMs: 3600_000, persist: false, run: g.run });
    s.start();
    await eventually(() => g.starts.length === 1);
    expect(g.starts[0]?.trigger).toBe("schedule");
    loop.kick();
    loop.kick();
    loop.kick();
    await settle();
    expect(g.starts).toHaveLength(1);
    g.release();
    await eventually(() => g.starts.length === 2);
    expect(g.starts[1]?.trigger).toBe("kick");
    g.release();
    await settle();
    // Three kicks during the first run gave exactly one more run; the clock never moved.
    expect(g.starts).toHaveLength(2);
    expect(g.maxConcurrent).toBe(1);
    loop.kick();
    await eventually(() => g.starts.length === 3);
    g.release();
    await s.stop();
    expect(loop.stats.runs).toBe(3);
    expect(g.maxConcurrent).toBe(1);
  });

  it("counts failures, keeps running after one, and records the error", async () => {
    const clock = new ManualClock(T0);
    const s = new Scheduler({ logger, clock });
    let n = 0;
    const loop = s.register({
      name: "flaky",
      intervalMs: 100,
      jitter: 0,
      persist: false,
      run: async () => {
        if (n++ === 0) throw new Error("first run fails");
      },
    });
    s.start();
    await eventually(() => loop.stats.runs === 1);
    expect(loop.stats).toEqual({ runs: 1, failures: 1, lastError: "first run fails" });
    clock.advance(100);
    await eventually(() => loop.stats.runs === 2);
    expect(loop.stats.failures).toBe(1);
    await s.stop();
  });

  it("makes a span and metrics per run", async () => {
    const clock = new ManualClock(T0);
    const s = new Scheduler({ logger, clock, holder: "me" });
    let n = 0;
    const loop = s.register({
      name: "observed",
      intervalMs: 10_000,
      jitter: 0,
      persist: false,
      run: async () => {
        clock.advance(250); // the run takes 250 ms of clock time
        if (n++ === 1) throw new Error("second run fails");
      },
    });
    s.start();
    await eventually(() => loop.stats.runs === 1);
    loop.kick();
    await eventually(() => loop.stats.runs === 2);
    await s.stop();
    // The exporter may see ended spans a tick later (resource detection is async).
    const mine = () => spans.getFinishedSpans().filter((sp) => sp.name === "schedule observed");
    await eventually(() => mine().length >= 2);
    expect(mine()).toHaveLength(2);
    expect(mine().map((sp) => sp.attributes["deai.schedule.trigger"])).toEqual(["schedule", "kick"]);
    expect(mine()[0]?.attributes["deai.schedule.holder"]).toBe("me");
    expect(mine().map((sp) => sp.status.code)).toEqual([SpanStatusCode.UNSET, SpanStatusCode.ERROR]);
    // Each run is its own trace, not a child of whatever kicked it.
    expect(mine()[0]?.parentSpanContext).toBeUndefined();
    const runs = await points("deai.schedule.runs", "observed");
    expect(Object.fromEntries(runs.map((p) => [p.attributes.outcome, p.value]))).toEqual({ ok: 1, error: 1 });
    expect((await points("deai.schedule.failures", "observed")).map((p) => p.value)).toEqual([1]);
    const [duration] = await points("deai.schedule.duration", "observed");
    expect(duration?.value).toMatchObject({ count: 2, sum: 0.5 });
  });

  it("lets the run in flight finish on stop, and starts none after", async () => {
    const clock = new ManualClock(T0);
    const s = new Scheduler({ logger, clock });
    const g = gatedRun();
    const loop = s.register({ name: "draining", intervalMs: 10, jitter: 0, persist: false, run: g.run });
    s.start();
    await eventually(() => g.starts.length === 1);
    let stopped = false;
    const stopping = s.stop().then((clean) => {
      stopped = true;
      return clean;
    });
    loop.kick();
    clock.advance(1000);
    await settle();
    expect(stopped).toBe(false);
    expect(g.starts[0]?.signal.aborted).toBe(false);
    g.release();
    expect(await stopping).toBe(true);
    expect(g.ends).toBe(1);
    clock.advance(1000);
    await settle();
    expect(g.starts).toHaveLength(1);
  });

  it("aborts the run's signal when the stop deadline passes", async () => {
    const clock = new ManualClock(T0);
    const s = new Scheduler({ logger, clock });
    const g = gatedRun();
    s.register({ name: "stuck", intervalMs: 10, persist: false, run: g.run });
    s.start();
    await eventually(() => g.starts.length === 1);
    const stopping = s.stop(clock.nowMs() + 5000);
    await settle();
    clock.advance(5000);
    expect(await stopping).toBe(false);
    expect(g.starts[0]?.signal.aborted).toBe(true);
    g.release();
  });

  it("rejects bad loop options precisely", () => {
    const s = new Scheduler({ logger });
    const run = async (): Promise<void> => undefined;
    expect(() => s.register({ name: "Bad Name", intervalMs: 1, persist: false, run })).toThrow(/invalid loop name/);
    expect(() => s.register({ name: "zero", intervalMs: 0, persist: false, run })).toThrow(/intervalMs/);
    expect(() => s.register({ name: "jit", intervalMs: 10, jitter: 1, persist: false, run })).toThrow(/jitter/);
    expect(() => s.register({ name: "nodb", intervalMs: 10, run })).toThrow(/need a database/);
    s.register({ name: "once", intervalMs: 10, persist: false, run });
    expect(() => s.register({ name: "once", intervalMs: 10, persist: false, run })).toThrow(/already registered/);
  });
});

describe("scheduler with Postgres", () => {
  let tdb: TestDatabase;
  const opened: Database<unknown>[] = [];
  const open = async (): Promise<Database<unknown>> => {
    const d = openDatabase<unknown>({ url: tdb.url, schema: "sched", poolSize: 3 });
    opened.push(d);
    await migrate(d, {});
    return d;
  };

  beforeAll(async () => {
    tdb = await createTestDatabase("schedule");
  });
  afterAll(async () => {
    for (const d of opened) await d.close();
    await tdb?.drop();
  });

  it("keeps the cadence across a restart: the next run is the last start plus the interval", async () => {
    const d = await open();
    const clock = new ManualClock(T0);
    const at: number[] = [];
    const loopOf = (s: Scheduler): void =>
      void s.register({ name: "cadence", intervalMs: 60_000, jitter: 0, run: async () => void at.push(clock.nowMs() - T0) });
    const first = new Scheduler({ logger, clock, db: d.db });
    loopOf(first);
    first.start();
    await eventually(() => at.length === 1);
    await first.stop();
    const row = await sql<{ last_started: Date; last_finished: Date; last_error: string | null }>`
      select last_started, last_finished, last_error from kit_schedules where name = 'cadence'`.execute(d.db);
    expect(row.rows[0]?.last_started.getTime()).toBe(T0);
    expect(row.rows[0]?.last_error).toBeNull();
    // Restart 10 s later: no run at start, the next one at T0 + 60 s.
    clock.advance(10_000);
    const second = new Scheduler({ logger, clock, db: d.db });
    loopOf(second);
    second.start();
    await settle(150);
    expect(at).toEqual([0]);
    clock.advance(49_999);
    await settle();
    expect(at).toEqual([0]);
    clock.advance(1);
    await eventually(() => at.length === 2);
    expect(at).toEqual([0, 60_000]);
    await second.stop();
  });

  it("records the error of a failed run", async () => {
    const d = await open();
    const s = new Scheduler({ logger, clock: new ManualClock(T0), db: d.db });
    const loop = s.register({
      name: "failing",
      intervalMs: 1000,
      run: async () => {
        throw new Error("disk on fire");
      },
    });
    s.start();
    await eventually(() => loop.stats.runs === 1);
    await s.stop();
    const row = await sql<{ last_error: string }>`select last_error from kit_schedules where name = 'failing'`.execute(d.db);
    expect(row.rows[0]?.last_error).toBe("disk on fire");
  });

  it("with leadership, one of two replicas runs the loop; a clean stop hands over at once", async () => {
    const [da, db] = [await open(), await open()];
    const clock = new ManualClock(T0);
    const ran: string[] = [];
    const replica = (name: string, d: Database<unknown>): Scheduler => {
      const s = new Scheduler({ logger, clock, db: d.db, holder: name, leaseMs: 3000 });
      s.register({ name: "led", intervalMs: 100, jitter: 0, leader: true, run: async () => void ran.push(name) });
      return s;
    };
    const a = replica("a", da);
    const b = replica("b", db);
    a.start();
    await eventually(() => ran.length === 1);
    b.start();
    for (let i = 0; i < 10; i++) {
      clock.advance(100);
      await settle(20);
    }
    expect(new Set(ran)).toEqual(new Set(["a"]));
    expect(a.loop("led")?.leading).toBe(true);
    expect(b.loop("led")?.leading).toBe(false);
    await a.stop();
    // Released: b wins it at its next try (leaseMs / 5), not after the lease expiry.
    const before = ran.length;
    clock.advance(600);
    await eventually(() => ran.length > before && ran.at(-1) === "b");
    expect(ran.slice(before).every((r) => r === "b")).toBe(true);
    await b.stop();
  });

  it("a replica whose lease is taken stops running the loop and aborts its run", async () => {
    const d = await open();
    const clock = new ManualClock(T0);
    const g = gatedRun();
    const s = new Scheduler({ logger, clock, db: d.db, holder: "victim", leaseMs: 3000 });
    const loop = s.register({ name: "stolen", intervalMs: 100, jitter: 0, leader: true, run: g.run });
    s.start();
    await eventually(() => g.starts.length === 1);
    expect(loop.leading).toBe(true);
    // Another replica took the lease (as after an expiry during a partition).
    await sql`update kit_schedules set leader = 'thief', lease_expires = ${new Date(T0 + 3_600_000)} where name = 'stolen'`.execute(d.db);
    clock.advance(1000); // the next renewal (leaseMs / 3) finds the lease gone
    await eventually(() => g.starts[0]?.signal.aborted === true);
    expect(loop.leading).toBe(false);
    expect(String(g.starts[0]?.signal.reason)).toMatch(/lost the lease/);
    g.release();
    // No run starts without the lease, even when kicked.
    loop.kick();
    for (let i = 0; i < 5; i++) {
      clock.advance(500);
      await settle(20);
    }
    expect(g.starts).toHaveLength(1);
    // The thief's lease expires: the victim takes it back and runs again.
    clock.set(T0 + 3_600_001);
    await eventually(() => g.starts.length === 2);
    g.release();
    await s.stop();
  });

  it("a replica that cannot reach Postgres loses the lease by its expiry", async () => {
    const d = openDatabase<unknown>({ url: tdb.url, schema: "sched", poolSize: 1 });
    await migrate(d, {});
    const clock = new ManualClock(T0);
    const g = gatedRun();
    const s = new Scheduler({ logger, clock, db: d.db, holder: "cut-off", leaseMs: 3000 });
    const loop = s.register({ name: "cutoff", intervalMs: 100, jitter: 0, leader: true, persist: false, run: g.run });
    s.start();
    await eventually(() => g.starts.length === 1);
    // The run holds the only connection, so renewals hang: the watchdog must fire at expiry.
    const held = await d.pool.connect();
    try {
      clock.advance(1000);
      await settle();
      expect(loop.leading).toBe(true);
      clock.advance(2001);
      await eventually(() => g.starts[0]?.signal.aborted === true);
      expect(loop.leading).toBe(false);
    } finally {
      held.release();
      g.release();
    }
    await s.stop();
    await d.close();
  });
});
