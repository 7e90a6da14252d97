// The slashing service's events through the kit's outbox, each in the transaction that makes it
// true (subjects `deai.slashing.*`, dedupe ids as proto/deai/events/v1/slashing.proto states).
// Provider status changes are what the marketplace (no new matches) and repair act on.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { sql, type Kysely } from "kysely";

import { enqueueEvent, type Clock } from "@deai/kit";
import { MoneySchema } from "@deai/contracts/deai/common/v1/common_pb";
import {
  EvidenceAcceptedSchema,
  ProviderJailedSchema,
  ProviderReleasedSchema,
  ProviderTombstonedSchema,
  SlashAppliedSchema,
  SlashProposedSchema,
  SlashVetoedSchema,
  StakeChangedSchema,
} from "@deai/contracts/deai/events/v1/slashing_pb";
import { EvidenceKind, SlashConsequence } from "@deai/contracts/deai/slashing/v1/slashing_pb";

import { slashView, type SlashingEvents } from "../app/slashing.js";
import { slashToProto } from "../grpc/views.js";

export const SlashingSubjects = {
  stakeChanged: "deai.slashing.stake_changed",
  evidenceAccepted: "deai.slashing.evidence_accepted",
  slashProposed: "deai.slashing.slash_proposed",
  slashApplied: "deai.slashing.slash_applied",
  slashVetoed: "deai.slashing.slash_vetoed",
  providerJailed: "deai.slashing.provider_jailed",
  providerReleased: "deai.slashing.provider_released",
  providerTombstoned: "deai.slashing.provider_tombstoned",
} as const;

const KINDS: Record<string, EvidenceKind> = {
  unavailability: EvidenceKind.UNAVAILABILITY,
  equivocation: EvidenceKind.EQUIVOCATION,
  "lease-breach": EvidenceKind.LEASE_BREACH,
  "invalid-contribution": EvidenceKind.INVALID_CONTRIBUTION,
};
const CONSEQUENCES: Record<string, SlashConsequence> = {
  none: SlashConsequence.NONE,
  jail: SlashConsequence.JAIL,
  tombstone: SlashConsequence.TOMBSTONE,
};

// Money micros are int64 in the contract; stake in base units fits for any sane deployment.
const money = (currency: string, v: bigint) => create(MoneySchema, { currency, micros: v });

/** Outbox publishers for the app's events. */
export function outboxEvents(clock: Clock, currency: string): SlashingEvents {
  const at = () => timestampFromDate(clock.now());
  return {
    stakeChanged: async (trx, providerId) => {
      const r = await sql<{ bonded: string; unbonding: string; seq: string }>`
        select (select coalesce(sum(credits_posted - debits_posted - debits_pending), 0) from money_accounts where id = ${`stake:${providerId}`})::text as bonded,
               (select coalesce(sum(amount), 0) from unbondings where provider_id = ${providerId} and state = 'unbonding')::text as unbonding,
               (select count(*) from money_transfers where debit_account_id = ${`stake:${providerId}`} or credit_account_id = ${`stake:${providerId}`})::text as seq`.execute(
        trx,
      );
      const row = r.rows[0]!;
      const eventId = `slashing/stake/${providerId}/${row.seq}`;
      await enqueueEvent(
        trx as unknown as Kysely<unknown>,
        SlashingSubjects.stakeChanged,
        StakeChangedSchema,
        create(StakeChangedSchema, {
          eventId,
          occurredAt: at(),
          providerId,
          bonded: money(currency, BigInt(row.bonded)),
          unbonding: money(currency, BigInt(row.unbonding)),
        }),
        eventId,
      );
    },
    evidenceAccepted: async (trx, evidenceId) => {
      const r = await sql<{ kind: string; provider_id: string; reporter_id: string; slash_id: string }>`
        select kind, provider_id, reporter_id, slash_id from evidence where evidence_id = ${evidenceId}`.execute(trx);
      const e = r.rows[0]!;
      const eventId = `slashing/evidence/${evidenceId}`;
      await enqueueEvent(
        trx as unknown as Kysely<unknown>,
        SlashingSubjects.evidenceAccepted,
        EvidenceAcceptedSchema,
        create(EvidenceAcceptedSchema, {
          eventId,
          occurredAt: at(),
          evidenceId,
          kind: KINDS[e.kind],
          providerId: e.provider_id,
          reporterId: e.reporter_id,
          slashId: e.slash_id,
        }),
        eventId,
      );
    },
    slashProposed: async (trx, slashId) => {
      const s = await slashView(trx, slashId);
      const eventId = `slashing/slash_proposed/${slashId}`;
      await enqueueEvent(
        trx as unknown as Kysely<unknown>,
        SlashingSubjects.slashProposed,
        SlashProposedSchema,
        create(SlashProposedSchema, { eventId, occurredAt: at(), slash: slashToProto(s!, currency) }),
        eventId,
      );
    },
    slashApplied: async (trx, slashId) => {
      const r = await sql<{
        provider_id: string;
        kind: string;
        taken: string;
        reporter_reward: string;
        consequence: string;
        amount: string;
      }>`
        select provider_id, kind, taken, reporter_reward, consequence, amount from slashes where slash_id = ${slashId}`.execute(trx);
      const s = r.rows[0]!;
      const eventId = `slashing/slash_applied/${slashId}`;
      const want = BigInt(s.amount);
      const reward = want === 0n ? 0n : (BigInt(s.reporter_reward) * BigInt(s.taken)) / want;
      await enqueueEvent(
        trx as unknown as Kysely<unknown>,
        SlashingSubjects.slashApplied,
        SlashAppliedSchema,
        create(SlashAppliedSchema, {
          eventId,
          occurredAt: at(),
          slashId,
          providerId: s.provider_id,
          kind: KINDS[s.kind],
          amount: money(currency, BigInt(s.taken)),
          reporterReward: money(currency, reward),
          consequence: CONSEQUENCES[s.consequence],
        }),
        eventId,
      );
    },
    slashVetoed: async (trx, slashId) => {
      const r = await sql<{
        provider_id: string;
        vetoed_by: string;
        veto_reason: string;
      }>`select provider_id, vetoed_by, veto_reason from slashes where slash_id = ${slashId}`.execute(trx);
      const s = r.rows[0]!;
      const eventId = `slashing/slash_vetoed/${slashId}`;
      await enqueueEvent(
        trx as unknown as Kysely<unknown>,
        SlashingSubjects.slashVetoed,
        SlashVetoedSchema,
        create(SlashVetoedSchema, {
          eventId,
          occurredAt: at(),
          slashId,
          providerId: s.provider_id,
          vetoedBy: s.vetoed_by,
          reason: s.veto_reason,
        }),
        eventId,
      );
    },
    providerJailed: async (trx, providerId, until, slashId) => {
      const eventId = `slashing/jailed/${providerId}/${slashId}`;
      await enqueueEvent(
        trx as unknown as Kysely<unknown>,
        SlashingSubjects.providerJailed,
        ProviderJailedSchema,
        create(ProviderJailedSchema, { eventId, occurredAt: at(), providerId, jailedUntil: timestampFromDate(until), slashId }),
        eventId,
      );
    },
    providerReleased: async (trx, providerId, jailedUntil) => {
      const eventId = `slashing/released/${providerId}/${jailedUntil.getTime()}`;
      await enqueueEvent(
        trx as unknown as Kysely<unknown>,
        SlashingSubjects.providerReleased,
        ProviderReleasedSchema,
        create(ProviderReleasedSchema, { eventId, occurredAt: at(), providerId }),
        eventId,
      );
    },
    providerTombstoned: async (trx, providerId, slashId) => {
      const eventId = `slashing/tombstoned/${providerId}`;
      await enqueueEvent(
        trx as unknown as Kysely<unknown>,
        SlashingSubjects.providerTombstoned,
        ProviderTombstonedSchema,
        create(ProviderTombstonedSchema, { eventId, occurredAt: at(), providerId, slashId }),
        eventId,
      );
    },
  };
}
