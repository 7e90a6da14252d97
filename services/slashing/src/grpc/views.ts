// The contract's forms of the app's views (deai.slashing.v1), and of incoming evidence. Money
// fields carry base units of the configured currency in `micros` (the currency's base unit is
// its micro-unit), as the slashing events do.
import { create, fromJson } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";

import {
  DsseEnvelopeSchema,
  MoneySchema,
  type DsseEnvelope as DsseEnvelopeProto,
  type Money,
} from "@deai/contracts/deai/common/v1/common_pb";
import { ReceiptSchema } from "@deai/contracts/deai/ledger/v1/ledger_pb";
import {
  EvidenceKind,
  EvidenceSchema,
  EvidenceState,
  ProviderStatus,
  SlashConsequence,
  SlashRecordSchema,
  SlashSchema,
  SlashState,
  StakeSchema,
  UnbondingSchema,
  type Evidence,
  type Slash,
  type Stake,
  type SubmitEvidenceRequest,
} from "@deai/contracts/deai/slashing/v1/slashing_pb";
import { InvalidArgumentError } from "@deai/kit/errors";
import { dsseFromJson, type DsseEnvelope, type DsseEnvelopeJson, type EvidenceInput, type EvidenceKindName } from "@deai/proofs";

import type { EvidenceView, SlashView, StakeView } from "../app/slashing.js";

export const KIND_TO_PROTO: Record<EvidenceKindName, EvidenceKind> = {
  unavailability: EvidenceKind.UNAVAILABILITY,
  equivocation: EvidenceKind.EQUIVOCATION,
  "lease-breach": EvidenceKind.LEASE_BREACH,
  "invalid-contribution": EvidenceKind.INVALID_CONTRIBUTION,
};
export const KIND_FROM_PROTO: Partial<Record<EvidenceKind, EvidenceKindName>> = Object.fromEntries(
  Object.entries(KIND_TO_PROTO).map(([k, v]) => [v, k]),
);
export const STATE_TO_PROTO: Record<SlashView["state"], SlashState> = {
  pending_veto: SlashState.PENDING_VETO,
  vetoed: SlashState.VETOED,
  applied: SlashState.APPLIED,
};
export const STATE_FROM_PROTO: Partial<Record<SlashState, SlashView["state"]>> = Object.fromEntries(
  Object.entries(STATE_TO_PROTO).map(([k, v]) => [v, k]),
);
export const CONSEQUENCE_TO_PROTO: Record<string, SlashConsequence> = {
  none: SlashConsequence.NONE,
  jail: SlashConsequence.JAIL,
  tombstone: SlashConsequence.TOMBSTONE,
};
export const STATUS_TO_PROTO: Record<string, ProviderStatus> = {
  active: ProviderStatus.ACTIVE,
  jailed: ProviderStatus.JAILED,
  tombstoned: ProviderStatus.TOMBSTONED,
};

export const money = (currency: string, v: bigint): Money => create(MoneySchema, { currency, micros: v });

export function envelopeToProto(e: DsseEnvelope): DsseEnvelopeProto {
  return create(DsseEnvelopeSchema, {
    payloadType: e.payloadType,
    payload: e.payload,
    signatures: e.signatures.map((s) => ({ keyid: s.keyid, sig: s.sig })),
  });
}

const jsonEnvelope = (j: DsseEnvelopeJson): DsseEnvelopeProto => envelopeToProto(dsseFromJson(j));

function envelopeFromProto(e: DsseEnvelopeProto | undefined, field: string): DsseEnvelope {
  if (!e) throw new InvalidArgumentError(`${field} is required`, { field });
  if (e.signatures.length === 0) throw new InvalidArgumentError(`${field} has no signatures`, { field });
  return { payloadType: e.payloadType, payload: e.payload, signatures: e.signatures.map((s) => ({ keyid: s.keyid, sig: s.sig })) };
}

/** The submitted evidence in the verifiers' form; a missing part is InvalidArgument naming its field. */
export function evidenceFromRequest(req: SubmitEvidenceRequest): EvidenceInput {
  const ev = req.evidence;
  switch (ev.case) {
    case "unavailability":
      return { kind: "unavailability", attestation: envelopeFromProto(ev.value.attestation, "unavailability.attestation") };
    case "equivocation":
      return {
        kind: "equivocation",
        first: envelopeFromProto(ev.value.first, "equivocation.first"),
        second: envelopeFromProto(ev.value.second, "equivocation.second"),
      };
    case "leaseBreach":
      if (ev.value.leaseId === "") throw new InvalidArgumentError("lease_breach.lease_id is required", { field: "lease_breach.lease_id" });
      return {
        kind: "lease-breach",
        leaseId: ev.value.leaseId,
        attestations: ev.value.attestations.map((a, i) => envelopeFromProto(a, `lease_breach.attestations[${i}]`)),
      };
    case "invalidContribution":
      if (ev.value.jobId === "")
        throw new InvalidArgumentError("invalid_contribution.job_id is required", { field: "invalid_contribution.job_id" });
      return {
        kind: "invalid-contribution",
        jobId: ev.value.jobId,
        contribution: envelopeFromProto(ev.value.contribution, "invalid_contribution.contribution"),
        spotCheck: envelopeFromProto(ev.value.spotCheck, "invalid_contribution.spot_check"),
      };
    default:
      throw new InvalidArgumentError("exactly one kind of evidence is required", { field: "evidence" });
  }
}

export function evidenceToProto(e: EvidenceView): Evidence {
  const b = e.body;
  const details =
    b.kind === "unavailability"
      ? { case: "unavailability" as const, value: { attestation: jsonEnvelope(b.attestation) } }
      : b.kind === "equivocation"
        ? { case: "equivocation" as const, value: { first: jsonEnvelope(b.first), second: jsonEnvelope(b.second) } }
        : b.kind === "lease-breach"
          ? { case: "leaseBreach" as const, value: { leaseId: b.leaseId, attestations: b.attestations.map(jsonEnvelope) } }
          : {
              case: "invalidContribution" as const,
              value: { jobId: b.jobId, contribution: jsonEnvelope(b.contribution), spotCheck: jsonEnvelope(b.spotCheck) },
            };
  return create(EvidenceSchema, {
    evidenceId: e.evidenceId,
    kind: KIND_TO_PROTO[e.kind],
    providerId: e.providerId,
    reporterId: e.reporterId,
    infractionAt: timestampFromDate(e.infractionAt),
    submittedAt: timestampFromDate(e.submittedAt),
    state: EvidenceState.ACCEPTED,
    slashId: e.slashId,
    details,
  });
}

export function slashToProto(s: SlashView, currency: string): Slash {
  const receiptOf = (r: SlashView["records"][number]) => (r.receipt ? fromJson(ReceiptSchema, r.receipt as never) : undefined);
  // The slash's receipt: of its final record (applied or vetoed) once anchored, else of the latest anchored one.
  const anchored = s.records.filter((r) => r.receipt);
  const final = anchored.find((r) => r.event === "applied" || r.event === "vetoed") ?? anchored[anchored.length - 1];
  const reward = s.taken === null || s.amount === 0n ? s.reporterReward : (s.reporterReward * s.taken) / s.amount;
  return create(SlashSchema, {
    slashId: s.slashId,
    evidenceId: s.evidenceId,
    kind: KIND_TO_PROTO[s.kind],
    providerId: s.providerId,
    amount: money(currency, s.taken ?? s.amount),
    baseFractionBps: s.baseFractionBps,
    fractionBps: s.fractionBps,
    correlatedSlashes: s.correlatedSlashes,
    consequence: CONSEQUENCE_TO_PROTO[s.consequence] ?? SlashConsequence.UNSPECIFIED,
    state: STATE_TO_PROTO[s.state],
    infractionAt: timestampFromDate(s.infractionAt),
    proposedAt: timestampFromDate(s.proposedAt),
    vetoDeadline: timestampFromDate(s.vetoDeadline),
    ...(s.appliedAt ? { appliedAt: timestampFromDate(s.appliedAt) } : {}),
    reporterId: s.reporterId,
    reporterReward: money(currency, reward),
    ...(final ? { receipt: receiptOf(final) } : {}),
    vetoedBy: s.vetoedBy ?? "",
    vetoReason: s.vetoReason ?? "",
    records: s.records.map((r) =>
      create(SlashRecordSchema, {
        event: r.event,
        envelope: jsonEnvelope(r.envelope),
        createdAt: timestampFromDate(r.createdAt),
        ...(r.receipt ? { receipt: receiptOf(r) } : {}),
      }),
    ),
  });
}

export function stakeToProto(s: StakeView, currency: string): Stake {
  return create(StakeSchema, {
    providerId: s.providerId,
    bonded: money(currency, s.bonded),
    unbonding: s.unbonding.map((u) =>
      create(UnbondingSchema, {
        unbondingId: u.unbondingId,
        amount: money(currency, u.amount),
        startedAt: timestampFromDate(u.startedAt),
        completesAt: timestampFromDate(u.completesAt),
      }),
    ),
    slashedTotal: money(currency, s.slashedTotal),
    status: STATUS_TO_PROTO[s.status] ?? ProviderStatus.UNSPECIFIED,
  });
}
