/**
 * One work queue for every TrainingJob (client-go's workqueue semantics): a key is never
 * handled by two workers at once, repeated kicks while it waits coalesce into one pass, a kick
 * while it is being handled runs exactly one more pass after the current one, and a failed pass
 * is retried with exponential backoff (reset by a success). Different keys run concurrently,
 * up to `concurrency`.
 */
import type { Clock } from "@deai/kit/clock";

export interface WorkQueueOptions {
  readonly concurrency?: number;
  /** First retry delay after a failed pass; doubles per consecutive failure. */
  readonly baseRetryMs?: number;
  readonly maxRetryMs?: number;
  /** Told about a failed pass (the key is retried). */
  readonly onError?: (key: string, error: unknown, retryInMs: number) => void;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly active = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; abort: AbortController }>();
  private readonly idleWaiters: (() => void)[] = [];
  private running = 0;
  private stopped = false;
  private readonly concurrency: number;
  private readonly baseRetryMs: number;
  private readonly maxRetryMs: number;

  constructor(
    private readonly handler: (key: string) => Promise<void>,
    private readonly clock: Clock,
    private readonly options: WorkQueueOptions = {},
  ) {
    this.concurrency = Math.max(1, options.concurrency ?? 2);
    this.baseRetryMs = options.baseRetryMs ?? 500;
    this.maxRetryMs = options.maxRetryMs ?? 60_000;
  }

  /** Kick a key: it is handled once more, soon. */
  add(key: string): void {
    if (this.stopped) return;
    if (this.active.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
    this.pump();
  }

  /** Kick a key after `ms` (of the clock's time); an earlier pending kick wins over a later one. */
  addAfter(key: string, ms: number): void {
    if (this.stopped) return;
    if (ms <= 0) return this.add(key);
    const at = this.clock.nowMs() + ms;
    const pending = this.timers.get(key);
    if (pending !== undefined && pending.at <= at) return;
    pending?.abort.abort();
    const abort = new AbortController();
    this.timers.set(key, { at, abort });
    this.clock.sleep(ms, abort.signal).then(
      () => {
        if (this.timers.get(key)?.abort === abort) this.timers.delete(key);
        this.add(key);
      },
      () => undefined,
    );
  }

  /** Keys waiting or being handled (not counting delayed kicks). */
  get length(): number {
    return this.queue.length + this.running;
  }

  /** Resolves when nothing is queued or being handled. */
  idle(): Promise<void> {
    if (this.queue.length === 0 && this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Accept no more kicks, cancel delayed ones, and wait for passes in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers.values()) t.abort.abort();
    this.timers.clear();
    this.queue.length = 0;
    this.queued.clear();
    this.dirty.clear();
    await this.idle();
  }

  private pump(): void {
    while (this.running < this.concurrency && this.queue.length > 0) {
      const key = this.queue.shift()!;
      this.queued.delete(key);
      this.active.add(key);
      this.running++;
      void this.run(key);
    }
    if (this.queue.length === 0 && this.running === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  private async run(key: string): Promise<void> {
    let retryIn: number | undefined;
    try {
      await this.handler(key);
      this.failures.delete(key);
    } catch (e) {
      const n = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, n);
      retryIn = Math.min(this.maxRetryMs, this.baseRetryMs * 2 ** (n - 1));
      this.options.onError?.(key, e, retryIn);
    } finally {
      this.active.delete(key);
      this.running--;
      const again = this.dirty.delete(key);
      if (again) this.add(key);
      else if (retryIn !== undefined) this.addAfter(key, retryIn);
      this.pump();
    }
  }
}
