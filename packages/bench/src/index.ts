// @deai/bench: what every benchmark in the repository shares (services/*/bench/bench.ts).
// Node-only; no test framework. A benchmark prints the machine, its inputs and a comparison
// measured in the same run, and writes bench/results/<name>.json.
export { loadAverage, machineBlock, machineLine, type MachineBlock } from "./machine.js";
export {
  commandCpuMs,
  cpuSince,
  cpuSnapshot,
  machineCpuMs,
  mainThreadCpuMs,
  processCpu,
  processCpuMs,
  rssSampler,
  startPhase,
  statusMiB,
  type CpuSnapshot,
  type CpuUse,
  type PhaseUse,
  type Pids,
} from "./cpu.js";
export { median, percentile, round, summarize } from "./stats.js";
export { benchLogger, envInt, writeResult } from "./results.js";
export { spawnService, stopService, waitFor, type ServiceProcess, type SpawnOptions } from "./process.js";
