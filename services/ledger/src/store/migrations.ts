import { sql, type Kysely } from "kysely";

import type { ForwardMigration } from "@deai/kit";

import { cosignaturesMigration } from "./cosignatures.js";

/**
 * Forward-only migrations of the ledger schema, applied in name order after the kit's own.
 *
 * - `entries`: one row per sequenced leaf; `idx` is the leaf index, assigned contiguously
 *   under the `sequencer` row lock, so committed indexes never have gaps.
 * - `entry_digests`: subject ('s') and material ('m') digests, for search and lineage.
 * - `tiles`: C2SP tlog-tiles hash tiles (level L holds tree level 8·L), each row the hashes
 *   so far (a partial tile grows until it holds 256): proofs read O(log n) rows at any size.
 * - `tree_state`: the integrated tree (size, root, frontier), updated with its checkpoint.
 * - `checkpoints`: every signed checkpoint note; the newest is the tree_state's.
 * - `cosignatures`: witness cosignature lines per checkpoint (one per witness key, newest kept).
 */
export const migrations: Record<string, ForwardMigration> = {
  "0001_ledger_log": async (db: Kysely<unknown>) => {
    await sql`create table entries (
      idx bigint primary key,
      leaf_hash bytea not null unique,
      leaf bytea not null,
      predicate_type text not null,
      signers jsonb not null,
      subjects jsonb not null,
      materials jsonb not null,
      sequenced_at timestamptz not null default now()
    )`.execute(db);
    await sql`create table entry_digests (
      digest text not null,
      role char(1) not null check (role in ('s', 'm')),
      idx bigint not null,
      primary key (digest, role, idx)
    )`.execute(db);
    await sql`create table sequencer (
      id smallint primary key check (id = 1),
      next_index bigint not null
    )`.execute(db);
    await sql`insert into sequencer (id, next_index) values (1, 0)`.execute(db);
    await sql`create table tiles (
      level smallint not null,
      idx bigint not null,
      hashes bytea not null,
      primary key (level, idx)
    )`.execute(db);
    await sql`create table tree_state (
      id smallint primary key check (id = 1),
      size bigint not null,
      root bytea not null,
      frontier bytea not null,
      updated_at timestamptz not null default now()
    )`.execute(db);
    await sql`insert into tree_state (id, size, root, frontier) values (1, 0, decode('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'hex'), ''::bytea)`.execute(
      db,
    );
    await sql`create table checkpoints (
      tree_size bigint primary key,
      root_hash bytea not null,
      note text not null,
      published_at timestamptz not null default now()
    )`.execute(db);
  },
  "0002_ledger_cosignatures": cosignaturesMigration,
};
