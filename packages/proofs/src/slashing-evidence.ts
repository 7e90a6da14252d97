/**
 * Slashing evidence: one verifier per kind, pure, so the slashing service, `deai slash verify`
 * and any third party decide the same way whether evidence proves what it claims. Each verifier
 * checks every signature it rests on, derives the accused provider and the infraction time from
 * the signed statements (never from the submitter), and throws ProofError naming the first
 * problem. The evidence id (`evidenceId`) hashes the signed claims, not the signature sets or
 * their order, so a re-signed, reordered or repeated copy is the same evidence.
 *
 * Kinds (predicates.ts documents every statement they carry):
 * - unavailability: a DA sampler `recheck` sampling attestation (sampling-attestation.ts) with
 *   verdict unavailable, signed by at least the quorum of distinct known samplers; the trigger's
 *   stripe must be one its sampler was due to challenge in that round (challenge derivation).
 * - equivocation: two different claims (issuedAt aside) signed by the accused for one slot, of
 *   an allow-listed predicate type (EQUIVOCATION_PREDICATE_TYPES: a usage report's lease and
 *   epoch, a contribution's job/round/group).
 * - lease breach: an evidence/v1 `lease-breach` statement signed by a known operator and
 *   countersigned by a trusted countersigner (trust.countersigners, neither the operator nor the
 *   provider), naming enough missed heartbeats.
 * - invalid contribution: the provider-signed training-contribution/v1 statement and a known
 *   checker's evidence/v1 `spot-check` statement naming its digest with a different recomputed
 *   update digest.
 */
import { sha256 } from "@noble/hashes/sha2.js";

import { dsseVerify, type DsseEnvelope } from "./dsse.js";
import { hexEncode, hexDecode, utf8Encode } from "./encoding.js";
import { ProofError } from "./errors.js";
import { IN_TOTO_PAYLOAD_TYPE, parseStatementFrame, type Statement } from "./in-toto.js";
import { PredicateTypes } from "./predicates.js";
import { verifySamplingAttestation } from "./sampling-attestation.js";
import { challengeStripes } from "./sampling.js";

export type EvidenceKindName = "unavailability" | "equivocation" | "lease-breach" | "invalid-contribution";

export const EVIDENCE_KINDS: readonly EvidenceKindName[] = ["unavailability", "equivocation", "lease-breach", "invalid-contribution"];

/** Kinds a signature alone proves (cannot be vetoed) vs kinds that rest on someone's judgement. */
export function isObjectiveKind(kind: EvidenceKindName): boolean {
  return kind === "unavailability" || kind === "equivocation";
}

/** Liveness kinds: the ones the liveness guard may suspend, and that jail. */
export function isLivenessKind(kind: EvidenceKindName): boolean {
  return kind === "unavailability" || kind === "lease-breach";
}

/** Evidence as submitted: its kind and the envelopes it rests on. */
export type EvidenceInput =
  | { readonly kind: "unavailability"; readonly attestation: DsseEnvelope }
  | { readonly kind: "equivocation"; readonly first: DsseEnvelope; readonly second: DsseEnvelope }
  | { readonly kind: "lease-breach"; readonly leaseId: string; readonly attestations: readonly DsseEnvelope[] }
  | {
      readonly kind: "invalid-contribution";
      readonly jobId: string;
      readonly contribution: DsseEnvelope;
      readonly spotCheck: DsseEnvelope;
    };

/** Whom a verifier trusts beyond the accused's own key. */
export interface EvidenceTrust {
  /** Known DA sampler actor ids. */
  readonly samplers: readonly string[];
  /** Distinct sampler signatures an unavailability attestation needs (at least the attestation's own threshold is also required). */
  readonly quorumThreshold: number;
  /** Operators whose lease-breach attestations count. */
  readonly operators: readonly string[];
  /** Keys whose countersignature on a lease-breach attestation counts (tenants' monitors, operator keys; never the accused). */
  readonly countersigners: readonly string[];
  /** Checkers whose spot checks count. */
  readonly checkers: readonly string[];
  /** Fewest missed heartbeats that make a lease breach. */
  readonly minMissedHeartbeats: number;
}

/** What a verifier established. */
export interface VerifiedEvidence {
  readonly evidenceId: string;
  readonly kind: EvidenceKindName;
  /** The accused provider's actor id. */
  readonly provider: string;
  /** Milliseconds since the epoch, from the signed statements. */
  readonly infractionAtMs: number;
  /** For equivocation: the earlier statement's issuedAt (the max age applies to every statement the evidence rests on). */
  readonly earliestAtMs?: number;
  /** For unavailability: distinct sampler signatures, and the quorum's size (policy.samplers). */
  readonly signers?: number;
  readonly quorumSize?: number;
  /** For unavailability: the dataset and slot (the repair share is for whoever rebuilds it). */
  readonly datasetId?: string;
  readonly slot?: number;
  /** One line saying what was proven. */
  readonly summary: string;
}

function fail(message: string): never {
  throw new ProofError("invalid-argument", message);
}

const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

function timeMs(v: unknown, what: string): number {
  if (typeof v !== "string" || !TIME.test(v)) fail(`${what} must be an RFC 3339 UTC time`);
  const ms = Date.parse(v);
  if (!Number.isFinite(ms)) fail(`${what} is not a valid time`);
  return ms;
}

function str(v: unknown, what: string): string {
  if (typeof v !== "string" || v === "") fail(`${what} is missing or not a string`);
  return v;
}

function int(v: unknown, what: string, min = 0): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) fail(`${what} must be an integer ≥ ${min}`);
  return v;
}

/** Deepest nesting canonicalJson accepts: statements are shallow; deeper input is refused, not a stack overflow. */
export const MAX_JSON_DEPTH = 64;

/** JSON with object keys sorted: two predicates are the same claim exactly when these agree. */
export function canonicalJson(v: unknown, depth = 0): string {
  if (depth > MAX_JSON_DEPTH) fail(`statement nests deeper than ${MAX_JSON_DEPTH} levels`);
  if (Array.isArray(v)) return `[${v.map((x) => canonicalJson(x, depth + 1)).join(",")}]`;
  if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .filter((k) => o[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k], depth + 1)}`)
      .join(",")}}`;
  }
  return JSON.stringify(v);
}

function payloadHash(e: DsseEnvelope): string {
  return hexEncode(sha256(e.payload));
}

/**
 * The evidence id: lowercase hex SHA-256 over the kind and the SHA-256 of each signed payload
 * (sorted where order carries no meaning: the two statements of an equivocation, a lease
 * breach's attestations). Signatures are left out: a re-signed copy is the same evidence.
 */
export function evidenceId(e: EvidenceInput): string {
  let parts: string[];
  switch (e.kind) {
    case "unavailability":
      parts = [payloadHash(e.attestation)];
      break;
    case "equivocation":
      parts = [payloadHash(e.first), payloadHash(e.second)].sort();
      break;
    case "lease-breach":
      parts = [e.leaseId, ...e.attestations.map(payloadHash).sort()];
      break;
    case "invalid-contribution":
      parts = [e.jobId, payloadHash(e.contribution), payloadHash(e.spotCheck)];
      break;
  }
  return hexEncode(sha256(utf8Encode(`deai-evidence/v1\n${e.kind}\n${parts.join("\n")}`)!));
}

function statementOfEnvelope(e: DsseEnvelope, what: string): Statement<Record<string, unknown>> {
  if (e.payloadType !== IN_TOTO_PAYLOAD_TYPE) fail(`${what}: payloadType must be ${IN_TOTO_PAYLOAD_TYPE}`);
  try {
    return parseStatementFrame(e.payload);
  } catch (err) {
    fail(`${what}: ${(err as Error).message}`);
  }
}

function signersOf(e: DsseEnvelope, what: string): readonly string[] {
  try {
    return dsseVerify(e, { expectedPayloadType: IN_TOTO_PAYLOAD_TYPE }).signers;
  } catch (err) {
    throw new ProofError((err as ProofError).code ?? "invalid-signature", `${what}: ${(err as Error).message}`);
  }
}

/**
 * The predicate types whose statements a provider signs once per slot: only two of these can
 * equivocate. Any other statement (a generic `slot` field included) proves nothing by conflicting.
 */
export const EQUIVOCATION_PREDICATE_TYPES: readonly string[] = [PredicateTypes.usageReport, PredicateTypes.trainingContribution];

/** The slot a provider statement speaks for: two different statements for one slot are equivocation. */
export function slotKeyOf(predicateType: string, p: Record<string, unknown>): string {
  if (predicateType === PredicateTypes.usageReport) return `lease:${str(p.leaseId, "leaseId")}/epoch:${int(p.epoch, "epoch")}`;
  if (predicateType === PredicateTypes.trainingContribution)
    return `job:${str(p.jobId, "jobId")}/round:${int(p.round, "round")}/group:${int(p.group, "group")}`;
  fail(`predicate type ${predicateType} is not one equivocation applies to (${EQUIVOCATION_PREDICATE_TYPES.join(", ")})`);
}

/**
 * When a provider statement was made, for the max age: a usage report (usage-report/v1 has no
 * issuedAt) speaks at its periodEnd, the earliest it can honestly be signed; other statements
 * at their issuedAt (a usage report that carries one and no periodEnd, too).
 */
function claimTimeMs(predicateType: string, p: Record<string, unknown>, which: string): number {
  if (predicateType === PredicateTypes.usageReport && p.periodEnd !== undefined) return timeMs(p.periodEnd, `${which} periodEnd`);
  return timeMs(p.issuedAt, `${which} issuedAt`);
}

/** The claim a statement makes, without its issue time: re-signing the same claim later is not equivocation. */
function claimOf(p: Record<string, unknown>): string {
  return canonicalJson({ ...p, issuedAt: undefined });
}

function verifyUnavailability(attestation: DsseEnvelope, trust: EvidenceTrust): Omit<VerifiedEvidence, "evidenceId"> {
  const v = verifySamplingAttestation(attestation, { samplers: trust.samplers, quorumThreshold: trust.quorumThreshold });
  const p = v.predicate;
  if (p.kind !== "recheck") fail("unavailability evidence must be a quorum re-check attestation, not rounds");
  if (p.verdict !== "unavailable") fail("the attestation's verdict is available: no unavailability to punish");
  if (v.signers.length < p.policy.quorumThreshold)
    throw new ProofError("witness-quorum", `the attestation needs ${p.policy.quorumThreshold} sampler signatures, has ${v.signers.length}`);
  const t = p.trigger!;
  if (!trust.samplers.includes(t.sampler)) fail(`the trigger's sampler ${t.sampler} is not a known sampler`);
  const due = challengeStripes({
    seed: { checkpointSize: t.checkpointSize, checkpointRoot: hexDecode(t.checkpointRoot)! },
    samplerId: t.sampler,
    shardRoot: hexDecode(p.shardRoot)!,
    slot: p.slot,
    round: t.round,
    stripes: p.stripes,
    samples: t.samples,
  });
  if (!due.includes(t.stripe))
    fail(`the trigger's stripe ${t.stripe} was not due for sampler ${t.sampler} in round ${t.round} (challenge derivation)`);
  return {
    kind: "unavailability",
    provider: p.provider,
    infractionAtMs: timeMs(p.issuedAt, "attestation issuedAt"),
    signers: v.signers.length,
    quorumSize: p.policy.samplers,
    datasetId: p.datasetId,
    slot: p.slot,
    summary: `${v.signers.length} samplers attest dataset ${p.datasetId} slot ${p.slot} unavailable (${p.samplesFailed} stripes)`,
  };
}

function verifyEquivocation(first: DsseEnvelope, second: DsseEnvelope): Omit<VerifiedEvidence, "evidenceId"> {
  const a = statementOfEnvelope(first, "first");
  const b = statementOfEnvelope(second, "second");
  if (a.predicateType !== b.predicateType) fail("the two statements have different predicate types: they do not conflict");
  const pa = a.predicate ?? {};
  const pb = b.predicate ?? {};
  const provider = str(pa.provider, "first predicate provider");
  if (pb.provider !== provider) fail("the two statements name different providers");
  const ka = slotKeyOf(a.predicateType, pa);
  const kb = slotKeyOf(b.predicateType, pb);
  if (ka !== kb) fail(`the statements are for different slots (${ka} vs ${kb})`);
  if (claimOf(pa) === claimOf(pb)) fail("the two statements make the same claim (issuedAt aside): no equivocation");
  if (!signersOf(first, "first").includes(provider)) throw new ProofError("no-verified-signature", "first is not signed by its provider");
  if (!signersOf(second, "second").includes(provider))
    throw new ProofError("no-verified-signature", "second is not signed by its provider");
  const ta = claimTimeMs(a.predicateType, pa, "first");
  const tb = claimTimeMs(b.predicateType, pb, "second");
  return {
    kind: "equivocation",
    provider,
    infractionAtMs: Math.max(ta, tb),
    earliestAtMs: Math.min(ta, tb),
    summary: `two different ${a.predicateType} statements for ${ka}`,
  };
}

function verifyLeaseBreach(
  leaseId: string,
  attestations: readonly DsseEnvelope[],
  trust: EvidenceTrust,
): Omit<VerifiedEvidence, "evidenceId"> {
  if (attestations.length !== 1) fail("lease breach evidence carries exactly one attestation (operator-signed, countersigned)");
  const env = attestations[0]!;
  const st = statementOfEnvelope(env, "attestation");
  if (st.predicateType !== PredicateTypes.evidence) fail(`attestation predicateType must be ${PredicateTypes.evidence}`);
  const p = st.predicate ?? {};
  if (p.kind !== "lease-breach") fail("attestation kind must be lease-breach");
  if (p.leaseId !== leaseId) fail("attestation is for another lease");
  const provider = str(p.provider, "provider");
  const operator = str(p.operator, "operator");
  if (!trust.operators.includes(operator)) fail(`operator ${operator} is not a known operator`);
  const from = timeMs(p.missedFrom, "missedFrom");
  const until = timeMs(p.missedUntil, "missedUntil");
  const interval = int(p.heartbeatIntervalMs, "heartbeatIntervalMs", 1);
  const missed = int(p.missedHeartbeats, "missedHeartbeats", 1);
  if (until <= from) fail("missedUntil must be after missedFrom");
  if (missed > Math.floor((until - from) / interval)) fail(`${missed} heartbeats cannot be missed in ${until - from} ms at ${interval} ms`);
  if (missed < trust.minMissedHeartbeats) fail(`${missed} missed heartbeats is below the breach threshold ${trust.minMissedHeartbeats}`);
  const signers = signersOf(env, "attestation");
  if (!signers.includes(operator)) throw new ProofError("no-verified-signature", "attestation is not signed by its operator");
  // A second key only counts when it is a trusted countersigner: a throwaway key would let one operator breach alone.
  if (!signers.some((s) => s !== operator && s !== provider && trust.countersigners.includes(s)))
    throw new ProofError(
      "no-verified-signature",
      `attestation is not countersigned by a trusted countersigner (signed by ${signers.join(", ")}; the operator and the provider do not count)`,
    );
  return { kind: "lease-breach", provider, infractionAtMs: until, summary: `lease ${leaseId}: ${missed} heartbeats missed` };
}

function verifyInvalidContribution(
  jobId: string,
  contribution: DsseEnvelope,
  spotCheck: DsseEnvelope,
  trust: EvidenceTrust,
): Omit<VerifiedEvidence, "evidenceId"> {
  const c = statementOfEnvelope(contribution, "contribution");
  if (c.predicateType !== PredicateTypes.trainingContribution)
    fail(`contribution predicateType must be ${PredicateTypes.trainingContribution}`);
  const cp = c.predicate ?? {};
  const provider = str(cp.provider, "contribution provider");
  if (cp.jobId !== jobId) fail("contribution is for another job");
  const updateDigest = str(cp.updateDigest, "contribution updateDigest");
  const s = statementOfEnvelope(spotCheck, "spot check");
  if (s.predicateType !== PredicateTypes.evidence) fail(`spot check predicateType must be ${PredicateTypes.evidence}`);
  const sp = s.predicate ?? {};
  if (sp.kind !== "spot-check") fail("spot check kind must be spot-check");
  const checker = str(sp.checker, "spot check checker");
  if (!trust.checkers.includes(checker)) fail(`checker ${checker} is not a known checker`);
  if (sp.contribution !== payloadHash(contribution)) fail("spot check does not name this contribution (sha256 of its payload)");
  const recomputed = str(sp.recomputedDigest, "spot check recomputedDigest");
  if (recomputed === updateDigest) fail("the recomputation agrees with the contribution: nothing invalid");
  if (!signersOf(contribution, "contribution").includes(provider))
    throw new ProofError("no-verified-signature", "contribution is not signed by its provider");
  if (!signersOf(spotCheck, "spot check").includes(checker))
    throw new ProofError("no-verified-signature", "spot check is not signed by its checker");
  return {
    kind: "invalid-contribution",
    provider,
    infractionAtMs: timeMs(cp.issuedAt, "contribution issuedAt"),
    summary: `job ${jobId} round ${String(cp.round)}: update ${updateDigest} recomputes to ${recomputed}`,
  };
}

/** Verifies evidence of any kind; throws ProofError naming what does not hold. */
export function verifyEvidence(e: EvidenceInput, trust: EvidenceTrust): VerifiedEvidence {
  let v: Omit<VerifiedEvidence, "evidenceId">;
  switch (e.kind) {
    case "unavailability":
      v = verifyUnavailability(e.attestation, trust);
      break;
    case "equivocation":
      v = verifyEquivocation(e.first, e.second);
      break;
    case "lease-breach":
      v = verifyLeaseBreach(e.leaseId, e.attestations, trust);
      break;
    case "invalid-contribution":
      v = verifyInvalidContribution(e.jobId, e.contribution, e.spotCheck, trust);
      break;
    default:
      fail(`unknown evidence kind ${(e as { kind: unknown }).kind as string}`);
  }
  return { evidenceId: evidenceId(e), ...v };
}

/** The statement bytes of an operator's lease-breach attestation (to sign by the operator, then countersign). */
export function leaseBreachPayload(p: {
  leaseId: string;
  provider: string;
  operator: string;
  missedFrom: string;
  missedUntil: string;
  heartbeatIntervalMs: number;
  missedHeartbeats: number;
}): Uint8Array {
  return utf8Encode(
    JSON.stringify({
      _type: "https://in-toto.io/Statement/v1",
      subject: [{ name: `lease/${p.leaseId}`, digest: { sha256: hexEncode(sha256(utf8Encode(p.leaseId)!)) } }],
      predicateType: PredicateTypes.evidence,
      predicate: { kind: "lease-breach", ...p },
    }),
  )!;
}

/** The statement bytes of a worker's training contribution. */
export function contributionPayload(p: {
  jobId: string;
  round: number;
  group: number;
  provider: string;
  updateDigest: string;
  issuedAt: string;
}): Uint8Array {
  return utf8Encode(
    JSON.stringify({
      _type: "https://in-toto.io/Statement/v1",
      subject: [{ name: `update/${p.jobId}/${p.round}/${p.group}`, digest: { sha256: p.updateDigest } }],
      predicateType: PredicateTypes.trainingContribution,
      predicate: p,
    }),
  )!;
}

/** The statement bytes of a checker's spot check of `contribution` (the contribution envelope's payload). */
export function spotCheckPayload(p: {
  jobId: string;
  round: number;
  group: number;
  provider: string;
  checker: string;
  contribution: Uint8Array;
  recomputedDigest: string;
  issuedAt: string;
}): Uint8Array {
  const contribution = hexEncode(sha256(p.contribution));
  return utf8Encode(
    JSON.stringify({
      _type: "https://in-toto.io/Statement/v1",
      subject: [{ name: `contribution/${p.jobId}/${p.round}/${p.group}`, digest: { sha256: contribution } }],
      predicateType: PredicateTypes.evidence,
      predicate: { ...p, kind: "spot-check", contribution },
    }),
  )!;
}
