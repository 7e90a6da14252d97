// Result files: bench/results/<name>.json at the repository root, one per benchmark, the
// latest run (the README and reviews quote them; git history keeps the earlier ones).
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";

/** Writes `result` as bench/results/<name>.json under `repoRoot`; returns the path. */
export function writeResult(repoRoot: string, name: string, result: unknown): string {
  if (!/^[a-z0-9-]+$/.test(name)) throw new Error(`result name ${JSON.stringify(name)} must be lowercase letters, digits and -`);
  const out = resolve(repoRoot, "bench/results", `${name}.json`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 2) + "\n");
  return out;
}

/** A progress logger: `[bench-<name> HH:MM:SS +Ns] message`. */
export function benchLogger(name: string): (message: string) => void {
  const t0 = performance.now();
  return (message) =>
    void process.stdout.write(
      `[bench-${name} ${new Date().toISOString().slice(11, 19)} +${Math.round((performance.now() - t0) / 1000)}s] ${message}\n`,
    );
}

/** An integer from the environment (BENCH_* knobs), `fallback` when unset or empty; throws on anything but a decimal. */
export function envInt(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  if (!/^(0|[1-9][0-9]*)$/.test(v)) throw new Error(`${name} must be a non-negative decimal integer, got ${JSON.stringify(v)}`);
  return Number(v);
}
