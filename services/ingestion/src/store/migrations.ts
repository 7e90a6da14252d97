import { sql, type Kysely } from "kysely";

import type { ForwardMigration } from "@deai/kit";

/**
 * Forward-only migrations of the ingestion schema, applied in name order after the kit's own.
 *
 * - `uploads`: one row per upload session: declared spec, coding parameters, placement, the
 *   S3 multipart upload id per slot, and durable progress (`durable_offset`, always a whole
 *   number of part groups until the stream is finished). `pending_from` marks a REST request
 *   whose body digest is not yet checked: if the process dies first, progress rolls back to it.
 * - `upload_groups`: per part group (G stripes, one multipart part per slot): the part ETags
 *   and the group's leaf hashes, (stripe, slot) order. The leaf table of a dataset is the
 *   concatenation of its groups' leaves.
 * - `datasets`: anchored datasets: manifest (proto JSON), the owner's envelope, the ledger receipt.
 */
export const migrations: Record<string, ForwardMigration> = {
  "0001_ingestion": async (db: Kysely<unknown>) => {
    await sql`create table uploads (
      upload_id text primary key,
      owner text not null,
      spec jsonb not null,
      k int not null,
      m int not null,
      shard_size int not null,
      stripes_per_group int not null,
      state text not null,
      durable_offset bigint not null default 0,
      stripes_done bigint not null default 0,
      pending_from bigint,
      placements jsonb not null,
      multipart jsonb not null,
      size bigint,
      content_digest text,
      shard_root bytea,
      manifest jsonb,
      statement bytea,
      dataset_id text,
      error text,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      expires_at timestamptz not null
    )`.execute(db);
    await sql`create index uploads_expiry on uploads (expires_at) where state in ('open', 'awaiting_signature')`.execute(db);
    await sql`create table upload_groups (
      upload_id text not null references uploads (upload_id),
      group_index int not null,
      stripes int not null,
      etags jsonb not null,
      leaves bytea not null,
      primary key (upload_id, group_index)
    )`.execute(db);
    await sql`create table datasets (
      dataset_id text primary key,
      upload_id text not null unique references uploads (upload_id),
      owner text not null,
      content_digest text not null,
      size bigint not null,
      manifest jsonb not null,
      envelope jsonb not null,
      receipt jsonb not null,
      ledger_index bigint not null,
      state text not null default 'available',
      created_at timestamptz not null default now()
    )`.execute(db);
    await sql`create index datasets_digest on datasets (content_digest, created_at desc)`.execute(db);
    await sql`create index datasets_owner on datasets (owner, created_at desc)`.execute(db);
  },
  /** The envelope being anchored, kept so a sweep can retry the append after a crash (anchoring has no timeout). */
  "0002_anchor_envelope": async (db: Kysely<unknown>) => {
    await sql`alter table uploads add column anchor_envelope jsonb`.execute(db);
    await sql`create index uploads_anchoring on uploads (updated_at) where state = 'anchoring'`.execute(db);
  },
  /** Shards that failed their leaf check (evidence): each stored with its shard_invalid event in one transaction. */
  "0003_shard_findings": async (db: Kysely<unknown>) => {
    await sql`create table shard_findings (
      finding_id text primary key,
      dataset_id text not null references datasets (dataset_id),
      stripe bigint not null,
      slot int not null,
      provider_id text not null,
      expected_leaf bytea not null,
      observed_leaf bytea not null,
      reporter_id text not null,
      found_at timestamptz not null
    )`.execute(db);
    await sql`create index shard_findings_dataset on shard_findings (dataset_id, found_at)`.execute(db);
  },
  /**
   * Placements after repair (issue 12): version 2, 3, … of where a dataset's slots live, each a
   * placement/v1 statement anchored in the ledger (the manifest is version 1, unchanged). Reads
   * follow the latest version.
   */
  "0004_placements": async (db: Kysely<unknown>) => {
    await sql`create table placements (
      dataset_id text not null references datasets (dataset_id),
      version int not null,
      placements jsonb not null,
      envelope jsonb not null,
      receipt jsonb,
      ledger_index bigint not null,
      signer text not null,
      created_at timestamptz not null,
      primary key (dataset_id, version)
    )`.execute(db);
  },
};
