// CPU and memory accounting per process from /proc (Linux; NaN elsewhere), as pidusage does:
// utime + stime of /proc/<pid>/stat, for the service under test and its helpers (S3 servers,
// the ledger, Postgres), the bench process itself, and the machine as a whole. On a shared
// machine CPU time per unit of work is steadier than throughput.
import { readdirSync, readFileSync } from "node:fs";

import { round } from "./stats.js";

// USER_HZ: the unit of /proc/<pid>/stat times (100 on every Linux this runs on).
const TICK_MS = 1000 / 100;

/** User and system CPU time (ms) a process, or a thread ("<pid>/task/<tid>"), has used so far. */
export function processCpu(pid: number | string | undefined): { user: number; sys: number } {
  if (!pid) return { user: NaN, sys: NaN };
  try {
    // The command name (field 2) may hold spaces: fields are counted after its ") ".
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return { user: Number(fields[11]) * TICK_MS, sys: Number(fields[12]) * TICK_MS };
  } catch {
    return { user: NaN, sys: NaN };
  }
}

/** CPU time (user + system, ms) a process or thread has used so far. */
export function processCpuMs(pid: number | string | undefined): number {
  const c = processCpu(pid);
  return c.user + c.sys;
}

/** CPU time (ms) of a process's main thread (its first task: the event loop of a Node process). */
export function mainThreadCpuMs(pid: number | undefined): number {
  return pid ? processCpuMs(`${pid}/task/${pid}`) : NaN;
}

/** CPU time (ms) of every process whose command is `comm` (e.g. every Postgres server process). */
export function commandCpuMs(comm: string): number {
  try {
    let total = 0;
    for (const pid of readdirSync("/proc")) {
      if (!/^[0-9]+$/.test(pid)) continue;
      try {
        if (readFileSync(`/proc/${pid}/comm`, "utf8").trim() !== comm) continue;
        total += processCpuMs(pid) || 0;
      } catch {
        /* exited meanwhile */
      }
    }
    return total;
  } catch {
    return NaN;
  }
}

/** Machine-wide busy and steal CPU time (ms, all cores) from /proc/stat. */
export function machineCpuMs(): { busy: number; steal: number } {
  try {
    const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal
    return { busy: (f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!) * TICK_MS, steal: f[7]! * TICK_MS };
  } catch {
    return { busy: NaN, steal: NaN };
  }
}

/** A /proc/<pid>/status size field in MiB (VmRSS: resident now, VmHWM: peak resident). */
export function statusMiB(pid: number | undefined, field: "VmRSS" | "VmHWM"): number {
  if (!pid) return NaN;
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Samples a process's VmRSS every `everyMs` (the peak seen), to report beside its VmHWM. */
export function rssSampler(pid: number | undefined, everyMs = 100): { stop(): { sampledPeakMiB: number; vmHwmMiB: number } } {
  let peak = 0;
  const sample = (): void => {
    const r = statusMiB(pid, "VmRSS");
    if (r > peak) peak = r;
  };
  const timer = setInterval(sample, everyMs);
  sample();
  return {
    stop: () => {
      clearInterval(timer);
      sample();
      return { sampledPeakMiB: round(peak, 1), vmHwmMiB: round(statusMiB(pid, "VmHWM"), 1) };
    },
  };
}

/** Processes to account for, by name; a pid of this very process counts as NaN (it is in `bench`). */
export type Pids = Readonly<Record<string, number | undefined>>;

/** A reading of every counter, to subtract from a later one. */
export interface CpuSnapshot {
  readonly at: number;
  readonly pids: Pids;
  readonly processes: Readonly<Record<string, { user: number; sys: number; main: number }>>;
  readonly postgres: number;
  readonly bench: NodeJS.CpuUsage;
  readonly machine: { busy: number; steal: number };
}

/** CPU used over a phase. */
export interface CpuUse {
  /** CPU ms per named process, plus every Postgres process, this bench process, the rest of the machine and steal. */
  readonly ms: Readonly<Record<string, number>> & {
    readonly postgres: number;
    readonly bench: number;
    readonly otherProcesses: number;
    readonly steal: number;
  };
  /** Per named process: its main (event-loop) thread's CPU ms and the share of the phase's wall time it was busy. */
  readonly mainThread: Readonly<Record<string, { ms: number; busy: number }>>;
  /** Per named process: the share of its CPU time spent in the kernel (sockets, page faults). */
  readonly systemShare: Readonly<Record<string, number>>;
  /** Average cores busy over the phase, the whole machine. */
  readonly machineCores: number;
  readonly wallMs: number;
}

/** Reads every counter now. */
export function cpuSnapshot(pids: Pids): CpuSnapshot {
  const processes: Record<string, { user: number; sys: number; main: number }> = {};
  for (const [name, pid] of Object.entries(pids)) {
    const own = pid === process.pid;
    const c = own ? { user: NaN, sys: NaN } : processCpu(pid);
    processes[name] = { ...c, main: own ? NaN : mainThreadCpuMs(pid) };
  }
  return {
    at: performance.now(),
    pids,
    processes,
    postgres: commandCpuMs("postgres"),
    bench: process.cpuUsage(),
    machine: machineCpuMs(),
  };
}

/** The CPU used since snapshot `a`. */
export function cpuSince(a: CpuSnapshot): CpuUse {
  const b = cpuSnapshot(a.pids);
  const wallMs = b.at - a.at;
  const bench = process.cpuUsage(a.bench);
  const named: Record<string, number> = {};
  const mainThread: Record<string, { ms: number; busy: number }> = {};
  const systemShare: Record<string, number> = {};
  for (const name of Object.keys(a.pids)) {
    const x = a.processes[name]!;
    const y = b.processes[name]!;
    const total = y.user + y.sys - (x.user + x.sys);
    named[name] = round(total, 0);
    mainThread[name] = { ms: round(y.main - x.main, 0), busy: round((y.main - x.main) / wallMs, 2) };
    systemShare[name] = round((y.sys - x.sys) / total, 2);
  }
  const postgres = round(b.postgres - a.postgres, 0);
  const benchMs = round((bench.user + bench.system) / 1000, 0);
  const steal = round(b.machine.steal - a.machine.steal, 0);
  const machine = b.machine.busy - a.machine.busy;
  const ours = [...Object.values(named), postgres, benchMs].reduce((s, x) => s + (Number.isFinite(x) ? x : 0), 0);
  return {
    ms: { ...named, postgres, bench: benchMs, otherProcesses: round(Math.max(0, machine - steal - ours), 0), steal },
    mainThread,
    systemShare,
    machineCores: round(machine / wallMs, 2),
    wallMs: round(wallMs, 1),
  };
}

/** What a timed phase used: wall time, CPU per process and, when asked, the peak RSS of one process. */
export interface PhaseUse {
  readonly ms: number;
  readonly cpu: CpuUse;
  readonly rss?: { sampledPeakMiB: number; vmHwmMiB: number };
}

/**
 * Starts timing a phase: wall clock, CPU of `pids` (and Postgres, this process, the machine),
 * and, with `rssOf`, that process's resident memory. `end()` reads them all at once.
 */
export function startPhase(pids: Pids, opts: { rssOf?: number } = {}): { readonly t0: number; end(): PhaseUse } {
  const rss = opts.rssOf !== undefined ? rssSampler(opts.rssOf) : undefined;
  const cpu0 = cpuSnapshot(pids);
  const t0 = performance.now();
  return {
    t0,
    end: () => {
      const ms = performance.now() - t0;
      const cpu = cpuSince(cpu0);
      return { ms, cpu, ...(rss ? { rss: rss.stop() } : {}) };
    },
  };
}
