import { systemClock, type Clock } from "@deai/kit/clock";

/**
 * Waits until `check` yields a value: woken early by a local event (a listener in `wakers`),
 * and polling every `pollMs` for changes made by another replica. Undefined at the deadline.
 */
export async function waitUntil<T>(
  check: () => Promise<T | undefined>,
  wakers: Set<() => void>,
  timeoutMs: number,
  clock: Clock = systemClock,
  pollMs = 250,
): Promise<T | undefined> {
  const deadline = clock.nowMs() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    const left = deadline - clock.nowMs();
    if (left <= 0) return undefined;
    const woken = new AbortController();
    const wake = (): void => woken.abort();
    wakers.add(wake);
    try {
      await clock.sleep(Math.min(left, pollMs), woken.signal).catch(() => undefined);
    } finally {
      wakers.delete(wake);
    }
  }
}
