import { sql, type Kysely } from "kysely";

import type { ForwardMigration } from "@deai/kit";

import { repairMigrations } from "./repair-migrations.js";

/**
 * Forward-only migrations of the da-sampler schema, applied in name order after the kit's own
 * (nonces, outbox, inbox, schedules).
 *
 * - `datasets`: what sampling needs of each anchored dataset (geometry, placements, the leaf
 *   table checked against shardRoot when it was fetched).
 * - `rounds`: one row per (sampler, dataset, slot, round): the checkpoint the challenged stripes
 *   derive from, how many, the failures; `attestation_id` once summarized in a `rounds` attestation.
 * - `samples`: every shard read (round, re-check, on-demand) with its outcome and latency.
 * - `slot_states`: health of each (dataset, slot) (StateMachine in domain/slot-states.ts).
 * - `rechecks`: a failure under quorum re-check (pending → evidence | cleared | expired).
 * - `votes`: verified single-signature votes on a re-check statement, one per (attestation, sampler).
 * - `attestations`: signed statements (own rounds, quorum re-checks, and others' received over
 *   NATS), with their ledger receipt once anchored.
 * - `provider_availability` (0002): each provider's availability as this process last published
 *   it (unavailable while a slot is proven unavailable), with a flip counter for event ids.
 */
export const migrations: Record<string, ForwardMigration> = {
  "0001_da_sampler": async (db: Kysely<unknown>) => {
    await sql`create table datasets (
      dataset_id text primary key,
      content_digest text not null,
      shard_root bytea not null,
      k int not null,
      m int not null,
      shard_size int not null,
      stripes bigint not null,
      placements jsonb not null,
      leaves bytea not null,
      ledger_index bigint not null,
      added_at timestamptz not null
    )`.execute(db);
    await sql`create table rounds (
      sampler_id text not null,
      dataset_id text not null references datasets,
      slot int not null,
      round bigint not null,
      provider_id text not null,
      checkpoint_size bigint not null,
      checkpoint_root bytea not null,
      samples int not null,
      failures jsonb not null,
      started_at timestamptz not null,
      attestation_id text,
      primary key (sampler_id, dataset_id, slot, round)
    )`.execute(db);
    await sql`create index rounds_unsummarized on rounds (sampler_id, dataset_id, slot) where attestation_id is null`.execute(db);
    await sql`create table samples (
      id bigserial primary key,
      sampler_id text not null,
      dataset_id text not null,
      slot int not null,
      provider_id text not null,
      stripe bigint not null,
      purpose text not null check (purpose in ('round', 'recheck', 'request')),
      outcome text not null,
      expected_leaf bytea not null,
      observed_leaf bytea,
      latency_ms int not null,
      sampled_at timestamptz not null,
      detail text not null default ''
    )`.execute(db);
    await sql`create index samples_provider_time on samples (provider_id, sampled_at)`.execute(db);
    await sql`create table slot_states (
      dataset_id text not null references datasets,
      slot int not null,
      provider_id text not null,
      state text not null,
      last_sampled_at timestamptz,
      last_outcome text,
      consecutive_failures int not null default 0,
      primary key (dataset_id, slot)
    )`.execute(db);
    await sql`create table rechecks (
      recheck_id text primary key,
      available_id text not null unique,
      dataset_id text not null,
      slot int not null,
      provider_id text not null,
      requester_id text not null,
      payload bytea not null,
      state text not null,
      local_requester boolean not null,
      created_at timestamptz not null,
      closed_at timestamptz
    )`.execute(db);
    await sql`create index rechecks_open on rechecks (dataset_id, slot) where state = 'pending'`.execute(db);
    await sql`create table votes (
      attestation_id text not null,
      recheck_id text not null references rechecks,
      sampler_id text not null,
      verdict text not null,
      sig bytea not null,
      received_at timestamptz not null,
      primary key (attestation_id, sampler_id)
    )`.execute(db);
    await sql`create table attestations (
      attestation_id text primary key,
      kind text not null,
      verdict text not null,
      evidence boolean not null,
      dataset_id text not null,
      provider_id text not null,
      slot int not null,
      payload bytea not null,
      envelope jsonb not null,
      signers jsonb not null,
      confidence double precision not null,
      issued_at timestamptz not null,
      anchor_here boolean not null,
      ledger_index bigint,
      receipt jsonb,
      refused text,
      created_at timestamptz not null
    )`.execute(db);
    await sql`create index attestations_provider on attestations (provider_id, ledger_index)`.execute(db);
    await sql`create index attestations_unanchored on attestations (created_at) where ledger_index is null and anchor_here and refused is null`.execute(
      db,
    );
  },
  "0002_provider_availability": async (db: Kysely<unknown>) => {
    await sql`create table provider_availability (
      provider_id text primary key,
      state text not null check (state in ('available', 'unavailable')),
      unavailable_slots int not null,
      sequence bigint not null,
      changed_at timestamptz not null
    )`.execute(db);
  },
  ...repairMigrations,
};
