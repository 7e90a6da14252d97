// Entry repository: group-committed sequencing and the reads over entries and their digests.
import { sql, type Kysely, type Selectable } from "kysely";

import type { EntriesTable, LedgerDb } from "./tables.js";

export type EntryRow = Selectable<EntriesTable>;

/** One entry to sequence; subjects/materials are digest keys (`sha256:<hex>`). */
export interface NewEntry {
  readonly leafHash: Uint8Array;
  readonly leaf: Uint8Array;
  readonly predicateType: string;
  readonly signers: readonly string[];
  readonly subjects: readonly string[];
  readonly materials: readonly string[];
}

/** Where each submitted entry ended up, in submission order. */
export interface Sequenced {
  readonly index: number;
  readonly duplicate: boolean;
}

function hashKey(h: Uint8Array): string {
  return Buffer.from(h.buffer, h.byteOffset, h.byteLength).toString("hex");
}

/**
 * Sequences a batch in one transaction: takes the sequencer row lock (so indexes are
 * contiguous across replicas), returns existing indexes for leaves already logged (or repeated
 * in the batch), and inserts the rest with one multi-row statement per table.
 */
export async function sequenceEntries(db: Kysely<LedgerDb>, batch: readonly NewEntry[]): Promise<Sequenced[]> {
  return db.transaction().execute(async (trx) => {
    const { next_index: start } = await trx
      .selectFrom("sequencer")
      .select("next_index")
      .where("id", "=", 1)
      .forUpdate()
      .executeTakeFirstOrThrow();
    const hashes = batch.map((e) => Buffer.from(e.leafHash));
    const existing = await sql<{
      idx: number;
      leaf_hash: Buffer;
    }>`select idx, leaf_hash from entries where leaf_hash = any(${hashes}::bytea[])`.execute(trx);
    const known = new Map<string, number>(existing.rows.map((r) => [r.leaf_hash.toString("hex"), r.idx]));
    const out: Sequenced[] = [];
    const fresh: { e: NewEntry; idx: number }[] = [];
    let next = start;
    for (const e of batch) {
      const key = hashKey(e.leafHash);
      const idx = known.get(key);
      if (idx !== undefined) {
        out.push({ index: idx, duplicate: true });
        continue;
      }
      known.set(key, next);
      fresh.push({ e, idx: next });
      out.push({ index: next, duplicate: false });
      next++;
    }
    if (fresh.length > 0) {
      await sql`insert into entries (idx, leaf_hash, leaf, predicate_type, signers, subjects, materials)
        select i, h, l, p, s::jsonb, sub::jsonb, m::jsonb
        from unnest(${fresh.map((f) => f.idx)}::bigint[], ${fresh.map((f) => Buffer.from(f.e.leafHash))}::bytea[], ${fresh.map((f) => Buffer.from(f.e.leaf))}::bytea[],
                    ${fresh.map((f) => f.e.predicateType)}::text[], ${fresh.map((f) => JSON.stringify(f.e.signers))}::text[],
                    ${fresh.map((f) => JSON.stringify(f.e.subjects))}::text[], ${fresh.map((f) => JSON.stringify(f.e.materials))}::text[])
             as t(i, h, l, p, s, sub, m)`.execute(trx);
      const digests: string[] = [];
      const roles: string[] = [];
      const idxs: number[] = [];
      for (const { e, idx } of fresh) {
        const named = [...e.subjects.map((d) => [d, "s"] as const), ...e.materials.map((d) => [d, "m"] as const)];
        for (const [d, role] of named) {
          digests.push(d);
          roles.push(role);
          idxs.push(idx);
        }
      }
      if (digests.length > 0) {
        await sql`insert into entry_digests (digest, role, idx) select * from unnest(${digests}::text[], ${roles}::char(1)[], ${idxs}::bigint[])`.execute(
          trx,
        );
      }
      await trx.updateTable("sequencer").set({ next_index: next }).where("id", "=", 1).execute();
    }
    return out;
  });
}

/** Number of entries sequenced so far. */
export async function sequencedCount(db: Kysely<LedgerDb>): Promise<number> {
  const r = await db.selectFrom("sequencer").select("next_index").where("id", "=", 1).executeTakeFirstOrThrow();
  return r.next_index;
}

export async function entryByIndex(db: Kysely<LedgerDb>, idx: number): Promise<EntryRow | undefined> {
  return db.selectFrom("entries").selectAll().where("idx", "=", idx).executeTakeFirst();
}

export async function entryByLeafHash(db: Kysely<LedgerDb>, leafHash: Uint8Array): Promise<EntryRow | undefined> {
  return db.selectFrom("entries").selectAll().where("leaf_hash", "=", Buffer.from(leafHash)).executeTakeFirst();
}

export async function entriesByIndexes(db: Kysely<LedgerDb>, idxs: readonly number[]): Promise<EntryRow[]> {
  if (idxs.length === 0) return [];
  return db
    .selectFrom("entries")
    .selectAll()
    .where("idx", "in", [...idxs])
    .orderBy("idx")
    .execute();
}

/** Leaf hashes of entries [from, from + limit), in index order (a gap ends the list). */
export async function leafHashesFrom(db: Kysely<LedgerDb>, from: number, limit: number): Promise<Buffer[]> {
  const rows = await db.selectFrom("entries").select(["idx", "leaf_hash"]).where("idx", ">=", from).orderBy("idx").limit(limit).execute();
  const out: Buffer[] = [];
  for (const r of rows) {
    if (r.idx !== from + out.length) break;
    out.push(r.leaf_hash);
  }
  return out;
}

/** Entries [from, from + limit) with their leaves, in index order. */
export async function leavesFrom(
  db: Kysely<LedgerDb>,
  from: number,
  limit: number,
): Promise<{ idx: number; leaf: Buffer; leaf_hash: Buffer }[]> {
  return db
    .selectFrom("entries")
    .select(["idx", "leaf", "leaf_hash"])
    .where("idx", ">=", from)
    .where("idx", "<", from + limit)
    .orderBy("idx")
    .execute();
}

/** Indexes of entries naming `digest` in `role`, newest first, below `before` and `limit`. */
export async function indexesByDigest(
  db: Kysely<LedgerDb>,
  digest: string,
  role: "s" | "m",
  opts: { before?: number; limit: number; predicateType?: string },
): Promise<number[]> {
  let q = db
    .selectFrom("entry_digests as d")
    .innerJoin("entries as e", "e.idx", "d.idx")
    .select("d.idx")
    .where("d.digest", "=", digest)
    .where("d.role", "=", role);
  if (opts.before !== undefined) q = q.where("d.idx", "<", opts.before);
  if (opts.predicateType) q = q.where("e.predicate_type", "=", opts.predicateType);
  const rows = await q.orderBy("d.idx", "desc").limit(opts.limit).execute();
  return rows.map((r) => r.idx);
}

/** Entries (below `below`) naming any of `digests` in `role`. */
export async function entriesNaming(
  db: Kysely<LedgerDb>,
  digests: readonly string[],
  role: "s" | "m",
  below: number,
  limit: number,
): Promise<EntryRow[]> {
  if (digests.length === 0) return [];
  return db
    .selectFrom("entries")
    .selectAll()
    .where("idx", "in", (eb) =>
      eb
        .selectFrom("entry_digests")
        .select("idx")
        .where("digest", "in", [...digests])
        .where("role", "=", role),
    )
    .where("idx", "<", below)
    .orderBy("idx")
    .limit(limit)
    .execute();
}
