/**
 * Waits until `check` yields a value: woken early by a local event (a listener in `wakers`),
 * and polling every `pollMs` for changes made by another replica. Undefined at the deadline.
 */
export async function waitUntil<T>(
  check: () => Promise<T | undefined>,
  wakers: Set<() => void>,
  timeoutMs: number,
  pollMs = 250,
): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    const left = deadline - Date.now();
    if (left <= 0) return undefined;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        wakers.delete(done);
        resolve();
      };
      const t = setTimeout(done, Math.min(left, pollMs));
      wakers.add(done);
    });
  }
}
