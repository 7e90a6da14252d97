/**
 * Slashing penalties, pure and integer-only (amounts are bigint base units, fractions basis
 * points), so the service and `deai slash verify` compute the same penalty from the same
 * inputs. services/slashing/README.md states the formulas with their defaults.
 */
import { ProofError } from "./errors.js";
import { isLivenessKind, type EvidenceKindName } from "./slashing-evidence.js";

export const BPS = 10_000;

/** Penalty parameters (a slash record carries the ones it was computed with). */
export interface PenaltyParams {
  /** Base fraction of the stake at the infraction, per kind, in basis points. */
  readonly baseBps: Readonly<Record<EvidenceKindName, number>>;
  /** Penalty windows per kind: at most one penalty per (provider, kind, window). */
  readonly windowMs: Readonly<Record<EvidenceKindName, number>>;
  /** First jail for a liveness fault. */
  readonly jailMs: number;
  /** Each earlier liveness slash of the provider within `escalationLookbackMs` doubles the jail, at most this many times. */
  readonly maxJailDoublings: number;
  /** and adds its base fraction again, up to this multiple of the base. */
  readonly maxEscalation: number;
  readonly escalationLookbackMs: number;
  /** Correlation window (Ethereum: 8192 epochs ≈ 36 days; here a parameter). */
  readonly correlationWindowMs: number;
  /** Correlation factor: extra = min(factor × slashed-in-window, total) / total (Ethereum: 3). */
  readonly correlationFactor: number;
  /** Liveness guard: suspends liveness slashing (jail only) when at least this share of bonded providers has a liveness fault in the window, in bps. */
  readonly massFailureBps: number;
  readonly guardWindowMs: number;
  /** Reporter reward, repair share (unavailability only), both bps of the amount taken; the rest goes to the treasury. */
  readonly reporterRewardBps: number;
  readonly repairShareBps: number;
}

export const DEFAULT_PENALTY_PARAMS: PenaltyParams = {
  baseBps: { unavailability: 100, equivocation: 500, "lease-breach": 200, "invalid-contribution": 1000 },
  windowMs: { unavailability: 3_600_000, equivocation: 3_600_000, "lease-breach": 3_600_000, "invalid-contribution": 3_600_000 },
  jailMs: 600_000,
  maxJailDoublings: 6,
  maxEscalation: 4,
  escalationLookbackMs: 7 * 24 * 3_600_000,
  correlationWindowMs: 24 * 3_600_000,
  correlationFactor: 3,
  massFailureBps: 3_300,
  guardWindowMs: 3_600_000,
  reporterRewardBps: 1_000,
  repairShareBps: 2_000,
};

/** What the service observed when it proposed the slash (recorded in the slash record). */
export interface PenaltyInputs {
  readonly kind: EvidenceKindName;
  /** The provider's stake (bonded + unbonding) at the infraction. */
  readonly stakeAtInfraction: bigint;
  /** The provider's earlier liveness slashes within the escalation lookback. */
  readonly priorLivenessFaults: number;
  /** Other providers slashed in the correlation window, and their stake at their infractions. */
  readonly correlatedSlashes: number;
  readonly correlatedStake: bigint;
  /**
   * Of `correlatedStake`, the stake of the providers that share infrastructure (region or
   * storage vendor) with this one: it counts twice. Absent (0) when the service knows no
   * infrastructure for the provider.
   */
  readonly sharedInfraStake?: bigint;
  /** All bonded stake (the denominator of the correlation). */
  readonly totalStake: bigint;
  /** Providers with stake, and of them those with a liveness fault in the guard window (this one included). */
  readonly bondedProviders: number;
  readonly faultingProviders: number;
  /** Unavailability: sampler signatures on the attestation and the quorum's size. */
  readonly signers?: number;
  readonly quorumSize?: number;
}

export type Consequence = "none" | "jail" | "tombstone";

export interface Penalty {
  readonly baseBps: number;
  /** Multiple of the base from repeat faults (1 for a first fault). */
  readonly escalation: number;
  readonly correlationBps: number;
  /** Fraction applied, capped at 10,000. 0 when the guard suspended it. */
  readonly fractionBps: number;
  readonly amount: bigint;
  readonly consequence: Consequence;
  /** Jail length for a jail. */
  readonly jailMs: number;
  /** Why liveness slashing was suspended (jail only), or undefined. */
  readonly suspended?: string;
  readonly reporterReward: bigint;
  readonly repairShare: bigint;
  readonly treasury: bigint;
}

function bps(v: number, what: string): void {
  if (!Number.isSafeInteger(v) || v < 0 || v > BPS) throw new ProofError("invalid-argument", `${what} must be an integer in [0, 10000]`);
}

/** Checks parameters for shape (the service adds the timing rule at start). */
export function checkPenaltyParams(p: PenaltyParams): void {
  for (const [k, v] of Object.entries(p.baseBps)) bps(v, `baseBps.${k}`);
  for (const [k, v] of Object.entries(p.windowMs))
    if (!Number.isSafeInteger(v) || v < 1) throw new ProofError("invalid-argument", `windowMs.${k} must be a positive integer`);
  bps(p.massFailureBps, "massFailureBps");
  bps(p.reporterRewardBps, "reporterRewardBps");
  bps(p.repairShareBps, "repairShareBps");
  if (p.reporterRewardBps + p.repairShareBps > BPS)
    throw new ProofError("invalid-argument", "reporterRewardBps + repairShareBps must not exceed 10000");
  if (!(p.maxEscalation >= 1) || !Number.isSafeInteger(p.maxEscalation))
    throw new ProofError("invalid-argument", "maxEscalation must be an integer ≥ 1");
  if (!(p.correlationFactor >= 0) || !Number.isSafeInteger(p.correlationFactor))
    throw new ProofError("invalid-argument", "correlationFactor must be an integer ≥ 0");
}

/** Why a liveness penalty is suspended, or undefined: the fault looks like the network's, not the provider's. */
export function livenessGuard(p: PenaltyParams, i: PenaltyInputs): string | undefined {
  if (!isLivenessKind(i.kind)) return undefined;
  if (i.signers !== undefined && i.quorumSize !== undefined && i.signers < i.quorumSize)
    return `sampler quorum degraded: ${i.signers} of ${i.quorumSize} samplers signed`;
  if (i.bondedProviders > 1 && i.faultingProviders >= 2 && i.faultingProviders * BPS >= p.massFailureBps * i.bondedProviders)
    return `mass failure: ${i.faultingProviders} of ${i.bondedProviders} providers faulted in the guard window`;
  return undefined;
}

/**
 * The penalty: fraction = min(10000, base × escalation + correlation) where escalation =
 * min(1 + prior liveness faults, maxEscalation) for liveness kinds (1 otherwise) and
 * correlation = ⌊10000 × min(factor × (correlatedStake + sharedInfraStake), total) / total⌋ for objective kinds only (0 for liveness kinds); amount = ⌊stake ×
 * fraction / 10000⌋; reporter ⌊amount × reporterBps / 10000⌋, repair (unavailability)
 * ⌊amount × repairBps / 10000⌋, treasury the rest. Equivocation tombstones, liveness kinds jail
 * for jailMs × 2^min(prior, maxJailDoublings). The liveness guard turns the fraction to 0.
 */
export function computePenalty(p: PenaltyParams, i: PenaltyInputs): Penalty {
  const shared = i.sharedInfraStake ?? 0n;
  if (i.stakeAtInfraction < 0n || i.totalStake < 0n || i.correlatedStake < 0n || shared < 0n)
    throw new ProofError("invalid-argument", "stakes must be ≥ 0");
  if (shared > i.correlatedStake)
    throw new ProofError("invalid-argument", "sharedInfraStake is part of correlatedStake: it cannot exceed it");
  const baseBps = p.baseBps[i.kind];
  const live = isLivenessKind(i.kind);
  const escalation = live ? Math.min(1 + i.priorLivenessFaults, p.maxEscalation) : 1;
  const total = i.totalStake;
  let correlationBps = 0;
  // Correlation only for objective kinds: a liveness fault is jailed and guarded, never multiplied by others' faults.
  if (!live && total > 0n && i.correlatedSlashes > 0) {
    // Faults on shared infrastructure (one region, one storage vendor) count twice: they look like one operator's, not chance.
    const slashed = BigInt(p.correlationFactor) * (i.correlatedStake + shared);
    correlationBps = Number((BigInt(BPS) * (slashed < total ? slashed : total)) / total);
  }
  const suspended = livenessGuard(p, i);
  const fractionBps = suspended ? 0 : Math.min(BPS, baseBps * escalation + correlationBps);
  const amount = (i.stakeAtInfraction * BigInt(fractionBps)) / BigInt(BPS);
  const reporterReward = (amount * BigInt(p.reporterRewardBps)) / BigInt(BPS);
  const repairShare = i.kind === "unavailability" ? (amount * BigInt(p.repairShareBps)) / BigInt(BPS) : 0n;
  const consequence: Consequence = i.kind === "equivocation" ? "tombstone" : live ? "jail" : "none";
  const jailMs = consequence === "jail" ? p.jailMs * 2 ** Math.min(i.priorLivenessFaults, p.maxJailDoublings) : 0;
  return {
    baseBps,
    escalation,
    correlationBps,
    fractionBps,
    amount,
    consequence,
    jailMs,
    ...(suspended ? { suspended } : {}),
    reporterReward,
    repairShare,
    treasury: amount - reporterReward - repairShare,
  };
}
