// Order statistics of timing samples.

/** The p-th percentile (nearest rank) of ascending `sorted` samples; NaN when there are none. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** The median (upper middle for an even count) of samples in any order. */
export function median(samples: readonly number[]): number {
  if (samples.length === 0) return NaN;
  return [...samples].sort((a, b) => a - b)[Math.floor(samples.length / 2)]!;
}

/** min, p50, p99 and max of samples in any order. */
export function summarize(samples: readonly number[]): { n: number; min: number; p50: number; p99: number; max: number } {
  const s = [...samples].sort((a, b) => a - b);
  return { n: s.length, min: s[0] ?? NaN, p50: percentile(s, 50), p99: percentile(s, 99), max: s[s.length - 1] ?? NaN };
}

/** `n` rounded to `digits` decimals. */
export function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
