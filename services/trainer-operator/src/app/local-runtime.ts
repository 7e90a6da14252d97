/**
 * The local process runtime: realises a TrainingJob on one machine as processes running the real
 * trainer (services/trainer), the one-machine path and what the tests run. It decides nothing:
 * it observes its processes into `Observed`, calls the pure `reconcile`, and carries out the
 * actions, one pass at a time per job (the WorkQueue); a process exit, a checkpoint line or a
 * spec change kicks a pass.
 *
 *   - one exchange coordinator per job (`python3 -m deai_trainer.coordinator`), which the groups'
 *     outer (DiLoCoX) exchange goes through, so a group can fail and rejoin alone;
 *   - per group a gang of `workersPerGroup` trainer processes, one torch.distributed world on
 *     127.0.0.1 and its own port, with the same environment the Kubernetes pods get (`trainerEnv`:
 *     only the addresses differ) and the job config of `trainerConfig`;
 *   - createGroup spawns the gang (DEAI_RESUME_FROM from the action), deleteGroup / restartGroup /
 *     releaseGang kill it (SIGKILL) and tell the coordinator the group left, checkpointAndStop
 *     sends SIGTERM (the trainer checkpoints at its next round end, leaves and exits 0);
 *   - a worker's exit is observed as succeeded (0) or failed (its code, or 128 + signal number, as
 *     a container runtime reports it); its JSON lines give the group's progress and checkpoints
 *     (a round's checkpoint counts once every stage of the group wrote it).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, writeFileSync, createWriteStream, type WriteStream } from "node:fs";
import { createServer } from "node:net";
import { constants as osConstants } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

import { create, clone } from "@bufbuild/protobuf";

import type { Clock } from "@deai/kit/clock";
import { TrainingJobSchema, TrainingJobStatusSchema, type TrainingJob } from "@deai/contracts/deai/training/v1/training_pb";

import { trainerConfig, trainerEnv } from "../domain/k8s-objects.js";
import {
  desiredGroupCount,
  reconcile,
  type Action,
  type GroupProgress,
  type Observed,
  type ObservedGroup,
  type ObservedWorker,
  type ResumeFrom,
} from "../domain/reconcile.js";
import { WorkQueue } from "./work-queue.js";

export interface LocalRuntimeOptions {
  readonly clock: Clock;
  /** The Python that has torch (Debian's /usr/bin/python3). */
  readonly python: string;
  /** services/trainer (PYTHONPATH and working directory of every process). */
  readonly trainerDir: string;
  /** Job config, logs and JSON lines go here. */
  readonly workDir: string;
  /** Deep-merged into `trainerConfig(job)`: local manifest paths, checkpoint endpoint, test knobs. */
  readonly configOverrides?: Readonly<Record<string, unknown>>;
  /** The coordinator's round quorum / payload timeout. */
  readonly exchangeTimeoutS?: number;
  /** Extra environment for every trainer process. */
  readonly env?: Readonly<Record<string, string>>;
  /** Told about every JSON line of every worker, and about the runtime's own actions. */
  readonly onEvent?: (e: RuntimeEvent) => void;
  /**
   * Keep one warm spare gang (trainer processes with DEAI_STANDBY=1: torch imported, the data read
   * and verified) and give it to the next group that is created, so a restarted or added group
   * skips process start and data loading.
   */
  readonly warmSpare?: boolean;
}

export type RuntimeEvent =
  | {
      readonly kind: "line";
      readonly group: number;
      readonly attempt: number;
      readonly worker: number;
      readonly line: Record<string, unknown>;
    }
  | { readonly kind: "action"; readonly action: Action; readonly atMs: number }
  | { readonly kind: "spare"; readonly group: number; readonly attempt: number; readonly atMs: number }
  | {
      readonly kind: "exit";
      readonly group: number;
      readonly attempt: number;
      readonly worker: number;
      readonly code: number;
      readonly signal: string | null;
      readonly atMs: number;
    };

interface WorkerProc {
  readonly index: number;
  readonly child: ChildProcess;
  exit?: { code: number; signal: string | null };
  node: string;
  /** A spare has loaded torch and the data (its `standby` line); a worker started for a group is ready at once. */
  ready: boolean;
  /** The gang it belongs to (a spare has none until it is given a group). */
  gang?: Gang;
}

interface Gang {
  readonly group: number;
  readonly attempt: number;
  readonly workers: WorkerProc[];
  readonly startedAtMs: number;
  stopping: boolean;
  progress?: { round: number; tokens: number; loss?: number };
  /** round → stage → checkpoint line */
  readonly checkpoints: Map<number, Map<number, { key: string; sha256: string }>>;
  lastCheckpoint?: GroupProgress["checkpoint"];
}

/** 128 + signal number, as a container runtime reports a signalled process. */
export function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const n = signal !== null ? (osConstants.signals as Record<string, number>)[signal] : undefined;
  return 128 + (n ?? 0);
}

function deepMerge(a: Record<string, unknown>, b: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] =
      typeof v === "object" && v !== null && !Array.isArray(v) && typeof cur === "object" && cur !== null && !Array.isArray(cur)
        ? deepMerge(cur as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const a = srv.address();
      srv.close(() => (typeof a === "object" && a !== null ? resolve(a.port) : reject(new Error("no port"))));
    });
  });
}

export class LocalRuntime {
  private job: TrainingJob;
  private readonly gangs = new Map<number, Gang>();
  private readonly queue: WorkQueue;
  private hasFinalizer = false;
  private coordinator?: { child: ChildProcess; url: string };
  private readonly logs: WriteStream[] = [];
  private configPath = "";
  private closed = false;
  private spare?: { workers: WorkerProc[] };
  private spares = 0;
  /** Errors of passes (the queue retries them). */
  readonly errors: unknown[] = [];

  constructor(
    job: TrainingJob,
    private readonly opts: LocalRuntimeOptions,
  ) {
    this.job = clone(TrainingJobSchema, job);
    if (this.job.status === undefined) this.job.status = create(TrainingJobStatusSchema);
    this.queue = new WorkQueue(() => this.pass(), opts.clock, {
      concurrency: 1,
      baseRetryMs: 200,
      onError: (_key, e) => this.errors.push(e),
    });
  }

  /** The job as last reconciled (spec as set, status as last written). */
  get current(): TrainingJob {
    return clone(TrainingJobSchema, this.job);
  }

  /** The coordinator's URL (after start). */
  get exchangeUrl(): string | undefined {
    return this.coordinator?.url;
  }

  /** Start the coordinator and reconcile the job. */
  async start(): Promise<void> {
    mkdirSync(this.opts.workDir, { recursive: true });
    this.configPath = join(this.opts.workDir, "job.json");
    const cfg = deepMerge(trainerConfig(this.job), this.opts.configOverrides ?? {});
    writeFileSync(this.configPath, JSON.stringify(cfg, null, 2));
    await this.startCoordinator();
    this.kick();
  }

  /** Change the spec (scale, suspend, …): a new generation, reconciled at once. */
  update(mutate: (job: TrainingJob) => void): void {
    mutate(this.job);
    this.job.generation += 1n;
    this.kick();
  }

  /** Send a signal to every live worker of a group (tests: SIGKILL a group mid-run). */
  signalGroup(group: number, signal: NodeJS.Signals): void {
    for (const w of this.gangs.get(group)?.workers ?? []) if (w.exit === undefined) w.child.kill(signal);
  }

  /** A warm spare gang is loaded and waiting (with `warmSpare`). */
  get spareReady(): boolean {
    return this.spare !== undefined && this.spare.workers.every((w) => w.ready && w.exit === undefined);
  }

  /** The attempt of the gang that runs a group now, if any. */
  attemptOf(group: number): number | undefined {
    return this.gangs.get(group)?.attempt;
  }

  /** Coordinator state (rounds, membership, events): GET /state. */
  async exchangeState(): Promise<Record<string, unknown>> {
    if (this.coordinator === undefined) throw new Error("not started");
    const r = await fetch(`${this.coordinator.url}/state`);
    return (await r.json()) as Record<string, unknown>;
  }

  /** Kill every process (workers first, then the coordinator) and stop reconciling. */
  async close(): Promise<void> {
    this.closed = true;
    await this.queue.stop();
    const exits: Promise<void>[] = [];
    for (const g of this.gangs.values()) for (const w of g.workers) exits.push(this.killWorker(w));
    for (const w of this.spare?.workers ?? []) exits.push(this.killWorker(w));
    this.spare = undefined;
    await Promise.all(exits);
    this.gangs.clear();
    if (this.coordinator !== undefined) {
      const c = this.coordinator.child;
      const done = new Promise<void>((resolve) =>
        c.exitCode !== null || c.signalCode !== null ? resolve() : c.once("exit", () => resolve()),
      );
      c.kill("SIGKILL");
      await done;
    }
    await Promise.all(this.logs.map((l) => new Promise<void>((resolve) => l.end(() => resolve()))));
  }

  private kick(): void {
    if (!this.closed) this.queue.add(this.job.jobId);
  }

  private async startCoordinator(): Promise<void> {
    const groups = desiredGroupCount(this.job);
    const child = spawn(
      this.opts.python,
      [
        "-m",
        "deai_trainer.coordinator",
        "--port",
        "0",
        "--timeout-s",
        String(this.opts.exchangeTimeoutS ?? 10),
        "--groups",
        String(groups),
      ],
      { cwd: this.opts.trainerDir, env: { ...process.env, PYTHONPATH: this.opts.trainerDir }, stdio: ["ignore", "pipe", "pipe"] },
    );
    const errLog = createWriteStream(join(this.opts.workDir, "coordinator.err"));
    this.logs.push(errLog);
    child.stderr.pipe(errLog);
    const url = await new Promise<string>((resolve, reject) => {
      const rl = createInterface({ input: child.stdout });
      rl.once("line", (line) => {
        try {
          const doc = JSON.parse(line) as { port: number };
          resolve(`http://127.0.0.1:${doc.port}`);
        } catch (e) {
          reject(e instanceof Error ? e : new Error(String(e)));
        }
      });
      child.once("exit", (code) => reject(new Error(`exchange coordinator exited ${code} before listening`)));
    });
    this.coordinator = { child, url };
  }

  private async leave(group: number, why: string): Promise<void> {
    if (this.coordinator === undefined) return;
    const r = await fetch(`${this.coordinator.url}/leave`, { method: "POST", body: JSON.stringify({ group, why }) });
    if (!r.ok) throw new Error(`coordinator /leave: HTTP ${r.status}`);
  }

  // --- observe -------------------------------------------------------------------------------
  private observe(): Observed {
    const groups: ObservedGroup[] = [...this.gangs.values()].map((g) => {
      const workers: ObservedWorker[] = g.workers.map((w) =>
        w.exit === undefined
          ? { index: w.index, state: "running", node: w.node }
          : w.exit.code === 0
            ? { index: w.index, state: "succeeded", node: w.node }
            : { index: w.index, state: "failed", exitCode: w.exit.code, node: w.node },
      );
      const progress: GroupProgress | undefined =
        g.progress !== undefined || g.lastCheckpoint !== undefined
          ? {
              round: g.progress?.round ?? g.lastCheckpoint?.round ?? 0,
              tokens: g.progress?.tokens ?? 0,
              ...(g.progress?.loss !== undefined ? { loss: g.progress.loss } : {}),
              ...(g.lastCheckpoint !== undefined ? { checkpoint: g.lastCheckpoint } : {}),
            }
          : undefined;
      return { group: g.group, attempt: g.attempt, workers, ...(progress !== undefined ? { progress } : {}) };
    });
    return { groups, leases: {}, deleting: false, hasFinalizer: this.hasFinalizer };
  }

  // --- one reconcile pass ----------------------------------------------------------------------
  private async pass(): Promise<void> {
    if (this.closed) return;
    const result = reconcile(this.job, this.observe(), this.opts.clock.now());
    for (const action of result.actions) {
      this.opts.onEvent?.({ kind: "action", action, atMs: this.opts.clock.nowMs() });
      await this.apply(action);
    }
    this.job.status = result.status;
    if (result.requeueAfterMs !== undefined) this.queue.addAfter(this.job.jobId, result.requeueAfterMs);
  }

  private async apply(a: Action): Promise<void> {
    switch (a.kind) {
      case "addFinalizer":
        this.hasFinalizer = true;
        return;
      case "removeFinalizer":
        this.hasFinalizer = false;
        return;
      case "updateStatus":
        this.job.status = a.status;
        return;
      case "createGroup":
        if (this.gangs.has(a.group)) return;
        await this.spawnGang(a.group, a.attempt, a.workers, a.resumeFrom, a.leaseId);
        return;
      case "deleteGroup":
      case "releaseGang":
      case "restartGroup":
        await this.removeGang(a.group, a.kind === "restartGroup" ? `restart: ${a.reason}` : a.reason);
        this.kick(); // observe the job without it (a restarted group is recreated then)
        return;
      case "checkpointAndStop": {
        const g = this.gangs.get(a.group);
        if (g === undefined) return;
        if (g.workers.every((w) => w.exit !== undefined)) {
          // already stopped (it checkpointed and left): nothing runs any more
          this.gangs.delete(a.group);
          this.kick(); // observe the job without it
          return;
        }
        if (!g.stopping) {
          g.stopping = true;
          for (const w of g.workers) if (w.exit === undefined) w.child.kill("SIGTERM");
        }
        return;
      }
    }
  }

  private async removeGang(group: number, why: string): Promise<void> {
    const g = this.gangs.get(group);
    if (g === undefined) return;
    this.gangs.delete(group);
    await Promise.all(g.workers.map((w) => this.killWorker(w)));
    await this.leave(group, why);
  }

  private killWorker(w: WorkerProc): Promise<void> {
    if (w.exit !== undefined) return Promise.resolve();
    return new Promise<void>((resolve) => {
      w.child.once("close", () => resolve());
      w.child.kill("SIGKILL");
    });
  }

  private async spawnGang(group: number, attempt: number, workers: number, resumeFrom?: ResumeFrom, leaseId?: string): Promise<void> {
    if (this.coordinator === undefined) throw new Error("coordinator not started");
    const port = await freePort();
    const at = { masterAddr: "127.0.0.1", masterPort: port, exchangeUrl: this.coordinator.url };
    const envOf = (w: number): Record<string, string> =>
      Object.fromEntries(trainerEnv(this.job, group, w, attempt, at, resumeFrom, leaseId).map((e) => [e.name, e.value]));
    const spare = this.spare;
    if (spare !== undefined && spare.workers.length === workers && spare.workers.every((w) => w.ready && w.exit === undefined)) {
      // a warm spare (torch and the data already loaded) becomes the group: its assignment on stdin
      this.spare = undefined;
      const gang = this.newGang(group, attempt);
      for (const w of spare.workers) {
        this.attach(w, gang);
        w.child.stdin!.end(JSON.stringify(envOf(w.index)) + "\n");
      }
      this.opts.onEvent?.({ kind: "spare", group, attempt, atMs: this.opts.clock.nowMs() });
    } else {
      const gang = this.newGang(group, attempt);
      for (let w = 0; w < workers; w++) this.attach(this.spawnWorker(w, `g${group}-a${attempt}-w${w}`, envOf(w)), gang);
    }
    if (this.opts.warmSpare === true && this.spare === undefined && !this.closed) this.spawnSpare(workers);
  }

  private newGang(group: number, attempt: number): Gang {
    const gang: Gang = { group, attempt, workers: [], startedAtMs: this.opts.clock.nowMs(), stopping: false, checkpoints: new Map() };
    this.gangs.set(group, gang);
    return gang;
  }

  /** A spare gang: trainer processes in standby (DEAI_STANDBY=1) waiting for a group on stdin. */
  private spawnSpare(workers: number): void {
    const n = ++this.spares;
    const workersOfSpare: WorkerProc[] = [];
    for (let w = 0; w < workers; w++) workersOfSpare.push(this.spawnWorker(w, `spare${n}-w${w}`, { DEAI_STANDBY: "1" }, true));
    this.spare = { workers: workersOfSpare };
  }

  private attach(proc: WorkerProc, gang: Gang): void {
    proc.gang = gang;
    gang.workers.push(proc);
    if (proc.exit !== undefined) this.kick();
  }

  private spawnWorker(index: number, name: string, env: Record<string, string>, standby = false): WorkerProc {
    const child = spawn(this.opts.python, ["-m", "deai_trainer.worker", "--config", this.configPath], {
      cwd: this.opts.trainerDir,
      env: { ...process.env, PYTHONPATH: this.opts.trainerDir, OMP_NUM_THREADS: "1", ...this.opts.env, ...env },
      stdio: [standby ? "pipe" : "ignore", "pipe", "pipe"],
    });
    const proc: WorkerProc = { index, child, node: "localhost", ready: !standby };
    const err = createWriteStream(join(this.opts.workDir, `${name}.err`));
    const out = createWriteStream(join(this.opts.workDir, `${name}.jsonl`));
    this.logs.push(err, out);
    child.stderr!.pipe(err);
    const rl = createInterface({ input: child.stdout! });
    rl.on("line", (text) => {
      out.write(text + "\n");
      if (!text.startsWith("{")) return;
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text) as Record<string, unknown>;
      } catch {
        return;
      }
      if (line.event === "standby") proc.ready = true;
      else if (proc.gang !== undefined) this.onLine(proc.gang, index, proc.gang.workers.length, line);
    });
    // "close", not "exit": every line it wrote has been read (its last checkpoint is known)
    child.once("close", (code: number | null, signal: NodeJS.Signals | null) => {
      const c = exitCodeOf(code, signal);
      proc.exit = { code: c, signal };
      const gang = proc.gang;
      if (gang === undefined) {
        // a spare that died before it was needed: make another one on the next use
        if (this.spare?.workers.includes(proc) === true) {
          for (const w of this.spare.workers) if (w.exit === undefined) w.child.kill("SIGKILL");
          this.spare = undefined;
        }
        return;
      }
      this.opts.onEvent?.({
        kind: "exit",
        group: gang.group,
        attempt: gang.attempt,
        worker: index,
        code: c,
        signal,
        atMs: this.opts.clock.nowMs(),
      });
      this.kick();
    });
    return proc;
  }

  private onLine(gang: Gang, worker: number, workers: number, line: Record<string, unknown>): void {
    this.opts.onEvent?.({ kind: "line", group: gang.group, attempt: gang.attempt, worker, line });
    if (line.event === "progress") {
      gang.progress = {
        round: Number(line.round ?? 0),
        tokens: Number(line.tokens ?? 0),
        ...(typeof line.loss === "number" && Number.isFinite(line.loss) ? { loss: line.loss } : {}),
      };
    } else if (line.event === "checkpoint") {
      const round = Number(line.round);
      const byStage = gang.checkpoints.get(round) ?? new Map<number, { key: string; sha256: string }>();
      byStage.set(Number(line.stage ?? worker), { key: String(line.key), sha256: String(line.sha256) });
      gang.checkpoints.set(round, byStage);
      if (byStage.size === workers && (gang.lastCheckpoint === undefined || round >= gang.lastCheckpoint.round)) {
        // every stage wrote it: the round's checkpoint directory is the group's resume point
        const first = byStage.get(0)!;
        gang.lastCheckpoint = { digest: { algorithm: "sha256", hex: first.sha256 }, uri: first.key.replace(/\/[^/]*$/, ""), round };
        this.kick();
      }
    }
  }
}
