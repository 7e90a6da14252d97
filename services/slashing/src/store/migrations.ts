import { sql } from "kysely";

import { accountsMigrations, type ForwardMigration } from "@deai/kit";

/**
 * Forward-only migrations of the slashing schema, after the kit's own: the kit's money tables
 * (stake, rewards, treasury are accounts there), then this service's.
 *
 * - `providers`: standing (active, jailed, tombstoned) and when a jail ends.
 * - `stake_changes`: every change of a provider's slashable stake with its time, so the stake
 *   held at an infraction is a sum (bond +, unbond completion −, slash −).
 * - `bonds`, `unbondings`: idempotency per (provider, key); an unbonding is a pending transfer.
 * - `evidence`: accepted evidence by id (its hash); refused evidence is never stored.
 * - `slashes`: at most one per (provider, kind, window) by a unique key.
 * - `vetoes`: signed council vetoes.
 * - `slash_records` (0002): every signed slash-record statement (jailed, tombstoned, released,
 *   applied, vetoed), written in the transaction of the change it records, with its ledger
 *   index and receipt once the anchoring loop got them.
 * - 0003: evidence by (provider, kind, infraction time), to find the outage a liveness fault continues.
 */
export const migrations: Record<string, ForwardMigration> = {
  ...accountsMigrations,
  "0001_slashing": async (db) => {
    await sql`create table providers (
      provider_id text primary key,
      status text not null default 'active',
      jailed_until timestamptz,
      status_slash_id text,
      updated_at timestamptz not null
    )`.execute(db);
    await sql`create table stake_changes (
      id bigserial primary key,
      provider_id text not null,
      at timestamptz not null,
      delta numeric not null,
      reason text not null
    )`.execute(db);
    await sql`create index stake_changes_provider on stake_changes (provider_id, at)`.execute(db);
    await sql`create table bonds (
      provider_id text not null,
      idempotency_key text not null,
      amount numeric not null,
      primary key (provider_id, idempotency_key)
    )`.execute(db);
    await sql`create table unbondings (
      unbonding_id text primary key,
      provider_id text not null,
      idempotency_key text not null,
      amount numeric not null,
      hold_id text not null,
      state text not null default 'unbonding',
      started_at timestamptz not null,
      completes_at timestamptz not null,
      unique (provider_id, idempotency_key)
    )`.execute(db);
    await sql`create table evidence (
      evidence_id text primary key,
      kind text not null,
      provider_id text not null,
      reporter_id text not null,
      infraction_at timestamptz not null,
      submitted_at timestamptz not null,
      slash_id text not null,
      body jsonb not null
    )`.execute(db);
    await sql`create table slashes (
      slash_id text primary key,
      evidence_id text not null,
      kind text not null,
      provider_id text not null,
      infraction_window bigint not null,
      state text not null,
      amount numeric not null,
      taken numeric,
      base_fraction_bps int not null,
      fraction_bps int not null,
      correlated_slashes int not null,
      consequence text not null,
      reporter_id text not null,
      reporter_reward numeric not null,
      infraction_at timestamptz not null,
      proposed_at timestamptz not null,
      veto_deadline timestamptz not null,
      applied_at timestamptz,
      vetoed_by text,
      veto_reason text,
      record jsonb not null,
      unique (provider_id, kind, infraction_window)
    )`.execute(db);
    await sql`create index slashes_due on slashes (veto_deadline) where state = 'pending_veto'`.execute(db);
    await sql`create table vetoes (
      slash_id text not null,
      member text not null,
      reason text not null,
      envelope jsonb not null,
      at timestamptz not null,
      primary key (slash_id, member)
    )`.execute(db);
  },
  "0002_slash_records": async (db) => {
    await sql`create table slash_records (
      record_id text primary key,
      slash_id text not null,
      event text not null,
      envelope jsonb not null,
      created_at timestamptz not null,
      ledger_index bigint,
      receipt jsonb,
      refused text,
      attempts int not null default 0
    )`.execute(db);
    await sql`create index slash_records_pending on slash_records (created_at) where ledger_index is null and refused is null`.execute(db);
    await sql`create index slash_records_slash on slash_records (slash_id, created_at)`.execute(db);
  },
  "0003_evidence_outage": async (db) => {
    await sql`create index evidence_outage on evidence (provider_id, kind, infraction_at)`.execute(db);
  },
  // Who repaired a slot (from deai.da.repair_completed, the placement's signer, a known sampler)
  // and the repair shares paid to them out of the repair pool, once per slash.
  "0004_repair_payouts": async (db) => {
    await sql`create table repairs (
      dataset_id text not null,
      slot int not null,
      ledger_index bigint not null,
      repairer text not null,
      completed_at timestamptz not null,
      primary key (dataset_id, slot, ledger_index)
    )`.execute(db);
    await sql`create table repair_payouts (
      slash_id text primary key,
      repairer text not null,
      amount numeric not null,
      dataset_id text not null,
      slot int not null,
      paid_at timestamptz not null
    )`.execute(db);
  },
};
