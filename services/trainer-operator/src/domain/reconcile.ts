/**
 * The reconcile rule of a TrainingJob: a pure function from (desired job, observed groups and
 * leases, now) to the actions that move the world towards the job and the status to write. Both
 * runtimes (Kubernetes: pods per group; local: processes) observe into `Observed` and carry out
 * `Action`s; neither decides anything.
 *
 * Rules (Kubeflow Trainer v2 / JobSet where they fit):
 *   - A group is a gang: all `workersPerGroup` workers or none. A gang not all running within
 *     `gang.scheduleTimeoutSeconds` of its creation is released (every worker deleted) and
 *     counted as a restart, so a job that can never be scheduled ends at its restart budget.
 *   - A worker exit is matched against `failurePolicy.rules` (first match wins); without a
 *     matching rule, exit 2 (configuration error) and 3 (data integrity error: bad shard, leaf
 *     table, digest) fail the job at once (no retry can fix them) and any other exit restarts.
 *   - Restarts are counted in status (`status.restarts`, all groups; `groups[].restarts`), never
 *     derived from children: deleting pods or whole groups does not reset the budget
 *     (kubeflow/trainer#3779). A gang is labelled with the group's restart count when it is
 *     created (`attempt`), so a failure seen again in an already-replaced gang is not counted
 *     twice.
 *   - RestartGroup restarts only the failed group from its last checkpoint; RecreateAll
 *     restarts every group (one restart counted).
 *   - A paused lease makes its group checkpoint and stop; `spec.suspend` does it for every
 *     group. A closed or unknown lease leaves its group Pending.
 *   - Groups beyond `groups.count` are checkpointed and stopped (scale down); missing ones are
 *     created from the latest checkpoint (scale up).
 *   - Deletion: every group checkpoints and stops, then the finalizer is removed.
 */
import { create, equals } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";

import { DigestSchema } from "@deai/contracts/deai/common/v1/common_pb";
import {
  ConditionStatus,
  ConditionSchema,
  FailureAction,
  GroupPhase,
  GroupStatusSchema,
  RestartStrategy,
  TrainingJobPhase,
  TrainingJobStatusSchema,
  type Condition,
  type GroupStatus,
  type TrainingJob,
  type TrainingJobStatus,
} from "@deai/contracts/deai/training/v1/training_pb";

/** The operator's defaults where the spec says 0 / unset. */
export const DEFAULT_GANG_TIMEOUT_S = 300;
export const DEFAULT_MAX_RESTARTS = 3;
/** Exits of services/trainer that no retry can fix: 2 configuration error, 3 data integrity error. */
export const NON_RETRYABLE_EXITS: Readonly<Record<number, string>> = { 2: "ConfigurationError", 3: "DataIntegrityError" };

export type WorkerState = "pending" | "running" | "succeeded" | "failed";

/** One worker (pod / process) of a group as the runtime sees it. */
export interface ObservedWorker {
  readonly index: number;
  readonly state: WorkerState;
  /** Exit code of a failed worker (the trainer container's). */
  readonly exitCode?: number;
  /** Node (Kubernetes) or host where it runs. */
  readonly node?: string;
}

/** Progress a group's workers reported (the trainer's JSON lines: `progress`, `checkpoint`). */
export interface GroupProgress {
  readonly round: number;
  /** Tokens, all groups (the trainer reports the job-wide count). */
  readonly tokens: number;
  readonly loss?: number;
  readonly checkpoint?: {
    readonly digest: { readonly algorithm: string; readonly hex: string };
    readonly uri: string;
    readonly round: number;
  };
}

/** One group's gang as observed. */
export interface ObservedGroup {
  readonly group: number;
  /** The group's restart count when this gang was created (a label on its pods). */
  readonly attempt: number;
  readonly workers: readonly ObservedWorker[];
  readonly progress?: GroupProgress;
}

export type LeaseState = "active" | "paused" | "closed";

export interface Observed {
  readonly groups: readonly ObservedGroup[];
  /** Lease id → state (from the marketplace). A lease missing here is not usable. */
  readonly leases: Readonly<Record<string, { readonly state: LeaseState; readonly provider?: string }>>;
  /** metadata.deletionTimestamp is set. */
  readonly deleting: boolean;
  /** The operator's finalizer is on the object. */
  readonly hasFinalizer: boolean;
}

export interface ResumeFrom {
  readonly digest: { readonly algorithm: string; readonly hex: string };
  readonly uri: string;
}

export type StopReason = "LeasePaused" | "Suspended" | "ScaledDown" | "Deleting" | "JobFailed";

export type Action =
  | { readonly kind: "addFinalizer" }
  | { readonly kind: "removeFinalizer" }
  /** Create the group's gang: `workers` workers at once, labelled with `attempt`. */
  | {
      readonly kind: "createGroup";
      readonly group: number;
      readonly attempt: number;
      readonly workers: number;
      readonly leaseId?: string;
      /** Resume from this checkpoint (the group's last, else the job's). */
      readonly resumeFrom?: ResumeFrom;
      /** No checkpoint known: resume from the latest under checkpoints.uriPrefix if any (checkpoints.resume). */
      readonly resumeLatest?: boolean;
    }
  /** Delete the group's workers now (failed, stale or finished gang). */
  | { readonly kind: "deleteGroup"; readonly group: number; readonly reason: string }
  /** Delete a failed group; it is recreated from `resumeFrom` on a following pass. */
  | {
      readonly kind: "restartGroup";
      readonly group: number;
      readonly attempt: number;
      readonly reason: string;
      readonly resumeFrom?: ResumeFrom;
    }
  /** All-or-nothing: the gang did not come up in time, release every worker it holds. */
  | { readonly kind: "releaseGang"; readonly group: number; readonly reason: string }
  /** Ask the group to write a checkpoint and exit (SIGTERM to the trainer), then delete it. */
  | { readonly kind: "checkpointAndStop"; readonly group: number; readonly reason: StopReason }
  | { readonly kind: "updateStatus"; readonly status: TrainingJobStatus };

export interface ReconcileResult {
  readonly actions: readonly Action[];
  /** The status after this pass (also in the updateStatus action when it changed). */
  readonly status: TrainingJobStatus;
  /** Reconcile again after this long even without an event (gang deadlines). */
  readonly requeueAfterMs?: number;
}

const TERMINAL = new Set([TrainingJobPhase.SUCCEEDED, TrainingJobPhase.FAILED, TrainingJobPhase.CANCELLED]);

/** Groups wanted: spec.groups.count, else the deprecated diloco.groups, else 1. */
export function desiredGroupCount(job: TrainingJob): number {
  const count = job.spec?.groups?.count ?? 0;
  // The deprecated field, read for jobs written before groups.count.
  const legacy = job.spec?.diloco?.groups ?? 0;
  return count > 0 ? count : legacy > 0 ? legacy : 1;
}

/** What a worker exit means under the job's failure policy. */
export function failureActionOf(job: TrainingJob, exitCode: number): { action: FailureAction; reason: string } {
  for (const rule of job.spec?.failurePolicy?.rules ?? []) {
    if (rule.exitCodes.includes(exitCode) && rule.action !== FailureAction.UNSPECIFIED)
      return { action: rule.action, reason: `ExitCode${exitCode}` };
  }
  const fatal = NON_RETRYABLE_EXITS[exitCode];
  if (fatal !== undefined) return { action: FailureAction.FAIL_JOB, reason: fatal };
  return { action: FailureAction.RESTART, reason: `ExitCode${exitCode}` };
}

function setCondition(
  conds: Condition[],
  type: string,
  status: ConditionStatus,
  reason: string,
  message: string,
  now: Date,
  generation: bigint,
): Condition[] {
  const old = conds.find((c) => c.type === type);
  const changed = old === undefined || old.status !== status;
  const next = create(ConditionSchema, {
    type,
    status,
    reason,
    message,
    observedGeneration: generation,
    lastTransitionTime: changed ? timestampFromDate(now) : old.lastTransitionTime,
  });
  return [...conds.filter((c) => c.type !== type), next].sort((a, b) => a.type.localeCompare(b.type));
}

const workersOf = (job: TrainingJob): number => Math.max(1, job.spec?.resources?.workersPerGroup || job.spec?.diloco?.pipelineStages || 1);

/** The pure reconcile rule. `job.status` is the status as last written. */
export function reconcile(job: TrainingJob, observed: Observed, now: Date): ReconcileResult {
  const actions: Action[] = [];
  const prev = job.status ?? create(TrainingJobStatusSchema);
  const byGroup = new Map(observed.groups.map((g) => [g.group, g]));

  // --- deletion: checkpoint and stop everything, then let the object go ------------------
  if (observed.deleting) {
    for (const g of observed.groups)
      actions.push(
        g.workers.some((w) => w.state === "running")
          ? { kind: "checkpointAndStop", group: g.group, reason: "Deleting" }
          : { kind: "deleteGroup", group: g.group, reason: "Deleting" },
      );
    if (observed.groups.length === 0 && observed.hasFinalizer) actions.push({ kind: "removeFinalizer" });
    return { actions, status: prev };
  }
  if (!observed.hasFinalizer) actions.push({ kind: "addFinalizer" });

  const status = create(TrainingJobStatusSchema, { ...prev, groups: [], conditions: [...prev.conditions] });
  status.observedGeneration = job.generation;
  const finish = (requeueAfterMs?: number): ReconcileResult => {
    if (!equals(TrainingJobStatusSchema, status, prev)) actions.push({ kind: "updateStatus", status });
    return { actions, status, ...(requeueAfterMs !== undefined ? { requeueAfterMs } : {}) };
  };

  // --- terminal: nothing runs any more ----------------------------------------------------
  if (TERMINAL.has(prev.phase)) {
    status.groups = prev.groups.map((g) => create(GroupStatusSchema, g));
    for (const g of observed.groups)
      if (g.workers.some((w) => w.state === "pending" || w.state === "running"))
        actions.push({ kind: "deleteGroup", group: g.group, reason: "JobFinished" });
    return finish();
  }

  const count = desiredGroupCount(job);
  const workers = workersOf(job);
  const leaseIds = job.spec?.leaseIds ?? [];
  const maxRestarts = job.spec?.failurePolicy?.maxRestarts ?? DEFAULT_MAX_RESTARTS;
  const strategy = job.spec?.failurePolicy?.restartStrategy ?? RestartStrategy.UNSPECIFIED;
  const timeoutMs = (job.spec?.gang?.scheduleTimeoutSeconds || DEFAULT_GANG_TIMEOUT_S) * 1000;
  const prevGroup = (g: number): GroupStatus => prev.groups.find((x) => x.group === g) ?? create(GroupStatusSchema, { group: g });
  const jobResume = (): ResumeFrom | undefined =>
    prev.lastCheckpoint !== undefined ? { digest: prev.lastCheckpoint, uri: prev.lastCheckpointUri } : undefined;
  const resumeOf = (gs: GroupStatus): ResumeFrom | undefined =>
    gs.lastCheckpoint !== undefined ? { digest: gs.lastCheckpoint, uri: gs.lastCheckpointUri } : jobResume();

  // --- progress reported by the workers ---------------------------------------------------
  const groupStatus = new Map<number, GroupStatus>();
  for (let g = 0; g < Math.max(count, ...observed.groups.map((o) => o.group + 1), ...prev.groups.map((p) => p.group + 1)); g++) {
    const gs = create(GroupStatusSchema, { ...prevGroup(g), group: g });
    const p = byGroup.get(g)?.progress;
    if (p !== undefined) {
      gs.round = BigInt(Math.max(Number(gs.round), p.round));
      if (BigInt(p.round) >= status.round) status.round = BigInt(p.round);
      if (BigInt(p.tokens) > status.tokens) status.tokens = BigInt(p.tokens);
      if (p.checkpoint !== undefined) {
        const d = create(DigestSchema, { algorithm: p.checkpoint.digest.algorithm, hex: p.checkpoint.digest.hex });
        gs.lastCheckpoint = d;
        gs.lastCheckpointUri = p.checkpoint.uri;
        const latest = prev.lastCheckpoint === undefined || p.checkpoint.round >= Number(status.round);
        if (latest) {
          status.lastCheckpoint = d;
          status.lastCheckpointUri = p.checkpoint.uri;
        }
      }
    }
    groupStatus.set(g, gs);
  }
  const losses = observed.groups.map((g) => g.progress?.loss).filter((l): l is number => l !== undefined);
  if (losses.length > 0) status.loss = losses.reduce((a, b) => a + b, 0) / losses.length;

  const failJob = (reason: string, message: string): ReconcileResult => {
    status.phase = TrainingJobPhase.FAILED;
    status.completedAt = timestampFromDate(now);
    status.conditions = setCondition(status.conditions, "Failed", ConditionStatus.TRUE, reason, message, now, job.generation);
    for (const g of observed.groups)
      if (g.workers.some((w) => w.state === "pending" || w.state === "running"))
        actions.push({ kind: "deleteGroup", group: g.group, reason: "JobFailed" });
    status.groups = [...groupStatus.values()].filter((g) => g.group < count);
    return finish();
  };

  // --- suspend: checkpoint and stop every group, keep the job -----------------------------
  if (job.spec?.suspend === true) {
    for (const o of observed.groups) {
      actions.push({ kind: "checkpointAndStop", group: o.group, reason: "Suspended" });
      const gs = groupStatus.get(o.group)!;
      gs.phase = GroupPhase.PAUSED;
      gs.readyWorkers = 0;
      gs.message = "job suspended";
    }
    status.groups = [...groupStatus.values()].filter((g) => g.group < count);
    for (const gs of status.groups) gs.phase = GroupPhase.PAUSED;
    status.phase = observed.groups.length === 0 ? TrainingJobPhase.SUSPENDED : status.phase;
    status.conditions = setCondition(
      status.conditions,
      "Suspended",
      ConditionStatus.TRUE,
      "Suspended",
      "spec.suspend is true",
      now,
      job.generation,
    );
    return finish();
  }
  if (status.conditions.some((c) => c.type === "Suspended" && c.status === ConditionStatus.TRUE)) {
    status.conditions = setCondition(
      status.conditions,
      "Suspended",
      ConditionStatus.FALSE,
      "Resumed",
      "spec.suspend is false",
      now,
      job.generation,
    );
  }

  // --- scale down: groups beyond the count leave ------------------------------------------
  let scaling = false;
  for (const o of observed.groups) {
    if (o.group < count) continue;
    scaling = true;
    actions.push(
      o.workers.some((w) => w.state === "running")
        ? { kind: "checkpointAndStop", group: o.group, reason: "ScaledDown" }
        : { kind: "deleteGroup", group: o.group, reason: "ScaledDown" },
    );
  }

  // --- failures first: they decide between restart and failing the job -------------------
  const failed: { group: number; exitCode: number; action: FailureAction; reason: string }[] = [];
  for (let g = 0; g < count; g++) {
    const o = byGroup.get(g);
    const gs = groupStatus.get(g)!;
    if (o === undefined || o.attempt !== gs.restarts) continue; // stale gangs are handled below
    const w = o.workers.find((x) => x.state === "failed");
    if (w === undefined) continue;
    const exitCode = w.exitCode ?? 1;
    gs.lastExitCode = exitCode;
    failed.push({ group: g, exitCode, ...failureActionOf(job, exitCode) });
  }
  const fatal = failed.find((f) => f.action === FailureAction.FAIL_JOB);
  if (fatal !== undefined) {
    const gs = groupStatus.get(fatal.group)!;
    gs.phase = GroupPhase.FAILED;
    gs.message = `worker exited ${fatal.exitCode} (${fatal.reason}): not retried`;
    return failJob(fatal.reason, `group ${fatal.group}: worker exited ${fatal.exitCode} (${fatal.reason}); not retried`);
  }
  const counted = failed.filter((f) => f.action === FailureAction.RESTART).length;
  const restartAll = strategy === RestartStrategy.RECREATE_ALL && failed.length > 0;
  const newRestarts = restartAll ? (counted > 0 ? 1 : 0) : counted;
  if (prev.restarts + newRestarts > maxRestarts) {
    return failJob(
      "RestartBudgetExhausted",
      `restart budget ${maxRestarts} used up (${prev.restarts} restarts so far); last failure: group ${failed[0]!.group} exited ${failed[0]!.exitCode}`,
    );
  }
  status.restarts = prev.restarts + newRestarts;
  const restarting = new Set<number>(restartAll ? [...Array(count).keys()].filter((g) => byGroup.has(g)) : failed.map((f) => f.group));
  for (const g of restarting) {
    const gs = groupStatus.get(g)!;
    gs.restarts += 1;
    gs.phase = GroupPhase.RESTARTING;
    gs.readyWorkers = 0;
    const f = failed.find((x) => x.group === g);
    gs.message =
      f !== undefined ? `worker exited ${f.exitCode}; restarting from the last checkpoint` : "recreating every group (RecreateAll)";
    const resume = resumeOf(gs);
    actions.push({
      kind: "restartGroup",
      group: g,
      attempt: gs.restarts,
      reason: f?.reason ?? "RecreateAll",
      ...(resume !== undefined ? { resumeFrom: resume } : {}),
    });
  }

  // --- every wanted group: lease, gang, phase ---------------------------------------------
  let requeue: number | undefined;
  let leasesReady = true;
  for (let g = 0; g < count; g++) {
    if (restarting.has(g)) continue;
    const gs = groupStatus.get(g)!;
    const o = byGroup.get(g);
    gs.desiredWorkers = workers;
    const leaseId = leaseIds[g];
    if (leaseIds.length > 0) {
      gs.leaseId = leaseId ?? "";
      const lease = leaseId !== undefined ? observed.leases[leaseId] : undefined;
      if (lease === undefined || lease.state === "closed") {
        leasesReady = false;
        if (o !== undefined) actions.push({ kind: "deleteGroup", group: g, reason: "LeaseUnavailable" });
        gs.phase = GroupPhase.PENDING;
        gs.readyWorkers = 0;
        gs.message = leaseId === undefined ? `no lease for group ${g}` : `lease ${leaseId} is ${lease?.state ?? "unknown"}`;
        continue;
      }
      if (lease.state === "paused") {
        leasesReady = false;
        if (o !== undefined) actions.push({ kind: "checkpointAndStop", group: g, reason: "LeasePaused" });
        gs.phase = GroupPhase.PAUSED;
        gs.readyWorkers = 0;
        gs.message = `lease ${leaseId} is paused`;
        continue;
      }
    }
    if (o === undefined) {
      const resume = resumeOf(gs);
      actions.push({
        kind: "createGroup",
        group: g,
        attempt: gs.restarts,
        workers,
        ...(leaseId !== undefined ? { leaseId } : {}),
        ...(resume !== undefined ? { resumeFrom: resume } : job.spec?.checkpoints?.resume === true ? { resumeLatest: true } : {}),
      });
      // A restarted group stays Restarting until its gang runs again.
      gs.phase = gs.phase === GroupPhase.RESTARTING ? GroupPhase.RESTARTING : GroupPhase.STARTING;
      gs.readyWorkers = 0;
      gs.gangCreatedAt = timestampFromDate(now);
      gs.message = "gang created";
      requeue = Math.min(requeue ?? timeoutMs, timeoutMs);
      continue;
    }
    if (o.attempt !== gs.restarts) {
      // A gang from before the last restart (already counted): replace it, do not count again.
      actions.push({ kind: "deleteGroup", group: g, reason: "StaleGang" });
      continue;
    }
    const running = o.workers.filter((w) => w.state === "running").length;
    const succeeded = o.workers.filter((w) => w.state === "succeeded").length;
    gs.readyWorkers = running;
    const nodes = [...new Set(o.workers.map((w) => w.node).filter((n): n is string => n !== undefined))].sort();
    const provider = leaseId !== undefined ? observed.leases[leaseId]?.provider : undefined;
    if (nodes.length > 0 || provider !== undefined) gs.placement = [provider ?? "", nodes.join(",")].filter((x) => x !== "").join(" ");
    if (succeeded >= workers) {
      gs.phase = GroupPhase.SUCCEEDED;
      gs.message = "done";
    } else if (running + succeeded >= workers && running > 0) {
      gs.phase = GroupPhase.RUNNING;
      gs.message = "";
    } else {
      const since = gs.gangCreatedAt !== undefined ? timestampDate(gs.gangCreatedAt).getTime() : now.getTime();
      if (gs.gangCreatedAt === undefined) gs.gangCreatedAt = timestampFromDate(now);
      const left = since + timeoutMs - now.getTime();
      if (left <= 0) {
        if (status.restarts + 1 > maxRestarts) {
          gs.phase = GroupPhase.FAILED;
          gs.message = `gang not running after ${timeoutMs / 1000} s`;
          return failJob(
            "GangTimeout",
            `group ${g}: ${running}/${workers} workers running after ${timeoutMs / 1000} s; restart budget ${maxRestarts} used up`,
          );
        }
        status.restarts += 1;
        gs.restarts += 1;
        gs.phase = GroupPhase.PENDING;
        gs.readyWorkers = 0;
        gs.message = `gang released: ${running}/${workers} workers running after ${timeoutMs / 1000} s`;
        delete gs.gangCreatedAt;
        actions.push({ kind: "releaseGang", group: g, reason: "GangTimeout" });
      } else {
        if (gs.phase !== GroupPhase.RESTARTING) gs.phase = GroupPhase.STARTING;
        gs.message = `${running}/${workers} workers running`;
        requeue = Math.min(requeue ?? left, left);
      }
    }
  }
  status.groups = [...groupStatus.values()].filter((g) => g.group < count);

  // --- job phase and conditions -----------------------------------------------------------
  const phases = status.groups.map((g) => g.phase);
  const minCount = job.spec?.groups?.minCount || count;
  const runningGroups = phases.filter((p) => p === GroupPhase.RUNNING).length;
  // A group joining a job whose other groups train, or groups leaving: Scaling.
  const joining = phases.includes(GroupPhase.STARTING) && runningGroups > 0;
  if (phases.length > 0 && phases.every((p) => p === GroupPhase.SUCCEEDED)) {
    status.phase = TrainingJobPhase.SUCCEEDED;
    status.completedAt = timestampFromDate(now);
  } else if (restarting.size > 0 || phases.includes(GroupPhase.RESTARTING)) {
    status.phase = TrainingJobPhase.RECOVERING;
  } else if (scaling || joining) {
    status.phase = TrainingJobPhase.SCALING;
  } else if (runningGroups >= minCount && runningGroups > 0) {
    status.phase = TrainingJobPhase.RUNNING;
  } else if (phases.some((p) => p === GroupPhase.STARTING || p === GroupPhase.RUNNING)) {
    status.phase = TrainingJobPhase.STARTING;
  } else {
    status.phase = TrainingJobPhase.PENDING;
  }
  if (status.startedAt === undefined && runningGroups > 0) status.startedAt = timestampFromDate(now);
  const allReady = runningGroups === count;
  status.conditions = setCondition(
    status.conditions,
    "GroupsReady",
    allReady ? ConditionStatus.TRUE : ConditionStatus.FALSE,
    allReady ? "AllGroupsRunning" : "GroupsNotRunning",
    `${runningGroups}/${count} groups running`,
    now,
    job.generation,
  );
  if (leaseIds.length > 0) {
    status.conditions = setCondition(
      status.conditions,
      "LeasesReady",
      leasesReady ? ConditionStatus.TRUE : ConditionStatus.FALSE,
      leasesReady ? "LeasesActive" : "LeaseNotActive",
      leasesReady ? "every lease is active" : "a lease is paused, closed or unknown",
      now,
      job.generation,
    );
  }
  return finish(requeue);
}
