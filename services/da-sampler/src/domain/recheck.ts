import type { AttestedPolicy, AttestedRound, RecheckTrigger, SamplingAttestationPredicate } from "@deai/proofs";
import { confidenceOf } from "@deai/proofs";

/** What every attestation of a slot names. */
export interface SlotRef {
  readonly datasetId: string;
  readonly contentDigest: string;
  readonly shardRoot: string;
  readonly provider: string;
  readonly slot: number;
  readonly stripes: number;
}

/**
 * The re-check statement for a verdict, built field by field in one fixed order, so every
 * sampler that reaches the same verdict on the same trigger produces the same bytes.
 */
export function recheckPredicate(
  ref: SlotRef,
  policy: AttestedPolicy,
  trigger: RecheckTrigger,
  rechecked: readonly number[],
  verdict: "available" | "unavailable",
): SamplingAttestationPredicate {
  const n = rechecked.length;
  return {
    kind: "recheck",
    datasetId: ref.datasetId,
    contentDigest: ref.contentDigest,
    shardRoot: ref.shardRoot,
    provider: ref.provider,
    slot: ref.slot,
    stripes: ref.stripes,
    policy: canonicalPolicy(policy),
    verdict,
    confidence: confidenceOf(ref.stripes, policy.missingFraction, [Math.min(trigger.samples, ref.stripes)]),
    samplesOk: verdict === "available" ? n : 0,
    samplesFailed: verdict === "unavailable" ? n : 0,
    issuedAt: trigger.sampledAt,
    trigger: {
      sampler: trigger.sampler,
      round: trigger.round,
      checkpointSize: trigger.checkpointSize,
      checkpointRoot: trigger.checkpointRoot,
      samples: trigger.samples,
      stripe: trigger.stripe,
      outcome: trigger.outcome,
      sampledAt: trigger.sampledAt,
    },
    recheckedStripes: [...rechecked].sort((a, b) => a - b),
  };
}

/** A `rounds` statement over one sampler's rounds on a slot (compact: stripes are recomputed). */
export function roundsPredicate(
  ref: SlotRef,
  policy: AttestedPolicy,
  sampler: string,
  rounds: readonly AttestedRound[],
  issuedAt: string,
): SamplingAttestationPredicate {
  const sorted = [...rounds].sort((a, b) => a.round - b.round);
  let failed = 0;
  let total = 0;
  for (const r of sorted) {
    failed += r.failures.length;
    total += Math.min(r.samples, ref.stripes);
  }
  return {
    kind: "rounds",
    datasetId: ref.datasetId,
    contentDigest: ref.contentDigest,
    shardRoot: ref.shardRoot,
    provider: ref.provider,
    slot: ref.slot,
    stripes: ref.stripes,
    policy: canonicalPolicy(policy),
    verdict: failed > 0 ? "unavailable" : "available",
    confidence: confidenceOf(
      ref.stripes,
      policy.missingFraction,
      sorted.map((r) => Math.min(r.samples, ref.stripes)),
    ),
    samplesOk: total - failed,
    samplesFailed: failed,
    issuedAt,
    sampler,
    rounds: sorted.map((r) => ({
      round: r.round,
      checkpointSize: r.checkpointSize,
      checkpointRoot: r.checkpointRoot,
      samples: r.samples,
      failures: [...r.failures].sort((a, b) => a.stripe - b.stripe).map((f) => ({ stripe: f.stripe, outcome: f.outcome })),
    })),
  };
}

function canonicalPolicy(p: AttestedPolicy): AttestedPolicy {
  return {
    missingFraction: p.missingFraction,
    epsilon: p.epsilon,
    windowMs: p.windowMs,
    roundIntervalMs: p.roundIntervalMs,
    samplers: p.samplers,
    auditBudget: p.auditBudget,
    deadlineMs: p.deadlineMs,
    quorumThreshold: p.quorumThreshold,
  };
}

/**
 * A voter's verdict on re-read stripes: `unavailable` only when every stripe failed and a
 * control read of another provider passed (a sampler cut off from the providers must not
 * confirm anything), `available` when every stripe passed, otherwise no vote.
 */
export function voteVerdict(outcomes: readonly string[], controlOk: boolean): "available" | "unavailable" | undefined {
  if (outcomes.length === 0) return undefined;
  if (outcomes.every((o) => o === "ok")) return "available";
  if (outcomes.every((o) => o !== "ok") && controlOk) return "unavailable";
  return undefined;
}
