import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import {
  cpuSince,
  cpuSnapshot,
  envInt,
  machineBlock,
  percentile,
  processCpuMs,
  startPhase,
  statusMiB,
  summarize,
  waitFor,
  writeResult,
} from "./index.js";

/** Spends `ms` of this process's CPU time (not wall time: the machine may be shared). */
function burnCpu(ms: number): void {
  const start = process.cpuUsage();
  while (process.cpuUsage(start).user < ms * 1000) {
    /* burn */
  }
}

describe("percentiles", () => {
  it("takes the nearest rank", () => {
    const s = Array.from({ length: 100 }, (_, i) => i + 1);
    expect([percentile(s, 50), percentile(s, 99), percentile(s, 100), percentile(s, 0)]).toEqual([50, 99, 100, 1]);
    expect(percentile([], 50)).toBeNaN();
    expect(summarize([3, 1, 2])).toEqual({ n: 3, min: 1, p50: 2, p99: 3, max: 3 });
  });
});

describe("CPU accounting from /proc", () => {
  it("charges a busy child process its CPU time, and this process none of it", async () => {
    // The child burns ~500 ms of CPU, then stays alive idle so its counters can be read.
    const child = spawn(
      process.execPath,
      ["-e", "const s = process.cpuUsage(); while (process.cpuUsage(s).user < 500000) {} setTimeout(() => {}, 5000)"],
      {
        stdio: "ignore",
      },
    );
    try {
      const before = cpuSnapshot({ child: child.pid, self: process.pid });
      const childMs = (): number => before.processes.child!.user + before.processes.child!.sys;
      await waitFor("the child's CPU time", async () => (processCpuMs(child.pid) - childMs() > 300 ? true : undefined), 20_000, 20);
      const use = cpuSince(before);
      expect(use.ms.child).toBeGreaterThan(300);
      expect(use.ms.self).toBeNaN(); // this process is accounted as `bench`, never twice
      expect(use.ms.bench).toBeLessThan(use.ms.child!);
      expect(use.wallMs).toBeGreaterThan(0);
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("times a phase: wall time, CPU and the peak RSS of the process asked for", () => {
    const phase = startPhase({ self: process.pid }, { rssOf: process.pid });
    burnCpu(150);
    const use = phase.end();
    expect(use.ms).toBeGreaterThanOrEqual(140);
    expect(use.cpu.ms.bench).toBeGreaterThan(100);
    expect(use.rss!.vmHwmMiB).toBeGreaterThan(10);
    expect(startPhase({}).end().rss).toBeUndefined();
  });

  it("reads this process's CPU time and RSS", () => {
    expect(processCpuMs(process.pid)).toBeGreaterThan(0);
    expect(statusMiB(process.pid, "VmRSS")).toBeGreaterThan(10);
    expect(processCpuMs(undefined)).toBeNaN();
  });
});

describe("machine block, results, knobs", () => {
  it("describes the machine and writes bench/results/<name>.json", () => {
    const m = machineBlock([1, 2, 3]);
    expect(m.cpus).toBeGreaterThan(0);
    expect(m.node).toBe(process.version);
    expect(m.loadavgStart).toEqual([1, 2, 3]);
    const root = mkdtempSync(join(tmpdir(), "bench-"));
    const path = writeResult(root, "unit", { ok: true });
    expect(path).toBe(join(root, "bench/results/unit.json"));
    expect(JSON.parse(readFileSync(path, "utf8"))).toEqual({ ok: true });
    expect(() => writeResult(root, "../x", {})).toThrow(/result name/);
  });

  it("parses integer knobs strictly", () => {
    process.env.BENCH_UNIT_KNOB = "12";
    expect(envInt("BENCH_UNIT_KNOB", 1)).toBe(12);
    process.env.BENCH_UNIT_KNOB = "0x10";
    expect(() => envInt("BENCH_UNIT_KNOB", 1)).toThrow(/decimal/);
    delete process.env.BENCH_UNIT_KNOB;
    expect(envInt("BENCH_UNIT_KNOB", 7)).toBe(7);
  });

  it("waits for a probe and times out naming what it waited for", async () => {
    let n = 0;
    expect(await waitFor("n ≥ 3", async () => (++n >= 3 ? n : undefined), 1000, 1)).toBe(3);
    await expect(waitFor("never", async () => undefined, 30, 5)).rejects.toThrow(/waiting for never/);
  });
});
