// Tree repository: the integrated tree state, its hash tiles, and signed checkpoints.
import { sql, type Kysely, type Selectable, type Transaction } from "kysely";

import { fromInt8, type CheckpointsTable, type LedgerDb } from "./tables.js";

/** A signed checkpoint as the app reads it: the row with its size as a number. */
export type CheckpointRow = Omit<Selectable<CheckpointsTable>, "tree_size"> & { readonly tree_size: number };

/** The one decoder of checkpoint rows (int8 → number). */
function checkpointFromRow(r: Selectable<CheckpointsTable>): CheckpointRow {
  return { ...r, tree_size: fromInt8(r.tree_size) };
}

export interface TreeState {
  readonly size: number;
  readonly root: Buffer;
  /** Concatenated frontier hashes, largest subtree first (popcount(size) × 32 bytes). */
  readonly frontier: Buffer;
}

// One integrator at a time across replicas: a transaction-scoped advisory lock, released on
// commit, rollback or a dead connection (so a killed sequencer never wedges the log).
const INTEGRATOR_LOCK = sql`hashtext('deai.ledger.integrator')`;

/** Takes the integrator lock for this transaction; with `wait` false, returns false if another holder has it. */
export async function lockIntegrator(trx: Transaction<LedgerDb>, wait: boolean): Promise<boolean> {
  if (wait) {
    await sql`select pg_advisory_xact_lock(${INTEGRATOR_LOCK})`.execute(trx);
    return true;
  }
  const r = await sql<{ ok: boolean }>`select pg_try_advisory_xact_lock(${INTEGRATOR_LOCK}) as ok`.execute(trx);
  return r.rows[0]?.ok === true;
}

export async function readTreeState(db: Kysely<LedgerDb>): Promise<TreeState> {
  const r = await db.selectFrom("tree_state").select(["size", "root", "frontier"]).where("id", "=", 1).executeTakeFirstOrThrow();
  return { size: fromInt8(r.size), root: r.root, frontier: r.frontier };
}

export async function writeTreeState(trx: Kysely<LedgerDb>, s: TreeState): Promise<void> {
  await trx
    .updateTable("tree_state")
    .set({ size: s.size, root: s.root, frontier: s.frontier, updated_at: sql`now()` })
    .where("id", "=", 1)
    .execute();
}

/** Stored tiles (each the hashes so far) by (level, index). */
export async function readTiles(db: Kysely<LedgerDb>, keys: readonly { level: number; index: number }[]): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  if (keys.length === 0) return out;
  const rows = await sql<{ level: number; idx: bigint; hashes: Buffer }>`
    select t.level, t.idx, t.hashes from tiles t
    join unnest(${keys.map((k) => k.level)}::smallint[], ${keys.map((k) => k.index)}::bigint[]) as k(level, idx)
      on t.level = k.level and t.idx = k.idx`.execute(db);
  for (const r of rows.rows) out.set(`${r.level}/${fromInt8(r.idx)}`, r.hashes);
  return out;
}

/** Writes tiles (full contents so far), replacing the partial versions. */
export async function writeTiles(trx: Kysely<LedgerDb>, tiles: readonly { level: number; index: number; hashes: Buffer }[]): Promise<void> {
  if (tiles.length === 0) return;
  await sql`insert into tiles (level, idx, hashes)
    select * from unnest(${tiles.map((t) => t.level)}::smallint[], ${tiles.map((t) => t.index)}::bigint[], ${tiles.map((t) => t.hashes)}::bytea[])
    on conflict (level, idx) do update set hashes = excluded.hashes`.execute(trx);
}

export async function insertCheckpoint(
  trx: Kysely<LedgerDb>,
  c: { treeSize: number; rootHash: Uint8Array; note: string },
): Promise<CheckpointRow> {
  return checkpointFromRow(
    await trx
      .insertInto("checkpoints")
      .values({ tree_size: c.treeSize, root_hash: Buffer.from(c.rootHash), note: c.note })
      .returningAll()
      .executeTakeFirstOrThrow(),
  );
}

export async function latestCheckpoint(db: Kysely<LedgerDb>): Promise<CheckpointRow | undefined> {
  const r = await db.selectFrom("checkpoints").selectAll().orderBy("tree_size", "desc").limit(1).executeTakeFirst();
  return r && checkpointFromRow(r);
}

export async function checkpointAt(db: Kysely<LedgerDb>, treeSize: number): Promise<CheckpointRow | undefined> {
  const r = await db.selectFrom("checkpoints").selectAll().where("tree_size", "=", BigInt(treeSize)).executeTakeFirst();
  return r && checkpointFromRow(r);
}

/** Every checkpoint, oldest first. */
export async function allCheckpoints(db: Kysely<LedgerDb>): Promise<CheckpointRow[]> {
  return (await db.selectFrom("checkpoints").selectAll().orderBy("tree_size").execute()).map(checkpointFromRow);
}

/** Tiles of one level in index order, from `fromIndex` (for fsck). */
export async function tilesOfLevel(db: Kysely<LedgerDb>, level: number): Promise<{ idx: number; hashes: Buffer }[]> {
  const rows = await db.selectFrom("tiles").select(["idx", "hashes"]).where("level", "=", level).orderBy("idx").execute();
  return rows.map((r) => ({ idx: fromInt8(r.idx), hashes: r.hashes }));
}

/** What the log's gauges read: the integrated size, the oldest entry past it, the newest checkpoint. */
export async function logProgress(
  db: Kysely<LedgerDb>,
): Promise<{ size: number; oldestPending: Date | undefined; latestCheckpoint: Date | undefined }> {
  const r = await sql<{ size: bigint; oldest_pending: Date | null; latest_checkpoint: Date | null }>`
    select s.size,
      (select e.sequenced_at from entries e where e.idx >= s.size order by e.idx limit 1) as oldest_pending,
      (select max(c.published_at) from checkpoints c) as latest_checkpoint
    from tree_state s where s.id = 1`.execute(db);
  const row = r.rows[0];
  return {
    size: row ? fromInt8(row.size) : 0,
    oldestPending: row?.oldest_pending ?? undefined,
    latestCheckpoint: row?.latest_checkpoint ?? undefined,
  };
}
