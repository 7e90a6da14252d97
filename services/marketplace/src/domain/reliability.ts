/**
 * The reliability score matching uses (filter `min_reliability`, 0.25 of the score), from what
 * the DA sampler publishes about a provider:
 *
 * - no reputation published yet: the prior 0.5 (Beta(1, 1)'s mean);
 * - otherwise the Beta reputation's posterior mean α / (α + β) (samples passed and failed,
 *   with forgetting: `deai.da.reputation_updated`);
 * - halved while the quorum has proven at least one of its slots unavailable
 *   (`deai.da.provider_availability_changed` to UNAVAILABLE), restored when the last one clears.
 *
 * Pure; the store keeps the inputs (`provider_reputation`) and writes the result to `providers`.
 */
export const PRIOR_RELIABILITY = 0.5;

export interface ReputationInputs {
  /** Beta posterior mean in [0, 1]; null = nothing published yet. */
  readonly mean: number | null;
  readonly unavailable: boolean;
}

export function reliabilityOf(r: ReputationInputs): number {
  const base = r.mean === null || !Number.isFinite(r.mean) ? PRIOR_RELIABILITY : Math.min(1, Math.max(0, r.mean));
  return r.unavailable ? base / 2 : base;
}
