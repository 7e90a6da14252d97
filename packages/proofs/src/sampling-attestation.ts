/**
 * The sampling attestation (predicate `https://deai.dev/sampling-attestation/v1`, predicates.ts)
 * and the Beta reputation computed from attestations, both pure so the da-sampler, the CLI and
 * any third party compute them the same way.
 *
 * Two kinds share one predicate:
 * - `rounds`: one sampler's passing (and failing) rounds on one (dataset, slot), compactly: per
 *   round only its number, the checkpoint it derived from, how many stripes it challenged and
 *   the stripes that failed. The challenged stripes are recomputed from that (sampling.ts), so
 *   a verifier sees that no stripe was cherry-picked. Signed by that sampler alone: availability
 *   on record, never evidence against anyone.
 * - `recheck`: the quorum's re-check of the stripes one sampler saw fail. Its payload is a
 *   deterministic function of the trigger (which sampler, round, checkpoint, stripe) and the
 *   verdict, so every sampler that independently re-reads the stripes and reaches the same
 *   verdict signs the same bytes. With verdict `unavailable` and at least `quorumThreshold`
 *   distinct known samplers' signatures it is evidence of unavailability.
 */
import { sha256 } from "@noble/hashes/sha2.js";

import { dsseVerify, type DsseEnvelope } from "./dsse.js";
import { hexDecode, hexEncode } from "./encoding.js";
import { ProofError } from "./errors.js";
import { IN_TOTO_PAYLOAD_TYPE, parseStatementFrame, statementBytes, statementOf, type Statement } from "./in-toto.js";
import { PredicateTypes } from "./predicates.js";
import { challengeStripes, confidenceOf, type SamplingPolicyParams } from "./sampling.js";

/** Outcome of one sampled shard, as the predicate writes it. */
export type SampleOutcomeName = "ok" | "missing" | "invalid" | "timeout" | "late" | "error";

const OUTCOMES = new Set<SampleOutcomeName>(["ok", "missing", "invalid", "timeout", "late", "error"]);

/** The policy as attested (the sampling parameters plus deadline and quorum). */
export interface AttestedPolicy extends SamplingPolicyParams {
  /** A shard read answered later than this is a fault ("late"). */
  readonly deadlineMs: number;
  /** Signatures an `unavailable` re-check needs to be evidence. */
  readonly quorumThreshold: number;
}

/** One round of a `rounds` attestation. */
export interface AttestedRound {
  readonly round: number;
  readonly checkpointSize: number;
  /** Lowercase hex, 32 bytes. */
  readonly checkpointRoot: string;
  /** Distinct stripes challenged. */
  readonly samples: number;
  /** Challenged stripes that did not pass. */
  readonly failures: readonly { readonly stripe: number; readonly outcome: SampleOutcomeName }[];
}

/** The sample that started a re-check. */
export interface RecheckTrigger {
  readonly sampler: string;
  readonly round: number;
  readonly checkpointSize: number;
  readonly checkpointRoot: string;
  /** Stripes challenged in that round. */
  readonly samples: number;
  readonly stripe: number;
  readonly outcome: SampleOutcomeName;
  /** RFC 3339. */
  readonly sampledAt: string;
}

export interface SamplingAttestationPredicate {
  readonly kind: "rounds" | "recheck";
  readonly datasetId: string;
  /** Lowercase hex of the dataset's contentDigest (sha256). */
  readonly contentDigest: string;
  /** Lowercase hex of the dataset's shardRoot. */
  readonly shardRoot: string;
  /** Actor id of the provider holding the slot. */
  readonly provider: string;
  readonly slot: number;
  /** Stripes of the dataset. */
  readonly stripes: number;
  readonly policy: AttestedPolicy;
  readonly verdict: "available" | "unavailable";
  /** Probability that a provider missing a fraction ≥ f of the slot would have been caught by these samples. */
  readonly confidence: number;
  readonly samplesOk: number;
  readonly samplesFailed: number;
  /** RFC 3339: the last round's start, or the trigger's time for a re-check. */
  readonly issuedAt: string;
  /** `rounds`: the sampler that took them. */
  readonly sampler?: string;
  readonly rounds?: readonly AttestedRound[];
  /** `recheck`: what started it, and the stripes re-read. */
  readonly trigger?: RecheckTrigger;
  readonly recheckedStripes?: readonly number[];
}

/** An attestation statement. */
export type SamplingAttestationStatement = Statement<SamplingAttestationPredicate>;

/** The statement of a predicate: subjects are the shardRoot (named after the dataset) and the contentDigest. */
export function samplingAttestationStatement(p: SamplingAttestationPredicate): SamplingAttestationStatement {
  return statementOf(
    PredicateTypes.samplingAttestation,
    [
      { name: `dataset/${p.datasetId}/shard-root`, digest: { sha256: p.shardRoot } },
      { name: `dataset/${p.datasetId}`, digest: { sha256: p.contentDigest } },
    ],
    p,
  );
}

/** The payload bytes every signer signs. */
export function samplingAttestationPayload(p: SamplingAttestationPredicate): Uint8Array {
  return statementBytes(samplingAttestationStatement(p));
}

/** An attestation's id: lowercase hex SHA-256 of its payload (signature sets may differ; the claim does not). */
export function attestationId(payload: Uint8Array): string {
  return hexEncode(sha256(payload));
}

const HEX32 = /^[0-9a-f]{64}$/;
const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

function fail(message: string): never {
  throw new ProofError("invalid-argument", `sampling attestation: ${message}`);
}

function int(v: unknown, what: string, min = 0): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) fail(`${what} must be an integer ≥ ${min}`);
  return v;
}

function str(v: unknown, what: string, re?: RegExp): string {
  if (typeof v !== "string" || v === "" || (re && !re.test(v))) fail(`${what} is missing or malformed`);
  return v;
}

function num(v: unknown, what: string, lo: number, hi: number): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v < lo || v > hi) fail(`${what} must be a number in [${lo}, ${hi}]`);
  return v;
}

function outcome(v: unknown, what: string): SampleOutcomeName {
  if (typeof v !== "string" || !OUTCOMES.has(v as SampleOutcomeName)) fail(`${what} must be one of ${[...OUTCOMES].join(", ")}`);
  return v as SampleOutcomeName;
}

/**
 * Parses and checks a statement's bytes as a sampling attestation: the frame, the predicate's
 * fields, the subjects, and the consistency of counts, confidence and (for `rounds`) the failed
 * stripes against the recomputed challenges. Throws ProofError naming the first problem.
 */
export function parseSamplingAttestation(payload: Uint8Array): SamplingAttestationPredicate {
  const st = parseStatementFrame(payload);
  if (st.predicateType !== PredicateTypes.samplingAttestation)
    fail(`predicateType must be ${PredicateTypes.samplingAttestation}, got ${st.predicateType}`);
  const p = st.predicate ?? {};
  const kind = p.kind;
  if (kind !== "rounds" && kind !== "recheck") fail("kind must be rounds or recheck");
  const stripes = int(p.stripes, "stripes", 1);
  const pol = (p.policy ?? {}) as Record<string, unknown>;
  const policy: AttestedPolicy = {
    missingFraction: num(pol.missingFraction, "policy.missingFraction", Number.MIN_VALUE, 1 - Number.EPSILON),
    epsilon: num(pol.epsilon, "policy.epsilon", Number.MIN_VALUE, 1 - Number.EPSILON),
    windowMs: int(pol.windowMs, "policy.windowMs", 1),
    roundIntervalMs: int(pol.roundIntervalMs, "policy.roundIntervalMs", 1),
    samplers: int(pol.samplers, "policy.samplers", 1),
    auditBudget: num(pol.auditBudget, "policy.auditBudget", Number.MIN_VALUE, Number.MAX_VALUE),
    deadlineMs: int(pol.deadlineMs, "policy.deadlineMs", 1),
    quorumThreshold: int(pol.quorumThreshold, "policy.quorumThreshold", 1),
  };
  const verdict = p.verdict;
  if (verdict !== "available" && verdict !== "unavailable") fail("verdict must be available or unavailable");
  const base = {
    kind,
    datasetId: str(p.datasetId, "datasetId"),
    contentDigest: str(p.contentDigest, "contentDigest", HEX32),
    shardRoot: str(p.shardRoot, "shardRoot", HEX32),
    provider: str(p.provider, "provider"),
    slot: int(p.slot, "slot"),
    stripes,
    policy,
    verdict,
    confidence: num(p.confidence, "confidence", 0, 1),
    samplesOk: int(p.samplesOk, "samplesOk"),
    samplesFailed: int(p.samplesFailed, "samplesFailed"),
    issuedAt: str(p.issuedAt, "issuedAt", TIME),
  } as const;
  const subjects = st.subject.map((s) => s.digest?.sha256);
  if (!subjects.includes(base.shardRoot) || !subjects.includes(base.contentDigest))
    fail("subjects must name the shardRoot and the contentDigest (sha256)");
  let out: SamplingAttestationPredicate;
  if (kind === "rounds") {
    const sampler = str(p.sampler, "sampler");
    if (!Array.isArray(p.rounds) || p.rounds.length === 0) fail("rounds must be a non-empty array");
    const rounds: AttestedRound[] = p.rounds.map((r: unknown, i) => {
      const o = (r ?? {}) as Record<string, unknown>;
      const samples = int(o.samples, `rounds[${i}].samples`, 1);
      if (!Array.isArray(o.failures)) fail(`rounds[${i}].failures must be an array`);
      return {
        round: int(o.round, `rounds[${i}].round`),
        checkpointSize: int(o.checkpointSize, `rounds[${i}].checkpointSize`),
        checkpointRoot: str(o.checkpointRoot, `rounds[${i}].checkpointRoot`, HEX32),
        samples,
        failures: o.failures.map((f: unknown, j) => {
          const x = (f ?? {}) as Record<string, unknown>;
          const oc = outcome(x.outcome, `rounds[${i}].failures[${j}].outcome`);
          if (oc === "ok") fail(`rounds[${i}].failures[${j}] is ok`);
          return { stripe: int(x.stripe, `rounds[${i}].failures[${j}].stripe`), outcome: oc };
        }),
      };
    });
    const shardRoot = hexDecode(base.shardRoot)!;
    let ok = 0;
    let failed = 0;
    for (const [i, r] of rounds.entries()) {
      if (i > 0 && r.round <= rounds[i - 1]!.round) fail("rounds must be in increasing round order");
      const due = new Set(
        challengeStripes({
          seed: { checkpointSize: r.checkpointSize, checkpointRoot: hexDecode(r.checkpointRoot)! },
          samplerId: sampler,
          shardRoot,
          slot: base.slot,
          round: r.round,
          stripes,
          samples: r.samples,
        }),
      );
      const seen = new Set<number>();
      for (const f of r.failures) {
        if (!due.has(f.stripe)) fail(`round ${r.round}: stripe ${f.stripe} was not due in that round`);
        if (seen.has(f.stripe)) fail(`round ${r.round}: stripe ${f.stripe} is listed twice`);
        seen.add(f.stripe);
      }
      failed += r.failures.length;
      ok += due.size - r.failures.length;
    }
    if (ok !== base.samplesOk || failed !== base.samplesFailed) fail("samplesOk/samplesFailed do not match the rounds");
    if (failed > 0 !== (verdict === "unavailable")) fail("a rounds attestation is unavailable exactly when a sample failed");
    const expected = confidenceOf(
      stripes,
      policy.missingFraction,
      rounds.map((r) => Math.min(r.samples, stripes)),
    );
    if (Math.abs(expected - base.confidence) > 1e-9) fail(`confidence must be ${expected}, got ${base.confidence}`);
    out = { ...base, sampler, rounds };
  } else {
    const t = (p.trigger ?? {}) as Record<string, unknown>;
    const trigger: RecheckTrigger = {
      sampler: str(t.sampler, "trigger.sampler"),
      round: int(t.round, "trigger.round"),
      checkpointSize: int(t.checkpointSize, "trigger.checkpointSize"),
      checkpointRoot: str(t.checkpointRoot, "trigger.checkpointRoot", HEX32),
      samples: int(t.samples, "trigger.samples", 1),
      stripe: int(t.stripe, "trigger.stripe"),
      outcome: outcome(t.outcome, "trigger.outcome"),
      sampledAt: str(t.sampledAt, "trigger.sampledAt", TIME),
    };
    if (trigger.outcome === "ok") fail("a re-check is triggered by a failed sample");
    if (!Array.isArray(p.recheckedStripes) || p.recheckedStripes.length === 0) fail("recheckedStripes must be a non-empty array");
    const rechecked = p.recheckedStripes.map((s: unknown, i) => int(s, `recheckedStripes[${i}]`));
    if (!rechecked.includes(trigger.stripe)) fail("recheckedStripes must include the trigger's stripe");
    if (rechecked.some((s) => s >= stripes)) fail("recheckedStripes must be below stripes");
    const n = rechecked.length;
    if (base.samplesOk !== (verdict === "available" ? n : 0) || base.samplesFailed !== (verdict === "unavailable" ? n : 0))
      fail("samplesOk/samplesFailed must count the re-checked stripes under the verdict");
    if (trigger.sampledAt !== base.issuedAt) fail("a re-check is issued at its trigger's time");
    out = { ...base, trigger, recheckedStripes: rechecked };
  }
  return out;
}

/** What `verifySamplingAttestation` found. */
export interface VerifiedSamplingAttestation {
  readonly id: string;
  readonly predicate: SamplingAttestationPredicate;
  /** Known samplers whose signatures verified. */
  readonly signers: readonly string[];
  /** Whether this attestation is evidence of unavailability (a quorum's `unavailable` re-check). */
  readonly evidence: boolean;
}

/**
 * Verifies an attestation envelope against the known sampler identities: DSSE signatures (a bad
 * one rejects), payload type, the predicate (parseSamplingAttestation), signers all known; a
 * `rounds` attestation signed by its sampler; a `recheck` by at least `quorumThreshold` distinct
 * samplers. Throws ProofError naming what is wrong.
 */
export function verifySamplingAttestation(
  envelope: DsseEnvelope,
  known: { readonly samplers: readonly string[]; readonly quorumThreshold: number },
): VerifiedSamplingAttestation {
  const knownSet = new Set(known.samplers);
  const v = dsseVerify(envelope, { expectedPayloadType: IN_TOTO_PAYLOAD_TYPE });
  const strangers = [...v.unknown, ...v.signers.filter((s) => !knownSet.has(s))];
  if (strangers.length > 0) throw new ProofError("no-verified-signature", `signed by unknown sampler ${strangers[0]}`);
  const predicate = parseSamplingAttestation(envelope.payload);
  if (predicate.kind === "rounds") {
    if (!v.signers.includes(predicate.sampler!))
      throw new ProofError("no-verified-signature", `a rounds attestation must be signed by its sampler ${predicate.sampler}`);
  } else if (v.signers.length < known.quorumThreshold) {
    throw new ProofError(
      "witness-quorum",
      `a re-check needs ${known.quorumThreshold} distinct sampler signatures, has ${v.signers.length}`,
    );
  }
  return {
    id: attestationId(envelope.payload),
    predicate,
    signers: v.signers,
    evidence: predicate.kind === "recheck" && predicate.verdict === "unavailable",
  };
}

/** Parameters of the Beta reputation. */
export interface ReputationParams {
  /** Forgetting per sample outcome, in (0, 1]. @default 0.999 (Storj) */
  readonly lambda: number;
  /** @default 1 */
  readonly priorAlpha: number;
  /** @default 1 */
  readonly priorBeta: number;
}

export const DEFAULT_REPUTATION: ReputationParams = { lambda: 0.999, priorAlpha: 1, priorBeta: 1 };

/** A provider's Beta score. */
export interface Reputation {
  readonly alpha: number;
  readonly beta: number;
  readonly mean: number;
  /** Attestations counted. */
  readonly attestations: number;
}

/**
 * Applies `passes` successes then `failures` failures, one outcome at a time:
 * α ← λα + 1 (pass) or β ← λβ + 1 (failure), the other count decaying by λ too, in closed form
 * (n outcomes of one kind add (1 − λⁿ)/(1 − λ) and scale the other count by λⁿ).
 */
export function applyOutcomes(
  r: { alpha: number; beta: number },
  passes: number,
  failures: number,
  lambda: number,
): { alpha: number; beta: number } {
  const gain = (n: number): number => (lambda === 1 ? n : (1 - lambda ** n) / (1 - lambda));
  let { alpha, beta } = r;
  alpha = alpha * lambda ** passes + gain(passes);
  beta = beta * lambda ** passes;
  beta = beta * lambda ** failures + gain(failures);
  alpha = alpha * lambda ** failures;
  return { alpha, beta };
}

/**
 * Reputation per provider from verified attestations in ledger order (the order fixes the
 * forgetting): a `rounds` attestation adds its passing samples (a lone sampler's failures are
 * not evidence and count for nothing); an evidence attestation adds its failed stripes; an
 * `available` re-check adds nothing (the first failure was not confirmed). The same attestation
 * id is counted once, however many times it was logged.
 */
export function computeReputation(
  attestations: readonly Pick<VerifiedSamplingAttestation, "id" | "predicate" | "evidence">[],
  params: ReputationParams = DEFAULT_REPUTATION,
): Map<string, Reputation> {
  if (!(params.lambda > 0 && params.lambda <= 1)) throw new ProofError("invalid-argument", "lambda must be in (0, 1]");
  const out = new Map<string, { alpha: number; beta: number; attestations: number }>();
  const seen = new Set<string>();
  for (const a of attestations) {
    if (seen.has(a.id)) continue;
    seen.add(a.id);
    const p = a.predicate;
    let passes = 0;
    let failures = 0;
    if (p.kind === "rounds") passes = p.samplesOk;
    else if (a.evidence) failures = p.samplesFailed;
    else continue;
    const cur = out.get(p.provider) ?? { alpha: params.priorAlpha, beta: params.priorBeta, attestations: 0 };
    const next = applyOutcomes(cur, passes, failures, params.lambda);
    out.set(p.provider, { ...next, attestations: cur.attestations + 1 });
  }
  return new Map([...out].map(([k, v]) => [k, { ...v, mean: v.alpha / (v.alpha + v.beta) }]));
}
