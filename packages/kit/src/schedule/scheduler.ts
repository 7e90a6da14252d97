/**
 * Scheduled work: one runner for every loop a service runs on a schedule (outbox relay,
 * ledger integration, inbox pruning, and later sampling rounds, reservation expiry, epoch
 * settlement, unbonding maturity, veto windows, operator resync).
 *
 * Each loop is named and runs every `intervalMs` (± jitter, so replicas and restarts do not
 * fall into step), or soon after `kick()`. A loop never runs twice at once in a process: a
 * kick during a run asks for one more run right after it. `stop()` lets the runs in flight
 * finish. With `persist`, the last run is recorded in `kit_schedules`, so a restart keeps the
 * cadence (next run = last start + interval) instead of running at once.
 *
 * Leadership (`leader: true`) makes one replica run the loop: a lease row in `kit_schedules`
 * (holder, expiry) that the holder renews every `leaseMs / 3`. A run starts only right
 * after a successful renewal; a replica whose renewal fails, or does not answer before the
 * lease runs out, aborts its run's signal and stops running the loop until it wins the lease
 * back. Followers try to take an expired lease every `leaseMs / 5`, so a dead leader (kill
 * -9) is replaced within `leaseMs` plus one try. A leader that stops cleanly releases the
 * lease at once. Lease times come from the service clock; replicas' clocks are assumed to
 * agree to well within a lease (NTP), which is why leases are seconds, not milliseconds.
 * A run that may last longer than a lease must watch `signal`: the lease is renewed while
 * it runs, but if renewal fails another replica takes over after the expiry.
 */
import { context, metrics, ROOT_CONTEXT, SpanStatusCode, type Attributes, type Counter, type Histogram } from "@opentelemetry/api";
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { sql, type Kysely } from "kysely";

import { AbortedError, DeadlineExceededError } from "../errors.js";
import type { Logger } from "../logger.js";
import { tracer } from "../telemetry.js";
import { systemClock, type Clock } from "../time/clock.js";

export interface RunContext {
  readonly loop: string;
  /** When the run started, on the scheduler's clock. */
  readonly startedAt: Date;
  /** What started it. */
  readonly trigger: "schedule" | "kick";
  /** Aborted when the lease is lost or the stop deadline passes; long runs should check it. */
  readonly signal: AbortSignal;
}

export interface LoopOptions {
  /** Unique per service, e.g. "ledger.integrator"; also the span name and metric attribute. */
  readonly name: string;
  readonly intervalMs: number;
  /** Fraction of the interval each delay varies by, uniformly in ±jitter. @default 0.1 */
  readonly jitter?: number;
  /** One replica runs the loop (lease row in kit_schedules). @default false */
  readonly leader?: boolean;
  /** Record runs in kit_schedules so a restart keeps the cadence. @default true */
  readonly persist?: boolean;
  /** Run once as soon as the loop starts, whatever the persisted cadence says. @default false */
  readonly runOnStart?: boolean;
  /**
   * Each run in a span `schedule <name>` of its own (a root, with its database calls as
   * children). A high-frequency loop that mostly finds nothing to do (the outbox relay) turns
   * it off; what it does still gets spans where it has a parent (a relayed event's producer
   * span continues the trace that queued it). @default true
   */
  readonly traced?: boolean;
  readonly run: (ctx: RunContext) => Promise<void>;
}

export interface SchedulerOptions {
  readonly logger: Logger;
  /** Needed for `persist` and `leader` loops. */
  readonly db?: Kysely<unknown>;
  /** @default systemClock */
  readonly clock?: Clock;
  /** Leadership lease. @default 10000 */
  readonly leaseMs?: number;
  /** This replica's name in lease rows. @default host:pid:random */
  readonly holder?: string;
  /** Source of jitter, in [0, 1). @default Math.random */
  readonly random?: () => number;
}

export interface LoopStats {
  readonly runs: number;
  readonly failures: number;
  readonly lastError: string | undefined;
}

export interface ScheduledLoop {
  readonly name: string;
  /** Runs soon: now if idle (and, with leadership, if this replica leads), else right after the current run. */
  kick(): void;
  /** True while this replica holds the loop's lease (always true without leadership once started). */
  readonly leading: boolean;
  readonly stats: LoopStats;
  /** Stops this loop: no new run; resolves when the run in flight finished and the lease is released. */
  stop(): Promise<void>;
}

interface ScheduleRow {
  last_started: Date | null;
  leader: string | null;
  lease_expires: Date | null;
}

const NAME = /^[a-z0-9][a-z0-9._-]{0,99}$/;

interface Instruments {
  runs: Counter;
  failures: Counter;
  duration: Histogram;
  leadership: Counter;
}

function instruments(): Instruments {
  const meter = metrics.getMeter("@deai/kit");
  return {
    runs: meter.createCounter("deai.schedule.runs", { description: "Runs of a scheduled loop, by outcome" }),
    failures: meter.createCounter("deai.schedule.failures", { description: "Runs of a scheduled loop that threw" }),
    duration: meter.createHistogram("deai.schedule.duration", { description: "Duration of a scheduled run", unit: "s" }),
    leadership: meter.createCounter("deai.schedule.leadership_changes", { description: "Leases won or lost by this replica" }),
  };
}

export class Scheduler {
  readonly clock: Clock;
  readonly holder: string;
  readonly leaseMs: number;
  private readonly loops = new Map<string, Loop>();
  private started = false;
  private stopped = false;
  readonly instruments: Instruments;

  constructor(readonly o: SchedulerOptions) {
    this.clock = o.clock ?? systemClock;
    this.holder = o.holder ?? `${hostname()}:${process.pid}:${randomBytes(4).toString("hex")}`;
    this.leaseMs = o.leaseMs ?? 10_000;
    if (!Number.isInteger(this.leaseMs) || this.leaseMs < 10) throw new RangeError(`leaseMs must be an integer ≥ 10, got ${o.leaseMs}`);
    this.instruments = instruments();
  }

  /** Adds a loop; it starts with `start()`, or at once when the scheduler already runs. */
  register(opts: LoopOptions): ScheduledLoop {
    if (!NAME.test(opts.name)) throw new RangeError(`invalid loop name ${JSON.stringify(opts.name)}`);
    if (this.loops.has(opts.name)) throw new RangeError(`loop ${opts.name} is already registered`);
    if (!Number.isInteger(opts.intervalMs) || opts.intervalMs <= 0)
      throw new RangeError(`loop ${opts.name}: intervalMs must be a positive integer`);
    const jitter = opts.jitter ?? 0.1;
    if (!(jitter >= 0 && jitter < 1)) throw new RangeError(`loop ${opts.name}: jitter must be in [0, 1)`);
    if ((opts.leader || (opts.persist ?? true)) && !this.o.db)
      throw new RangeError(`loop ${opts.name}: leader and persist need a database`);
    if (this.stopped) throw new Error("scheduler stopped");
    const loop = new Loop(this, { ...opts, jitter });
    this.loops.set(opts.name, loop);
    if (this.started) loop.start();
    return loop;
  }

  /** Starts every registered loop. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    for (const l of this.loops.values()) l.start();
  }

  /**
   * Stops every loop: no new runs; waits for the runs in flight and releases leases. Past
   * `deadlineMs` (clock time) the runs' signals are aborted and stop resolves false.
   */
  async stop(deadlineMs?: number): Promise<boolean> {
    this.stopped = true;
    const all = Promise.all([...this.loops.values()].map((l) => l.stop()));
    if (deadlineMs === undefined) {
      await all;
      return true;
    }
    const cancel = new AbortController();
    const timedOut = await Promise.race([
      all.then(() => false),
      this.clock.sleep(Math.max(0, deadlineMs - this.clock.nowMs()), cancel.signal).then(
        () => true,
        () => false,
      ),
    ]);
    cancel.abort();
    if (timedOut) for (const l of this.loops.values()) l.abortRun(new DeadlineExceededError(`shutdown deadline passed during ${l.name}`));
    return !timedOut;
  }

  /** A registered loop by name. */
  loop(name: string): ScheduledLoop | undefined {
    return this.loops.get(name);
  }

  get db(): Kysely<unknown> {
    if (!this.o.db) throw new Error("scheduler has no database");
    return this.o.db;
  }

  get logger(): Logger {
    return this.o.logger;
  }

  nextDelay(intervalMs: number, jitter: number): number {
    const r = (this.o.random ?? Math.random)();
    return Math.max(0, Math.round(intervalMs * (1 + jitter * (2 * r - 1))));
  }
}

class Loop implements ScheduledLoop {
  private nextAt = 0;
  private kicked = false;
  private stopping = false;
  private wake: AbortController | undefined;
  private driver: Promise<void> | undefined;
  private heartbeat: Promise<void> | undefined;
  private runAbort: AbortController | undefined;
  private leaseUntil = 0;
  private loadedCadence = false;
  private runs = 0;
  private failures = 0;
  private lastError: string | undefined;
  private stopHeartbeat: AbortController | undefined;

  constructor(
    private readonly s: Scheduler,
    private readonly o: LoopOptions & { jitter: number },
  ) {}

  get name(): string {
    return this.o.name;
  }

  get leading(): boolean {
    return this.o.leader ? this.leaseUntil > this.s.clock.nowMs() : this.driver !== undefined && !this.stopping;
  }

  get stats(): LoopStats {
    return { runs: this.runs, failures: this.failures, lastError: this.lastError };
  }

  start(): void {
    if (this.driver || this.stopping) return;
    if (this.o.leader) this.heartbeat = this.keepLease();
    this.driver = this.drive().catch((e: unknown) => this.s.logger.error({ err: e, loop: this.name }, "scheduled loop crashed"));
  }

  kick(): void {
    if (this.stopping) return;
    this.kicked = true;
    this.wakeUp();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.wakeUp();
    this.stopHeartbeat?.abort();
    await this.driver;
    await this.heartbeat;
    if (this.o.leader && this.driver) await this.releaseLease();
  }

  abortRun(reason: Error): void {
    this.runAbort?.abort(reason);
  }

  private wakeUp(): void {
    this.wake?.abort();
  }

  /** Sleeps up to `ms`, or until woken by a kick, a won lease or stop. */
  private async nap(ms: number): Promise<void> {
    if (this.stopping) return;
    const wake = new AbortController();
    this.wake = wake;
    await this.s.clock.sleep(Math.max(0, ms), wake.signal).catch(() => undefined);
    if (this.wake === wake) this.wake = undefined;
  }

  private async drive(): Promise<void> {
    if (!this.o.leader) await this.loadCadence();
    if (this.o.runOnStart) this.kicked = true;
    while (!this.stopping) {
      if (this.o.leader && !this.leading) {
        // Followers wait for the heartbeat to win the lease (it wakes us).
        this.loadedCadence = false;
        await this.nap(this.s.leaseMs);
        continue;
      }
      if (this.o.leader && !this.loadedCadence) await this.loadCadence();
      const now = this.s.clock.nowMs();
      if (!this.kicked && now < this.nextAt) {
        await this.nap(this.nextAt - now);
        continue;
      }
      // No run without a lease renewed just now: a stale local view must not start one.
      if (this.o.leader && !(await this.renewLease())) continue;
      if (this.stopping) break;
      const trigger = this.kicked ? "kick" : "schedule";
      this.kicked = false;
      const startedAt = this.s.clock.nowMs();
      this.nextAt = startedAt + this.s.nextDelay(this.o.intervalMs, this.o.jitter);
      await this.runOnce(startedAt, trigger);
    }
  }

  private async runOnce(startedAtMs: number, trigger: "schedule" | "kick"): Promise<void> {
    const abort = new AbortController();
    this.runAbort = abort;
    const startedAt = new Date(startedAtMs);
    const attrs: Attributes = { "deai.schedule.loop": this.name };
    let error: unknown;
    const run = (): Promise<void> => this.o.run({ loop: this.name, startedAt, trigger, signal: abort.signal });
    if (this.o.traced === false)
      await context.with(ROOT_CONTEXT, run).catch((e: unknown) => {
        error = e;
      });
    else
      await tracer().startActiveSpan(
        `schedule ${this.name}`,
        { root: true, attributes: { ...attrs, "deai.schedule.trigger": trigger, "deai.schedule.holder": this.s.holder } },
        async (span) => {
          try {
            await run();
          } catch (e) {
            error = e;
            span.recordException(e as Error);
            span.setStatus({ code: SpanStatusCode.ERROR, message: (e as Error).message });
          } finally {
            span.end();
          }
        },
      );
    this.runAbort = undefined;
    const finishedAtMs = this.s.clock.nowMs();
    this.runs++;
    const m = this.s.instruments;
    m.runs.add(1, { ...attrs, outcome: error === undefined ? "ok" : "error" });
    m.duration.record((finishedAtMs - startedAtMs) / 1000, attrs);
    if (error !== undefined) {
      this.failures++;
      this.lastError = error instanceof Error ? error.message : JSON.stringify(error);
      m.failures.add(1, attrs);
      this.s.logger.warn({ err: error, loop: this.name }, "scheduled run failed; the next one retries");
    }
    if (this.o.persist ?? true)
      await this.persistRun(startedAt, new Date(finishedAtMs), error === undefined ? null : (this.lastError ?? null)).catch((e: unknown) =>
        this.s.logger.warn({ err: e, loop: this.name }, "could not record the run"),
      );
  }

  private async loadCadence(): Promise<void> {
    this.loadedCadence = true;
    if (!(this.o.persist ?? true)) return;
    try {
      const r = await sql<ScheduleRow>`select last_started, leader, lease_expires from kit_schedules where name = ${this.name}`.execute(
        this.s.db,
      );
      const last = r.rows[0]?.last_started;
      this.nextAt = last ? last.getTime() + this.s.nextDelay(this.o.intervalMs, this.o.jitter) : 0;
    } catch (e) {
      this.s.logger.warn({ err: e, loop: this.name }, "could not read the loop's last run; running on the interval from now");
      this.nextAt = this.s.clock.nowMs() + this.s.nextDelay(this.o.intervalMs, this.o.jitter);
    }
  }

  private async persistRun(startedAt: Date, finishedAt: Date, error: string | null): Promise<void> {
    await sql`
      insert into kit_schedules (name, last_started, last_finished, last_error)
      values (${this.name}, ${startedAt}, ${finishedAt}, ${error})
      on conflict (name) do update set last_started = excluded.last_started, last_finished = excluded.last_finished,
        last_error = excluded.last_error`.execute(this.s.db);
  }

  /** Acquires or renews the lease; true when this replica holds it for `leaseMs` from now. */
  private async renewLease(): Promise<boolean> {
    const t0 = this.s.clock.nowMs();
    const until = t0 + this.s.leaseMs;
    const lapse = new AbortController();
    // A renewal that does not answer before the lease runs out is a lost lease.
    const watchdog =
      this.leaseUntil > t0
        ? this.s.clock.sleep(this.leaseUntil - t0, lapse.signal).then(
            () => this.lose("renewal did not answer before the lease ran out"),
            () => undefined,
          )
        : undefined;
    let held: boolean;
    try {
      const r = await sql<{ leader: string }>`
        insert into kit_schedules (name, leader, lease_expires) values (${this.name}, ${this.s.holder}, ${new Date(until)})
        on conflict (name) do update set leader = excluded.leader, lease_expires = excluded.lease_expires
          where kit_schedules.leader = ${this.s.holder} or kit_schedules.leader is null or kit_schedules.lease_expires is null
            or kit_schedules.lease_expires <= ${new Date(t0)}
        returning leader`.execute(this.s.db);
      held = r.rows.length === 1;
    } catch (e) {
      this.s.logger.warn({ err: e, loop: this.name }, "lease renewal failed");
      held = false;
    } finally {
      lapse.abort();
    }
    await watchdog;
    const was = this.leaseUntil > this.s.clock.nowMs();
    if (held && !this.stopping) {
      this.leaseUntil = until;
      if (!was) {
        this.s.instruments.leadership.add(1, { "deai.schedule.loop": this.name, change: "won" });
        this.s.logger.info({ loop: this.name, holder: this.s.holder }, "leading scheduled loop");
        this.wakeUp();
      }
      return true;
    }
    if (was || this.leaseUntil > 0) this.lose(held ? "stopping" : "lease held by another replica");
    return false;
  }

  private lose(why: string): void {
    if (this.leaseUntil === 0) return;
    this.leaseUntil = 0;
    this.s.instruments.leadership.add(1, { "deai.schedule.loop": this.name, change: "lost" });
    this.s.logger.warn({ loop: this.name, why }, "lost the lease of a scheduled loop");
    this.abortRun(new AbortedError(`lost the lease of ${this.name}: ${why}`));
  }

  private async keepLease(): Promise<void> {
    while (!this.stopping) {
      await this.renewLease();
      // stop() may have come while renewing; checked in the same tick the sleep starts.
      if (this.stopping) break;
      const every = this.leading ? this.s.leaseMs / 3 : this.s.leaseMs / 5;
      const stop = new AbortController();
      this.stopHeartbeat = stop;
      await this.s.clock.sleep(every, stop.signal).catch(() => undefined);
    }
  }

  private async releaseLease(): Promise<void> {
    this.leaseUntil = 0;
    await sql`update kit_schedules set leader = null, lease_expires = null where name = ${this.name} and leader = ${this.s.holder}`
      .execute(this.s.db)
      .catch((e: unknown) => this.s.logger.warn({ err: e, loop: this.name }, "could not release the lease; it expires on its own"));
  }
}
