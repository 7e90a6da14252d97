// The slashing parameters and the start-time timing rule. Pure: config.ts reads the
// variables, this module decides whether they make a sound system.
import { InvalidArgumentError } from "@deai/kit/errors";
import { checkPenaltyParams, DEFAULT_PENALTY_PARAMS, type EvidenceTrust, type PenaltyParams } from "@deai/proofs";

export interface SlashingParams {
  readonly currency: string;
  /** Unbonding stake stays slashable this long. */
  readonly unbondingDelayMs: number;
  /** Evidence whose infraction is older than this is refused. */
  readonly evidenceMaxAgeMs: number;
  /** Funds move only after this window; non-objective kinds may be vetoed within it. */
  readonly vetoWindowMs: number;
  /** How long the DA sampler may take from a fault to its quorum attestation. */
  readonly samplerDetectionWindowMs: number;
  /** Bonded stake a provider needs to offer storage or compute (base units). */
  readonly minStake: bigint;
  /** Veto council and its threshold k (k of n distinct members veto a slash). */
  readonly council: readonly string[];
  readonly vetoThreshold: number;
  readonly trust: EvidenceTrust;
  readonly penalty: PenaltyParams;
  /** Where providers run (region, storage vendor), for the shared-infrastructure correlation. Unlisted: none known. */
  readonly infrastructure?: Readonly<Record<string, ProviderInfrastructure>>;
}

/** A provider's infrastructure: faults of providers sharing either field are correlated twice. */
export interface ProviderInfrastructure {
  readonly region?: string;
  readonly vendor?: string;
}

/** Whether two providers share a region or a storage vendor (an empty or missing field shares nothing). */
export function sharesInfrastructure(a: ProviderInfrastructure | undefined, b: ProviderInfrastructure | undefined): boolean {
  if (!a || !b) return false;
  return (!!a.region && a.region === b.region) || (!!a.vendor && a.vendor === b.vendor);
}

/**
 * Refuses parameters that break the timing rule or are inconsistent: unbonding delay ≥
 * evidence max age + veto window + sampler detection window (so stake that was held at an
 * infraction cannot leave before its evidence can arrive and its slash apply), a veto
 * threshold within the council, penalty shares that fit.
 */
export function checkSlashingParams(p: SlashingParams): SlashingParams {
  const need = p.evidenceMaxAgeMs + p.vetoWindowMs + p.samplerDetectionWindowMs;
  if (p.unbondingDelayMs < need)
    throw new InvalidArgumentError(
      `timing rule broken: unbonding delay ${p.unbondingDelayMs} ms < evidence max age ${p.evidenceMaxAgeMs} + veto window ${p.vetoWindowMs} + sampler detection window ${p.samplerDetectionWindowMs} = ${need} ms`,
      { field: "SLASHING_UNBONDING_DELAY_S" },
    );
  if (p.council.length > 0 && (p.vetoThreshold < 1 || p.vetoThreshold > p.council.length))
    throw new InvalidArgumentError(`veto threshold ${p.vetoThreshold} must be in 1..${p.council.length} (the council's size)`, {
      field: "SLASHING_VETO_THRESHOLD",
    });
  if (p.trust.quorumThreshold < 1)
    throw new InvalidArgumentError("the sampler quorum threshold must be ≥ 1", { field: "SLASHING_QUORUM_THRESHOLD" });
  if (p.minStake < 0n) throw new InvalidArgumentError("minimum stake must be ≥ 0", { field: "SLASHING_MIN_STAKE" });
  try {
    checkPenaltyParams(p.penalty);
  } catch (e) {
    throw new InvalidArgumentError(`penalty parameters: ${(e as Error).message}`);
  }
  return p;
}

const DAY = 24 * 3_600_000;

/** Defaults: Cosmos's 21-day unbonding, 14-day evidence max age, 2-day veto window, 1-day detection window. */
export const DEFAULT_TIMING = {
  unbondingDelayMs: 21 * DAY,
  evidenceMaxAgeMs: 14 * DAY,
  vetoWindowMs: 2 * DAY,
  samplerDetectionWindowMs: DAY,
} as const;

export { DEFAULT_PENALTY_PARAMS };

/** The infraction window a time falls in, per kind: the unit of "at most one penalty". */
export function infractionWindow(p: PenaltyParams, kind: keyof PenaltyParams["windowMs"], atMs: number): number {
  return Math.floor(atMs / p.windowMs[kind]);
}
