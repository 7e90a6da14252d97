import { sql, type Kysely } from "kysely";

import type { ForwardMigration } from "@deai/kit";

/**
 * Repair's tables (named 0100_… so they sort after sampling's own).
 *
 * - `repair_jobs`: one per (dataset, new placement version): the slots it moves (from, to,
 *   reason, key, the multipart upload id at the new provider), the state (domain/repair-states.ts),
 *   progress per part group (`stripes_done`, the part ETags per slot), counters, and once
 *   rebuilt the signed placement statement and its receipt. At most one live job per dataset.
 * - `placement_versions`: the placements in force after each repair (version 2, 3, …; the
 *   manifest is version 1), with the anchored statement.
 * - `repair_watch`: since when a slot has been seen unavailable (the grace period runs from it).
 * - `provider_status`: jailed / tombstoned providers, from slashing's events.
 * - `provider_stakes`: bonded stake per provider, from slashing's stake_changed (a placement input).
 */
export const repairMigrations: Record<string, ForwardMigration> = {
  "0100_repair": async (db: Kysely<unknown>) => {
    await sql`create table repair_jobs (
      job_id text primary key,
      dataset_id text not null references datasets,
      version int not null,
      base_version int not null,
      slots jsonb not null,
      state text not null,
      stripes_done bigint not null default 0,
      parts jsonb not null default '{}',
      parts_sent int not null default 0,
      bytes_read bigint not null default 0,
      bytes_written bigint not null default 0,
      runs int not null default 0,
      statement bytea,
      envelope jsonb,
      ledger_index bigint,
      receipt jsonb,
      error text,
      created_at timestamptz not null,
      updated_at timestamptz not null,
      rebuilt_at timestamptz,
      completed_at timestamptz,
      unique (dataset_id, version)
    )`.execute(db);
    await sql`create unique index repair_jobs_live on repair_jobs (dataset_id) where state in ('rebuilding', 'anchoring')`.execute(db);
    await sql`create table placement_versions (
      dataset_id text not null references datasets,
      version int not null,
      placements jsonb not null,
      envelope jsonb not null,
      ledger_index bigint not null,
      created_at timestamptz not null,
      primary key (dataset_id, version)
    )`.execute(db);
    await sql`create table repair_watch (
      dataset_id text not null,
      slot int not null,
      provider_id text not null,
      since timestamptz not null,
      primary key (dataset_id, slot)
    )`.execute(db);
    await sql`create table provider_status (
      provider_id text primary key,
      status text not null check (status in ('active', 'jailed', 'tombstoned')),
      until timestamptz,
      slash_id text,
      updated_at timestamptz not null
    )`.execute(db);
    await sql`create table provider_stakes (
      provider_id text primary key,
      bonded numeric not null,
      updated_at timestamptz not null
    )`.execute(db);
  },
};
