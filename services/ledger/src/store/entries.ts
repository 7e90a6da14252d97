// Entry repository: group-committed sequencing and the reads over entries and their digests.
import { sql, type Kysely, type Selectable } from "kysely";

import { fromInt8, type EntriesTable, type LedgerDb } from "./tables.js";

/** An entry as the app reads it: the row with its index as a number. */
export type EntryRow = Omit<Selectable<EntriesTable>, "idx"> & { readonly idx: number };

/** The one decoder of entry rows (int8 → number). */
function entryFromRow(r: Selectable<EntriesTable>): EntryRow {
  return { ...r, idx: fromInt8(r.idx) };
}

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
 * in the batch), and inserts the rest, their digests and the new counter with one statement.
 *
 * Leaves and leaf hashes travel as one binary parameter each (sliced apart in SQL) and the
 * per-entry columns as one JSON document: the driver would otherwise hex-encode and quote
 * every element of bytea[] and text[] arrays, which costs more than the rest of the append.
 */
export async function sequenceEntries(db: Kysely<LedgerDb>, batch: readonly NewEntry[]): Promise<Sequenced[]> {
  const hashes = Buffer.concat(batch.map((e) => e.leafHash));
  return db.transaction().execute(async (trx) => {
    const { next_index: start } = await trx
      .selectFrom("sequencer")
      .select("next_index")
      .where("id", "=", 1)
      .forUpdate()
      .executeTakeFirstOrThrow();
    const existing = await sql<{ idx: bigint; leaf_hash: Buffer }>`
      select idx, leaf_hash from entries
      where leaf_hash = any(array(select substring(${hashes}::bytea from g * 32 + 1 for 32) from generate_series(0, ${batch.length - 1}::int) g))`.execute(
      trx,
    );
    const known = new Map<string, number>(existing.rows.map((r) => [r.leaf_hash.toString("hex"), fromInt8(r.idx)]));
    const out: Sequenced[] = [];
    const fresh: NewEntry[] = [];
    const first = fromInt8(start);
    let next = first;
    for (const e of batch) {
      const key = hashKey(e.leafHash);
      const idx = known.get(key);
      if (idx !== undefined) {
        out.push({ index: idx, duplicate: true });
        continue;
      }
      known.set(key, next);
      fresh.push(e);
      out.push({ index: next, duplicate: false });
      next++;
    }
    if (fresh.length > 0) {
      // Row n (1-based) of the JSON document is entry start + n - 1: [predicate type, signers,
      // subjects, materials, leaf offset, leaf length]; its hash is the n-th 32 bytes.
      let offset = 0;
      const meta = fresh.map((e) => {
        const row = [e.predicateType, e.signers, e.subjects, e.materials, offset, e.leaf.length];
        offset += e.leaf.length;
        return row;
      });
      const freshHashes = fresh.length === batch.length ? hashes : Buffer.concat(fresh.map((e) => e.leafHash));
      const leaves = Buffer.concat(fresh.map((e) => e.leaf));
      await sql`
        with added as (
          insert into entries (idx, leaf_hash, leaf, predicate_type, signers, subjects, materials)
          select ${first}::bigint + t.n - 1,
                 substring(${freshHashes}::bytea from (t.n - 1)::int * 32 + 1 for 32),
                 substring(${leaves}::bytea from (t.m->>4)::int + 1 for (t.m->>5)::int),
                 t.m->>0, t.m->1, t.m->2, t.m->3
          from jsonb_array_elements(${JSON.stringify(meta)}::jsonb) with ordinality as t(m, n)
          returning idx, subjects, materials
        ),
        counter as (
          update sequencer set next_index = ${next}::bigint where id = 1
        )
        insert into entry_digests (digest, role, idx)
        select d.value, 's', added.idx from added, jsonb_array_elements_text(added.subjects) d
        union all
        select d.value, 'm', added.idx from added, jsonb_array_elements_text(added.materials) d`.execute(trx);
    }
    return out;
  });
}

/** Number of entries sequenced so far. */
export async function sequencedCount(db: Kysely<LedgerDb>): Promise<number> {
  const r = await db.selectFrom("sequencer").select("next_index").where("id", "=", 1).executeTakeFirstOrThrow();
  return fromInt8(r.next_index);
}

export async function entryByIndex(db: Kysely<LedgerDb>, idx: number): Promise<EntryRow | undefined> {
  const r = await db.selectFrom("entries").selectAll().where("idx", "=", BigInt(idx)).executeTakeFirst();
  return r && entryFromRow(r);
}

export async function entryByLeafHash(db: Kysely<LedgerDb>, leafHash: Uint8Array): Promise<EntryRow | undefined> {
  const r = await db.selectFrom("entries").selectAll().where("leaf_hash", "=", Buffer.from(leafHash)).executeTakeFirst();
  return r && entryFromRow(r);
}

export async function entriesByIndexes(db: Kysely<LedgerDb>, idxs: readonly number[]): Promise<EntryRow[]> {
  if (idxs.length === 0) return [];
  const rows = await db
    .selectFrom("entries")
    .selectAll()
    .where(
      "idx",
      "in",
      idxs.map((i) => BigInt(i)),
    )
    .orderBy("idx")
    .execute();
  return rows.map(entryFromRow);
}

/** Leaf hashes of entries [from, from + limit), in index order (a gap ends the list). */
export async function leafHashesFrom(db: Kysely<LedgerDb>, from: number, limit: number): Promise<Buffer[]> {
  const rows = await db
    .selectFrom("entries")
    .select(["idx", "leaf_hash"])
    .where("idx", ">=", BigInt(from))
    .orderBy("idx")
    .limit(limit)
    .execute();
  const out: Buffer[] = [];
  for (const r of rows) {
    if (fromInt8(r.idx) !== from + out.length) break;
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
  const rows = await db
    .selectFrom("entries")
    .select(["idx", "leaf", "leaf_hash"])
    .where("idx", ">=", BigInt(from))
    .where("idx", "<", BigInt(from + limit))
    .orderBy("idx")
    .execute();
  return rows.map((r) => ({ ...r, idx: fromInt8(r.idx) }));
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
  if (opts.before !== undefined) q = q.where("d.idx", "<", BigInt(opts.before));
  if (opts.predicateType) q = q.where("e.predicate_type", "=", opts.predicateType);
  const rows = await q.orderBy("d.idx", "desc").limit(opts.limit).execute();
  return rows.map((r) => fromInt8(r.idx));
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
  const rows = await db
    .selectFrom("entries")
    .selectAll()
    .where("idx", "in", (eb) =>
      eb
        .selectFrom("entry_digests")
        .select("idx")
        .where("digest", "in", [...digests])
        .where("role", "=", role),
    )
    .where("idx", "<", BigInt(below))
    .orderBy("idx")
    .limit(limit)
    .execute();
  return rows.map(entryFromRow);
}
