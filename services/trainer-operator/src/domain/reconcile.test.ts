import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";

import {
  FailureAction,
  GroupPhase,
  GroupPolicySchema,
  RestartStrategy,
  TrainingJobPhase,
  TrainingJobSchema,
  TrainingJobStatusSchema,
  type TrainingJob,
  type TrainingJobStatus,
} from "@deai/contracts/deai/training/v1/training_pb";

import { failureActionOf, reconcile, type Action, type Observed, type ObservedGroup, type ReconcileResult } from "./reconcile.js";

const T0 = new Date("2026-12-03T12:00:00Z");
const at = (s: number): Date => new Date(T0.getTime() + s * 1000);
const digest = (c: string) => ({ algorithm: "sha256", hex: c.repeat(64) });

function job(
  over: {
    count?: number;
    minCount?: number;
    leases?: string[];
    maxRestarts?: number;
    strategy?: RestartStrategy;
    suspend?: boolean;
    rules?: { exitCodes: number[]; action: FailureAction }[];
    status?: TrainingJobStatus;
  } = {},
): TrainingJob {
  return create(TrainingJobSchema, {
    jobId: "j",
    generation: 3n,
    spec: {
      datasets: [digest("a")],
      groups: { count: over.count ?? 2, minCount: over.minCount ?? 0 },
      resources: { workersPerGroup: 2 },
      leaseIds: over.leases ?? [],
      failurePolicy: {
        maxRestarts: over.maxRestarts ?? 3,
        restartStrategy: over.strategy ?? RestartStrategy.RESTART_GROUP,
        rules: over.rules ?? [],
      },
      gang: { scheduleTimeoutSeconds: 60 },
      checkpoints: { uriPrefix: "s3://b/j/", resume: true },
      suspend: over.suspend ?? false,
    },
    ...(over.status !== undefined ? { status: over.status } : {}),
  });
}

const running = (group: number, attempt = 0, extra: Partial<ObservedGroup> = {}): ObservedGroup => ({
  group,
  attempt,
  workers: [
    { index: 0, state: "running", node: `n${group}a` },
    { index: 1, state: "running", node: `n${group}b` },
  ],
  ...extra,
});
const failedWith = (group: number, exitCode: number, attempt = 0): ObservedGroup => ({
  group,
  attempt,
  workers: [
    { index: 0, state: "running" },
    { index: 1, state: "failed", exitCode },
  ],
});
const obs = (groups: ObservedGroup[], extra: Partial<Observed> = {}): Observed => ({
  groups,
  leases: {},
  deleting: false,
  hasFinalizer: true,
  ...extra,
});
const kinds = (r: ReconcileResult): string[] =>
  r.actions.map((a) => (a.kind === "updateStatus" ? a.kind : "group" in a ? `${a.kind}:${a.group}` : a.kind));
const of = <K extends Action["kind"]>(r: ReconcileResult, kind: K): Extract<Action, { kind: K }>[] =>
  r.actions.filter((a): a is Extract<Action, { kind: K }> => a.kind === kind);

/** Runs reconcile with the status it wrote last time, as the runtime does. */
function step(j: TrainingJob, o: Observed, now: Date): { r: ReconcileResult; next: TrainingJob } {
  const r = reconcile(j, o, now);
  return { r, next: create(TrainingJobSchema, { ...j, status: r.status }) };
}

describe("reconcile: create", () => {
  it("adds the finalizer, creates one gang per group and waits for it", () => {
    const r = reconcile(job(), obs([], { hasFinalizer: false }), T0);
    expect(kinds(r)).toEqual(["addFinalizer", "createGroup:0", "createGroup:1", "updateStatus"]);
    expect(of(r, "createGroup")[0]).toMatchObject({ attempt: 0, workers: 2, resumeLatest: true });
    expect(r.status.phase).toBe(TrainingJobPhase.STARTING);
    expect(r.status.groups.map((g) => g.phase)).toEqual([GroupPhase.STARTING, GroupPhase.STARTING]);
    expect(r.status.observedGeneration).toBe(3n);
    expect(r.requeueAfterMs).toBe(60_000);
  });

  it("is Running with placement when every worker runs, and writes no status when nothing changed", () => {
    const a = step(job(), obs([]), T0);
    const b = step(a.next, obs([running(0), running(1)]), at(5));
    expect(b.r.status.phase).toBe(TrainingJobPhase.RUNNING);
    expect(b.r.status.groups.map((g) => [g.readyWorkers, g.placement])).toEqual([
      [2, "n0a,n0b"],
      [2, "n1a,n1b"],
    ]);
    expect(b.r.status.startedAt).toEqual(timestampFromDate(at(5)));
    const c = step(b.next, obs([running(0), running(1)]), at(6));
    expect(kinds(c.r)).toEqual([]);
  });

  it("reports round, tokens, mean loss and the latest checkpoint from progress", () => {
    const a = step(job(), obs([]), T0);
    const p = (round: number, loss: number, c: string) => ({
      progress: { round, tokens: round * 1000, loss, checkpoint: { digest: digest(c), uri: `s3://b/j/round-${round}`, round } },
    });
    const b = step(a.next, obs([running(0, 0, p(4, 3.0, "c")), running(1, 0, p(5, 2.0, "d"))]), at(5));
    expect(b.r.status.round).toBe(5n);
    expect(b.r.status.tokens).toBe(5000n);
    expect(b.r.status.loss).toBe(2.5);
    expect(b.r.status.lastCheckpoint).toEqual(expect.objectContaining({ hex: "d".repeat(64) }));
    expect(b.r.status.groups[0]!.lastCheckpointUri).toBe("s3://b/j/round-4");
  });
});

describe("reconcile: gang", () => {
  const partial: ObservedGroup = {
    group: 0,
    attempt: 0,
    workers: [
      { index: 0, state: "running" },
      { index: 1, state: "pending" },
    ],
  };

  it("waits until the timeout, then releases the whole gang, counts a restart and recreates it", () => {
    const a = step(job({ count: 1 }), obs([]), T0);
    const b = step(a.next, obs([partial]), at(30));
    expect(kinds(b.r)).toEqual(["updateStatus"]);
    expect(b.r.requeueAfterMs).toBe(30_000);
    const c = step(b.next, obs([partial]), at(61));
    expect(kinds(c.r)).toEqual(["releaseGang:0", "updateStatus"]);
    expect(c.r.status.restarts).toBe(1);
    expect(c.r.status.groups[0]!.phase).toBe(GroupPhase.PENDING);
    // The released gang still shows (informer lag): deleted again, not counted again.
    const d = step(c.next, obs([partial]), at(62));
    expect(kinds(d.r)).toEqual(["deleteGroup:0"]);
    expect(d.r.status.restarts).toBe(1);
    const e = step(d.next, obs([]), at(63));
    expect(of(e.r, "createGroup")[0]).toMatchObject({ group: 0, attempt: 1 });
  });

  it("fails the job when a gang times out with the restart budget used up", () => {
    const a = step(job({ count: 1, maxRestarts: 0 }), obs([]), T0);
    const b = step(a.next, obs([partial]), at(61));
    expect(b.r.status.phase).toBe(TrainingJobPhase.FAILED);
    expect(b.r.status.conditions.find((c) => c.type === "Failed")?.reason).toBe("GangTimeout");
    expect(kinds(b.r)).toEqual(["deleteGroup:0", "updateStatus"]);
  });
});

describe("reconcile: failures", () => {
  const runningJob = (over: Parameters<typeof job>[0] = {}): TrainingJob => {
    const a = step(job(over), obs([]), T0);
    return step(
      a.next,
      obs([
        running(0, 0, { progress: { round: 3, tokens: 10, checkpoint: { digest: digest("e"), uri: "s3://b/j/round-3", round: 3 } } }),
        running(1),
      ]),
      at(5),
    ).next;
  };

  it("restarts only the failed group from its last checkpoint (RestartGroup); the other keeps running", () => {
    const j = runningJob();
    const r = reconcile(j, obs([failedWith(0, 137), running(1)]), at(10));
    expect(kinds(r)).toEqual(["restartGroup:0", "updateStatus"]);
    expect(of(r, "restartGroup")[0]).toMatchObject({ attempt: 1, resumeFrom: { uri: "s3://b/j/round-3" } });
    expect(r.status.phase).toBe(TrainingJobPhase.RECOVERING);
    expect(r.status.restarts).toBe(1);
    expect(r.status.groups.map((g) => [g.phase, g.restarts, g.lastExitCode])).toEqual([
      [GroupPhase.RESTARTING, 1, 137],
      [GroupPhase.RUNNING, 0, 0],
    ]);
    // The failed gang is still listed (informer lag): replaced, not counted a second time.
    const next = create(TrainingJobSchema, { ...j, status: r.status });
    const lag = reconcile(next, obs([failedWith(0, 137, 0), running(1)]), at(10.5));
    expect(kinds(lag)).toEqual(["deleteGroup:0"]);
    expect(lag.status.restarts).toBe(1);
    // Recreated with the new attempt, still Restarting until it runs, then Running.
    const b = step(next, obs([running(1)]), at(11));
    expect(of(b.r, "createGroup")[0]).toMatchObject({ group: 0, attempt: 1, resumeFrom: { uri: "s3://b/j/round-3" } });
    expect(b.r.status.phase).toBe(TrainingJobPhase.RECOVERING);
    const c = step(b.next, obs([running(0, 1), running(1)]), at(20));
    expect(c.r.status.phase).toBe(TrainingJobPhase.RUNNING);
    expect(c.r.status.restarts).toBe(1);
  });

  it("recreates every group for RecreateAll, counting one restart", () => {
    const r = reconcile(runningJob({ strategy: RestartStrategy.RECREATE_ALL }), obs([failedWith(1, 1), running(0)]), at(10));
    expect(kinds(r).sort()).toEqual(["restartGroup:0", "restartGroup:1", "updateStatus"]);
    expect(r.status.restarts).toBe(1);
  });

  it("fails the job on exit 3 (bad data) without any retry", () => {
    const r = reconcile(runningJob(), obs([failedWith(0, 3), running(1)]), at(10));
    expect(r.status.phase).toBe(TrainingJobPhase.FAILED);
    expect(r.status.restarts).toBe(0);
    expect(of(r, "restartGroup")).toEqual([]);
    expect(of(r, "createGroup")).toEqual([]);
    expect(kinds(r)).toEqual(["deleteGroup:0", "deleteGroup:1", "updateStatus"]);
    expect(r.status.conditions.find((c) => c.type === "Failed")?.reason).toBe("DataIntegrityError");
    expect(r.status.groups[0]!.phase).toBe(GroupPhase.FAILED);
    // Terminal: a later pass restarts nothing.
    const later = reconcile(create(TrainingJobSchema, { ...runningJob(), status: r.status }), obs([]), at(20));
    expect(of(later, "createGroup")).toEqual([]);
  });

  it("follows exit-code rules first: a rule can make exit 3 restart or a preemption uncounted", () => {
    expect(failureActionOf(job({ rules: [{ exitCodes: [3], action: FailureAction.RESTART }] }), 3).action).toBe(FailureAction.RESTART);
    expect(failureActionOf(job(), 2).action).toBe(FailureAction.FAIL_JOB);
    expect(failureActionOf(job(), 137).action).toBe(FailureAction.RESTART);
    const r = reconcile(
      runningJob({ rules: [{ exitCodes: [143], action: FailureAction.RESTART_UNCOUNTED }] }),
      obs([failedWith(0, 143), running(1)]),
      at(10),
    );
    expect(kinds(r)).toEqual(["restartGroup:0", "updateStatus"]);
    expect(r.status.restarts).toBe(0);
  });

  it("keeps the restart budget in status: deleting every child does not reset it", () => {
    let j = runningJob({ maxRestarts: 2 });
    j = step(j, obs([failedWith(0, 1), running(1)]), at(10)).next;
    expect(j.status?.restarts).toBe(1);
    // Someone deletes all pods of both groups: recreated, budget still 1 used.
    const wiped = step(j, obs([]), at(11));
    expect(kinds(wiped.r).filter((k) => k.startsWith("createGroup"))).toEqual(["createGroup:0", "createGroup:1"]);
    expect(wiped.r.status.restarts).toBe(1);
    j = step(wiped.next, obs([running(0, 1), running(1)]), at(12)).next;
    j = step(j, obs([running(0, 1), failedWith(1, 1)]), at(13)).next;
    expect(j.status?.restarts).toBe(2);
    j = step(j, obs([running(0, 1), running(1, 1)]), at(14)).next;
    const over = reconcile(j, obs([failedWith(0, 1, 1), running(1, 1)]), at(15));
    expect(over.status.phase).toBe(TrainingJobPhase.FAILED);
    expect(over.status.conditions.find((c) => c.type === "Failed")?.reason).toBe("RestartBudgetExhausted");
  });
});

describe("reconcile: scale, suspend, leases, deletion", () => {
  const steady = (count: number, leases: string[] = []): TrainingJob => {
    const groups = [...Array(count).keys()];
    const a = step(
      job({ count, leases }),
      obs([], { leases: Object.fromEntries(leases.map((l) => [l, { state: "active" as const, provider: `p-${l}` }])) }),
      T0,
    );
    return step(
      a.next,
      obs(
        groups.map((g) => running(g)),
        { leases: Object.fromEntries(leases.map((l) => [l, { state: "active" as const, provider: `p-${l}` }])) },
      ),
      at(5),
    ).next;
  };
  const withCount = (j: TrainingJob, count: number): TrainingJob =>
    create(TrainingJobSchema, { ...j, generation: j.generation + 1n, spec: { ...j.spec!, groups: create(GroupPolicySchema, { count }) } });

  it("scales up: creates only the new group while the others keep running (Scaling, then Running)", () => {
    const j = withCount(steady(2), 3);
    const r = step(j, obs([running(0), running(1)]), at(10));
    expect(kinds(r.r)).toEqual(["createGroup:2", "updateStatus"]);
    expect(r.r.status.phase).toBe(TrainingJobPhase.SCALING);
    expect(r.r.status.observedGeneration).toBe(4n);
    const b = step(r.next, obs([running(0), running(1), running(2)]), at(11));
    expect(b.r.status.phase).toBe(TrainingJobPhase.RUNNING);
    expect(b.r.status.groups).toHaveLength(3);
  });

  it("scales down: the extra group checkpoints and stops, the others are untouched", () => {
    const j = withCount(steady(3), 2);
    const r = reconcile(j, obs([running(0), running(1), running(2)]), at(10));
    expect(kinds(r)).toEqual(["checkpointAndStop:2", "updateStatus"]);
    expect(r.status.phase).toBe(TrainingJobPhase.SCALING);
    expect(r.status.groups.map((g) => g.group)).toEqual([0, 1]);
    const done = reconcile(create(TrainingJobSchema, { ...j, status: r.status }), obs([running(0), running(1)]), at(11));
    expect(done.status.phase).toBe(TrainingJobPhase.RUNNING);
  });

  it("suspends: every group checkpoints and stops; resuming recreates them from their checkpoints", () => {
    const j = create(TrainingJobSchema, { ...steady(2), spec: { ...steady(2).spec!, suspend: true } });
    const r = step(j, obs([running(0), running(1)]), at(10));
    expect(kinds(r.r)).toEqual(["checkpointAndStop:0", "checkpointAndStop:1", "updateStatus"]);
    const gone = step(r.next, obs([]), at(11));
    expect(gone.r.status.phase).toBe(TrainingJobPhase.SUSPENDED);
    expect(of(gone.r, "createGroup")).toEqual([]);
    const resumed = step(create(TrainingJobSchema, { ...gone.next, spec: { ...gone.next.spec!, suspend: false } }), obs([]), at(12));
    expect(kinds(resumed.r).filter((k) => k.startsWith("createGroup"))).toEqual(["createGroup:0", "createGroup:1"]);
    expect(resumed.r.status.conditions.find((c) => c.type === "Suspended")?.status).toBe(2); // FALSE
  });

  it("a paused lease makes its group checkpoint and stop; the job keeps running on the others if minCount allows", () => {
    const leases = ["l0", "l1"];
    const j0 = steady(2, leases);
    const j = create(TrainingJobSchema, { ...j0, spec: { ...j0.spec!, groups: create(GroupPolicySchema, { count: 2, minCount: 1 }) } });
    const r = reconcile(
      j,
      obs([running(0), running(1)], { leases: { l0: { state: "active", provider: "p-l0" }, l1: { state: "paused" } } }),
      at(10),
    );
    expect(kinds(r)).toEqual(["checkpointAndStop:1", "updateStatus"]);
    expect(r.status.groups[1]!.phase).toBe(GroupPhase.PAUSED);
    expect(r.status.groups[0]!.placement).toBe("p-l0 n0a,n0b");
    expect(r.status.phase).toBe(TrainingJobPhase.RUNNING);
    expect(r.status.conditions.find((c) => c.type === "LeasesReady")?.status).toBe(2);
    // While paused, nothing is recreated for it.
    const later = reconcile(
      create(TrainingJobSchema, { ...j, status: r.status }),
      obs([running(0)], { leases: { l0: { state: "active" }, l1: { state: "paused" } } }),
      at(11),
    );
    expect(of(later, "createGroup")).toEqual([]);
  });

  it("deletion: running groups checkpoint and stop, then the finalizer goes", () => {
    const j = steady(2);
    const r = reconcile(
      j,
      obs([running(0), { group: 1, attempt: 0, workers: [{ index: 0, state: "pending" }] }], { deleting: true }),
      at(10),
    );
    expect(kinds(r)).toEqual(["checkpointAndStop:0", "deleteGroup:1"]);
    const last = reconcile(j, obs([], { deleting: true }), at(11));
    expect(kinds(last)).toEqual(["removeFinalizer"]);
    const noFinalizer = reconcile(j, obs([], { deleting: true, hasFinalizer: false }), at(12));
    expect(kinds(noFinalizer)).toEqual([]);
  });

  it("a closed or unknown lease keeps its group Pending and removes a gang still on it", () => {
    const r = reconcile(job({ count: 1, leases: ["gone"] }), obs([running(0)]), T0);
    expect(kinds(r)).toEqual(["deleteGroup:0", "updateStatus"]);
    expect(r.status.groups[0]).toMatchObject({ phase: GroupPhase.PENDING, message: "lease gone is unknown" });
    expect(r.status.phase).toBe(TrainingJobPhase.PENDING);
  });

  it("succeeds when every group's workers succeeded", () => {
    const done: ObservedGroup = {
      group: 0,
      attempt: 0,
      workers: [
        { index: 0, state: "succeeded" },
        { index: 1, state: "succeeded" },
      ],
    };
    const r = reconcile(steady(1), obs([done]), at(100));
    expect(r.status.phase).toBe(TrainingJobPhase.SUCCEEDED);
    expect(r.status.completedAt).toEqual(timestampFromDate(at(100)));
  });

  it("starts from an empty status too", () => {
    const r = reconcile(create(TrainingJobSchema, { ...job(), status: create(TrainingJobStatusSchema) }), obs([]), T0);
    expect(of(r, "createGroup")).toHaveLength(2);
  });
});
