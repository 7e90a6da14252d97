/**
 * The clock port. Every service reads time through a `Clock` instead of `Date.now()` /
 * `new Date()`, so tests move time (unbonding delays, evidence age, lease TTLs, sampling
 * deadlines) without sleeping. Pure: importable from domain code via `@deai/kit/clock`.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  nowMs(): number;
  /** The current instant as a Date. */
  now(): Date;
  /**
   * Resolves after `ms` of this clock's time; rejects with the signal's reason when aborted.
   * On a ManualClock it resolves when the clock is advanced past the deadline.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** Wall-clock time. */
export const systemClock: Clock = {
  nowMs: () => Date.now(),
  now: () => new Date(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason as Error);
      const t = setTimeout(
        () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
        Math.max(0, ms),
      );
      const onAbort = (): void => {
        clearTimeout(t);
        reject(signal!.reason as Error);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
    }),
};

interface Sleeper {
  at: number;
  resolve: () => void;
}

/** A clock that only moves when told to: for tests of time-dependent rules. */
export class ManualClock implements Clock {
  private ms: number;
  private sleepers: Sleeper[] = [];

  constructor(start: Date | number = Date.UTC(2026, 0, 1)) {
    this.ms = typeof start === "number" ? start : start.getTime();
  }

  nowMs(): number {
    return this.ms;
  }

  now(): Date {
    return new Date(this.ms);
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason as Error);
      const s: Sleeper = { at: this.ms + Math.max(0, ms), resolve };
      signal?.addEventListener(
        "abort",
        () => {
          this.sleepers = this.sleepers.filter((x) => x !== s);
          reject(signal.reason as Error);
        },
        { once: true },
      );
      this.sleepers.push(s);
      this.wake();
    });
  }

  /** Moves time forward by `ms`, waking every sleeper whose deadline has passed. */
  advance(ms: number): void {
    if (ms < 0) throw new RangeError("a clock never goes back");
    this.ms += ms;
    this.wake();
  }

  /** Sets the time (never backwards). */
  set(at: Date | number): void {
    this.advance((typeof at === "number" ? at : at.getTime()) - this.ms);
  }

  /** Sleepers still waiting. */
  get pending(): number {
    return this.sleepers.length;
  }

  private wake(): void {
    const due = this.sleepers.filter((s) => s.at <= this.ms);
    this.sleepers = this.sleepers.filter((s) => s.at > this.ms);
    for (const s of due) s.resolve();
  }
}
