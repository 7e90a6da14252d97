import { computePenalty, DEFAULT_PENALTY_PARAMS, type PenaltyInputs } from "@deai/proofs";

import { checkSlashingParams, DEFAULT_TIMING, infractionWindow, type SlashingParams } from "./parameters.js";

const params: SlashingParams = {
  currency: "DEAI",
  ...DEFAULT_TIMING,
  minStake: 1_000n,
  council: ["a", "b", "c"],
  vetoThreshold: 2,
  trust: { samplers: ["s1"], quorumThreshold: 1, operators: [], countersigners: [], checkers: [], minMissedHeartbeats: 3 },
  penalty: DEFAULT_PENALTY_PARAMS,
};

const inputs = (o: Partial<PenaltyInputs> = {}): PenaltyInputs => ({
  kind: "unavailability",
  stakeAtInfraction: 1_000_000n,
  priorLivenessFaults: 0,
  correlatedSlashes: 0,
  correlatedStake: 0n,
  totalStake: 10_000_000n,
  bondedProviders: 10,
  faultingProviders: 1,
  signers: 3,
  quorumSize: 3,
  ...o,
});

describe("timing rule", () => {
  it("accepts the defaults and refuses an unbonding delay shorter than max age + veto + detection", () => {
    expect(checkSlashingParams(params)).toBe(params);
    const short = { ...params, unbondingDelayMs: DEFAULT_TIMING.evidenceMaxAgeMs + DEFAULT_TIMING.vetoWindowMs };
    expect(() => checkSlashingParams(short)).toThrow(/timing rule broken: unbonding delay .* < evidence max age/);
    expect(
      checkSlashingParams({ ...short, unbondingDelayMs: short.unbondingDelayMs + DEFAULT_TIMING.samplerDetectionWindowMs }),
    ).toBeTruthy();
  });
  it("refuses a veto threshold outside the council", () => {
    expect(() => checkSlashingParams({ ...params, vetoThreshold: 4 })).toThrow(/veto threshold 4 must be in 1..3/);
  });
  it("refuses shares that exceed the amount", () => {
    expect(() =>
      checkSlashingParams({ ...params, penalty: { ...DEFAULT_PENALTY_PARAMS, reporterRewardBps: 9000, repairShareBps: 2000 } }),
    ).toThrow(/must not exceed 10000/);
  });
});

describe("penalty", () => {
  it("takes the base fraction of the stake at the infraction and splits it to zero", () => {
    const p = computePenalty(DEFAULT_PENALTY_PARAMS, inputs());
    expect(p.fractionBps).toBe(100);
    expect(p.amount).toBe(10_000n);
    expect(p.consequence).toBe("jail");
    expect(p.jailMs).toBe(600_000);
    expect(p.reporterReward + p.repairShare + p.treasury).toBe(p.amount);
    expect(p.repairShare).toBe(2_000n);
  });
  it("escalates repeats (fraction and doubling jail) up to their caps", () => {
    const p = computePenalty(DEFAULT_PENALTY_PARAMS, inputs({ priorLivenessFaults: 2 }));
    expect(p.escalation).toBe(3);
    expect(p.fractionBps).toBe(300);
    expect(p.jailMs).toBe(2_400_000);
    const capped = computePenalty(DEFAULT_PENALTY_PARAMS, inputs({ priorLivenessFaults: 50 }));
    expect(capped.escalation).toBe(4);
    expect(capped.jailMs).toBe(600_000 * 2 ** 6);
  });
  it("tombstones equivocation at 5 % with no escalation", () => {
    const p = computePenalty(
      DEFAULT_PENALTY_PARAMS,
      inputs({ kind: "equivocation", priorLivenessFaults: 3, signers: undefined, quorumSize: undefined }),
    );
    expect(p).toMatchObject({ fractionBps: 500, escalation: 1, consequence: "tombstone", jailMs: 0, repairShare: 0n });
  });
  it("adds the correlation penalty min(3 × slashed, total) / total", () => {
    const p = computePenalty(DEFAULT_PENALTY_PARAMS, inputs({ kind: "equivocation", correlatedSlashes: 2, correlatedStake: 1_000_000n }));
    expect(p.correlationBps).toBe(3_000);
    expect(p.fractionBps).toBe(3_500);
    const all = computePenalty(DEFAULT_PENALTY_PARAMS, inputs({ kind: "equivocation", correlatedSlashes: 5, correlatedStake: 5_000_000n }));
    expect(all.fractionBps).toBe(10_000);
    expect(all.amount).toBe(1_000_000n);
  });
  it("counts the correlated stake of providers sharing infrastructure twice, never more than the correlated stake", () => {
    const eq = { kind: "equivocation" as const, correlatedSlashes: 2, correlatedStake: 1_000_000n };
    // ⌊10000 × 3 × (1 M + 0.4 M) / 10 M⌋ = 4200 bps of correlation.
    expect(computePenalty(DEFAULT_PENALTY_PARAMS, inputs({ ...eq, sharedInfraStake: 400_000n })).correlationBps).toBe(4_200);
    expect(computePenalty(DEFAULT_PENALTY_PARAMS, inputs({ ...eq, sharedInfraStake: 0n })).correlationBps).toBe(3_000);
    expect(() => computePenalty(DEFAULT_PENALTY_PARAMS, inputs({ ...eq, sharedInfraStake: 1_000_001n }))).toThrow(/cannot exceed/);
    // Liveness kinds have no correlation, shared or not.
    expect(
      computePenalty(DEFAULT_PENALTY_PARAMS, inputs({ ...eq, kind: "unavailability", sharedInfraStake: 400_000n })).correlationBps,
    ).toBe(0);
  });
  it("suspends liveness slashing (jail only) when the quorum is degraded or many providers fail at once", () => {
    const degraded = computePenalty(DEFAULT_PENALTY_PARAMS, inputs({ signers: 2 }));
    expect(degraded).toMatchObject({ fractionBps: 0, amount: 0n, consequence: "jail" });
    expect(degraded.suspended).toMatch(/sampler quorum degraded: 2 of 3/);
    const mass = computePenalty(DEFAULT_PENALTY_PARAMS, inputs({ faultingProviders: 4 }));
    expect(mass.suspended).toMatch(/mass failure: 4 of 10/);
    expect(computePenalty(DEFAULT_PENALTY_PARAMS, inputs({ faultingProviders: 3 })).suspended).toBeUndefined();
    // Equivocation is not a liveness fault: the guard never suspends it.
    expect(computePenalty(DEFAULT_PENALTY_PARAMS, inputs({ kind: "equivocation", faultingProviders: 9 })).fractionBps).toBe(500);
  });
  it("puts times into per-kind windows", () => {
    expect(infractionWindow(DEFAULT_PENALTY_PARAMS, "unavailability", 3_600_000 * 5 + 1)).toBe(5);
  });
});
