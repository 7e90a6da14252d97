/**
 * The slash record (predicate `https://deai.dev/slash-record/v1`, predicates.ts): a
 * self-contained evidence bundle the slashing service signs and anchors in the ledger for every
 * slash it applies or sees vetoed and every jail, release and tombstone. It carries the evidence
 * envelopes, whom the verifier trusted, the parameters, the inputs the service observed and the
 * penalty, so `verifySlashRecord` re-verifies the evidence and recomputes the penalty offline.
 * The inputs that depend on other slashes (prior faults, correlated stake, total stake) are
 * the service's observations; they can be audited against the other records in the ledger.
 */
import { sha256 } from "@noble/hashes/sha2.js";

import { dsseFromJson, dsseToJson, dsseVerify, type DsseEnvelope, type DsseEnvelopeJson } from "./dsse.js";
import { hexEncode } from "./encoding.js";
import { ProofError } from "./errors.js";
import { IN_TOTO_PAYLOAD_TYPE, parseStatementFrame, statementBytes, statementOf } from "./in-toto.js";
import { PredicateTypes } from "./predicates.js";
import { verifyEvidence, type EvidenceInput, type EvidenceKindName, type EvidenceTrust } from "./slashing-evidence.js";
import { computePenalty, type Penalty, type PenaltyInputs, type PenaltyParams } from "./slashing-penalty.js";

export type SlashRecordEvent = "applied" | "vetoed" | "jailed" | "released" | "tombstoned";

/** The JSON form of evidence (envelopes in DSSE JSON). */
export type EvidenceJson =
  | { readonly kind: "unavailability"; readonly attestation: DsseEnvelopeJson }
  | { readonly kind: "equivocation"; readonly first: DsseEnvelopeJson; readonly second: DsseEnvelopeJson }
  | { readonly kind: "lease-breach"; readonly leaseId: string; readonly attestations: readonly DsseEnvelopeJson[] }
  | {
      readonly kind: "invalid-contribution";
      readonly jobId: string;
      readonly contribution: DsseEnvelopeJson;
      readonly spotCheck: DsseEnvelopeJson;
    };

export function evidenceToJson(e: EvidenceInput): EvidenceJson {
  switch (e.kind) {
    case "unavailability":
      return { kind: e.kind, attestation: dsseToJson(e.attestation) };
    case "equivocation":
      return { kind: e.kind, first: dsseToJson(e.first), second: dsseToJson(e.second) };
    case "lease-breach":
      return { kind: e.kind, leaseId: e.leaseId, attestations: e.attestations.map(dsseToJson) };
    case "invalid-contribution":
      return { kind: e.kind, jobId: e.jobId, contribution: dsseToJson(e.contribution), spotCheck: dsseToJson(e.spotCheck) };
  }
}

export function evidenceFromJson(j: EvidenceJson): EvidenceInput {
  switch (j.kind) {
    case "unavailability":
      return { kind: j.kind, attestation: dsseFromJson(j.attestation) };
    case "equivocation":
      return { kind: j.kind, first: dsseFromJson(j.first), second: dsseFromJson(j.second) };
    case "lease-breach":
      return { kind: j.kind, leaseId: j.leaseId, attestations: j.attestations.map(dsseFromJson) };
    case "invalid-contribution":
      return { kind: j.kind, jobId: j.jobId, contribution: dsseFromJson(j.contribution), spotCheck: dsseFromJson(j.spotCheck) };
    default:
      throw new ProofError("invalid-argument", `unknown evidence kind ${(j as { kind: unknown }).kind as string}`);
  }
}

type Jsonified<T> = { readonly [K in keyof T]: NonNullable<T[K]> extends bigint ? string : T[K] };

export interface SlashRecordPredicate {
  readonly event: SlashRecordEvent;
  readonly slashId: string;
  readonly evidenceId: string;
  readonly kind: EvidenceKindName;
  readonly provider: string;
  readonly reporter: string;
  readonly currency: string;
  /** RFC 3339. */
  readonly infractionAt: string;
  readonly proposedAt: string;
  readonly vetoDeadline: string;
  /** RFC 3339: when this event happened. */
  readonly at: string;
  readonly evidence: EvidenceJson;
  readonly trust: EvidenceTrust;
  readonly params: PenaltyParams;
  readonly inputs: Jsonified<PenaltyInputs>;
  readonly penalty: Jsonified<Penalty>;
  /** applied: base units actually taken (the penalty, or less when other slashes left less stake). */
  readonly taken?: string;
  /** jailed: RFC 3339 end of the jail. */
  readonly jailedUntil?: string;
  /** vetoed: the council members whose signed vetoes (veto/v1 envelopes, DSSE JSON) carried it. */
  readonly vetoes?: readonly DsseEnvelopeJson[];
}

function jsonify<T extends object>(o: T): Jsonified<T> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, typeof v === "bigint" ? v.toString() : v])) as Jsonified<T>;
}

/** JSON forms of inputs and penalty (bigints as decimal strings). */
export function penaltyToJson(p: Penalty): Jsonified<Penalty> {
  return jsonify(p);
}
export function inputsToJson(i: PenaltyInputs): Jsonified<PenaltyInputs> {
  return jsonify(i);
}

function big(v: unknown, what: string): bigint {
  if (typeof v !== "string" || !/^(0|[1-9]\d*)$/.test(v)) throw new ProofError("invalid-argument", `${what} must be a decimal string`);
  return BigInt(v);
}

export function inputsFromJson(j: Jsonified<PenaltyInputs>): PenaltyInputs {
  const { sharedInfraStake, ...rest } = j;
  return {
    ...rest,
    stakeAtInfraction: big(j.stakeAtInfraction, "inputs.stakeAtInfraction"),
    correlatedStake: big(j.correlatedStake, "inputs.correlatedStake"),
    ...(sharedInfraStake !== undefined ? { sharedInfraStake: big(sharedInfraStake, "inputs.sharedInfraStake") } : {}),
    totalStake: big(j.totalStake, "inputs.totalStake"),
  };
}

/** The statement bytes of a slash record (subject: the evidence id). */
export function slashRecordPayload(p: SlashRecordPredicate): Uint8Array {
  return statementBytes(
    statementOf(PredicateTypes.slashRecord, [{ name: `evidence/${p.evidenceId}`, digest: { sha256: p.evidenceId } }], p),
  );
}

/** The veto statement a council member signs (predicate veto/v1). */
export function vetoPayload(v: { slashId: string; evidenceId: string; member: string; reason: string }): Uint8Array {
  return statementBytes(statementOf(PredicateTypes.veto, [{ name: `slash/${v.slashId}`, digest: { sha256: v.evidenceId } }], v));
}

/** Parses and checks a veto envelope: signed by `member`, for `slashId`. Returns the reason. */
export function verifyVeto(e: DsseEnvelope, expect: { slashId: string; evidenceId: string }): { member: string; reason: string } {
  const v = dsseVerify(e, { expectedPayloadType: IN_TOTO_PAYLOAD_TYPE });
  const st = parseStatementFrame(e.payload);
  if (st.predicateType !== PredicateTypes.veto)
    throw new ProofError("invalid-argument", `veto predicateType must be ${PredicateTypes.veto}`);
  const p = st.predicate ?? {};
  if (p.slashId !== expect.slashId || p.evidenceId !== expect.evidenceId)
    throw new ProofError("invalid-argument", "the veto statement names another slash");
  if (typeof p.member !== "string" || !v.signers.includes(p.member))
    throw new ProofError("no-verified-signature", "the veto statement is not signed by its member");
  if (typeof p.reason !== "string" || p.reason === "") throw new ProofError("invalid-argument", "the veto statement needs a reason");
  return { member: p.member, reason: p.reason };
}

export interface VerifiedSlashRecord {
  readonly predicate: SlashRecordPredicate;
  /** The service keys that signed the record. */
  readonly signers: readonly string[];
  readonly penalty: Penalty;
  /** One line per check that passed. */
  readonly checks: readonly string[];
}

/** What a slash record is checked against, pinned out of band (never taken from the record itself). */
export interface SlashRecordPins {
  /** The slashing service's actor id: the record must be signed by it. */
  readonly serviceKey: string;
  /** The veto council and its k: a vetoed record needs k distinct members' signed vetoes. Required for vetoed records. */
  readonly council?: { readonly members: readonly string[]; readonly threshold: number };
}

/**
 * Verifies a slash record envelope offline: the service's signature (against the pinned
 * `serviceKey`; a key the envelope names proves nothing by itself), the evidence (re-verified with the record's trust), that it accuses the
 * recorded provider with the recorded id, the penalty recomputed from the recorded parameters
 * and inputs, the amount taken never above the penalty, and for a veto the signed vetoes of at
 * least the pinned council's k distinct members. Throws ProofError on the first failure.
 */
export function verifySlashRecord(envelope: DsseEnvelope, pins: SlashRecordPins): VerifiedSlashRecord {
  const checks: string[] = [];
  if (typeof pins?.serviceKey !== "string" || pins.serviceKey === "")
    throw new ProofError(
      "invalid-argument",
      "the slashing service key must be pinned: a record is only as good as the key it is checked against",
    );
  const v = dsseVerify(envelope, { expectedPayloadType: IN_TOTO_PAYLOAD_TYPE });
  if (!v.signers.includes(pins.serviceKey))
    throw new ProofError("no-verified-signature", `the record is not signed by the slashing service key ${pins.serviceKey}`);
  checks.push(`signed by the pinned service key ${pins.serviceKey}`);
  const st = parseStatementFrame(envelope.payload);
  if (st.predicateType !== PredicateTypes.slashRecord)
    throw new ProofError("invalid-argument", `predicateType must be ${PredicateTypes.slashRecord}`);
  const p = st.predicate as unknown as SlashRecordPredicate;
  const ev = verifyEvidence(evidenceFromJson(p.evidence), p.trust);
  if (ev.evidenceId !== p.evidenceId)
    throw new ProofError("invalid-argument", `evidence id is ${ev.evidenceId}, the record says ${p.evidenceId}`);
  if (ev.provider !== p.provider || ev.kind !== p.kind)
    throw new ProofError("invalid-argument", "the evidence accuses another provider or is of another kind");
  if (new Date(ev.infractionAtMs).toISOString() !== new Date(p.infractionAt).toISOString())
    throw new ProofError("invalid-argument", "the infraction time differs from the evidence's");
  checks.push(`evidence ${ev.evidenceId} verifies: ${ev.summary}`);
  const inputs = inputsFromJson(p.inputs);
  if (inputs.kind !== p.kind) throw new ProofError("invalid-argument", "inputs are for another kind");
  if (ev.signers !== undefined && (inputs.signers !== ev.signers || inputs.quorumSize !== ev.quorumSize))
    throw new ProofError("invalid-argument", "the recorded sampler signatures differ from the attestation's");
  const penalty = computePenalty(p.params, inputs);
  const recomputed = penaltyToJson(penalty);
  for (const [k, want] of Object.entries(recomputed)) {
    const got = (p.penalty as Record<string, unknown>)[k];
    if (got !== want) throw new ProofError("invalid-argument", `penalty ${k}: recomputed ${String(want)}, the record says ${String(got)}`);
  }
  checks.push(`penalty recomputed: ${penalty.fractionBps} bps of ${inputs.stakeAtInfraction} = ${penalty.amount} (${penalty.consequence})`);
  if (p.taken !== undefined && big(p.taken, "taken") > penalty.amount)
    throw new ProofError("invalid-argument", `taken ${p.taken} exceeds the penalty ${penalty.amount}`);
  if (p.event === "vetoed") {
    const council = pins.council;
    if (!council) throw new ProofError("invalid-argument", "a vetoed record is checked against the pinned council and its threshold");
    const members = new Set<string>();
    for (const j of p.vetoes ?? []) {
      const m = verifyVeto(dsseFromJson(j), { slashId: p.slashId, evidenceId: p.evidenceId }).member;
      if (!council.members.includes(m)) throw new ProofError("no-verified-signature", `veto by ${m}, who is not on the pinned council`);
      members.add(m);
    }
    if (members.size < council.threshold)
      throw new ProofError(
        "witness-quorum",
        `vetoed by ${members.size} distinct council member(s); the pinned threshold is ${council.threshold} of ${council.members.length}`,
      );
    checks.push(
      `vetoed by ${members.size} of ${council.members.length} council members (threshold ${council.threshold}): ${[...members].join(", ")}`,
    );
  }
  return { predicate: p, signers: v.signers, penalty, checks };
}

/** Lowercase hex SHA-256 of bytes (slash ids derive from evidence ids). */
export function sha256Hex(bytes: Uint8Array): string {
  return hexEncode(sha256(bytes));
}
