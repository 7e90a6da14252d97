// The machine block every benchmark prints and stores: results from a shared or loaded
// machine are only comparable when the machine is written beside them.
import { cpus, freemem, loadavg, totalmem } from "node:os";

import { round } from "./stats.js";

/** What the benchmark ran on; load averages at the start and the end of the run. */
export interface MachineBlock {
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memGiB: number;
  readonly freeMemGiB: number;
  readonly node: string;
  readonly platform: string;
  readonly loadavgStart: readonly number[];
  readonly loadavgEnd: readonly number[];
}

/** The 1, 5 and 15 minute load averages. */
export function loadAverage(): number[] {
  return loadavg();
}

/** The machine block; `loadStart` is `loadAverage()` taken when the run began. */
export function machineBlock(loadStart: readonly number[]): MachineBlock {
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? "unknown",
    memGiB: round(totalmem() / 2 ** 30, 1),
    freeMemGiB: round(freemem() / 2 ** 30, 1),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    loadavgStart: loadStart.map((l) => round(l, 2)),
    loadavgEnd: loadavg().map((l) => round(l, 2)),
  };
}

/** One line for the summary: "on 2 CPUs, node v20…, load 1.2/1.0/0.9 → 1.5/1.1/0.9". */
export function machineLine(m: MachineBlock): string {
  const load = (l: readonly number[]): string => l.map((x) => x.toFixed(1)).join("/");
  return `on ${m.cpus} CPUs (${m.cpuModel}), node ${m.node}, load ${load(m.loadavgStart)} → ${load(m.loadavgEnd)}`;
}
