// Cosignature repository: witness cosignature lines kept per signed checkpoint.
import { sql, type Kysely, type Selectable } from "kysely";

import { checkpointAt, type CheckpointRow } from "./tree.js";
import { fromInt8, type CosignaturesTable, type LedgerDb } from "./tables.js";

export interface CosignatureRow {
  readonly tree_size: number;
  readonly witness: string;
  readonly key_id: number;
  /** The signed-note signature line, without its newline. */
  readonly line: string;
  /** POSIX seconds from the cosignature. */
  readonly cosigned_at: number;
}

/** The one decoder of cosignature rows (int8 → number). */
function cosignatureFromRow(
  r: Pick<Selectable<CosignaturesTable>, "tree_size" | "witness" | "key_id" | "line" | "cosigned_at">,
): CosignatureRow {
  return {
    tree_size: fromInt8(r.tree_size),
    witness: r.witness,
    key_id: fromInt8(r.key_id),
    line: r.line,
    cosigned_at: fromInt8(r.cosigned_at),
  };
}

/** One row per (checkpoint, witness key); a newer cosignature by the same key replaces the older. */
export async function cosignaturesMigration(db: Kysely<unknown>): Promise<void> {
  await sql`create table cosignatures (
    tree_size bigint not null references checkpoints (tree_size),
    witness text not null,
    key_id bigint not null,
    line text not null,
    cosigned_at bigint not null,
    added_at timestamptz not null default now(),
    primary key (tree_size, witness, key_id)
  )`.execute(db);
}

/** Stores a cosignature, keeping the newest per (checkpoint, witness key). */
export async function upsertCosignature(db: Kysely<LedgerDb>, c: CosignatureRow): Promise<void> {
  await db
    .insertInto("cosignatures")
    .values({ tree_size: c.tree_size, witness: c.witness, key_id: c.key_id, line: c.line, cosigned_at: c.cosigned_at })
    .onConflict((oc) =>
      oc
        .columns(["tree_size", "witness", "key_id"])
        .doUpdateSet({ line: sql`excluded.line`, cosigned_at: sql`excluded.cosigned_at` })
        .where(sql<boolean>`cosignatures.cosigned_at <= excluded.cosigned_at`),
    )
    .execute();
}

/** Cosignatures of the given checkpoints. */
export async function cosignaturesOf(db: Kysely<LedgerDb>, treeSizes: readonly number[]): Promise<CosignatureRow[]> {
  if (treeSizes.length === 0) return [];
  const rows = await db
    .selectFrom("cosignatures")
    .select(["tree_size", "witness", "key_id", "line", "cosigned_at"])
    .where(
      "tree_size",
      "in",
      treeSizes.map((n) => BigInt(n)),
    )
    .orderBy("tree_size")
    .orderBy("witness")
    .orderBy("key_id")
    .execute();
  return rows.map(cosignatureFromRow);
}

/**
 * The newest checkpoint cosigned by at least `quorum` of the given witness keys
 * (`"<name> <keyId>"`), with its cosignatures.
 */
export async function latestCosignedCheckpoint(
  db: Kysely<LedgerDb>,
  witnessKeys: readonly { name: string; keyId: number }[],
  quorum: number,
): Promise<{ checkpoint: CheckpointRow; cosignatures: CosignatureRow[] } | undefined> {
  if (witnessKeys.length === 0) return undefined;
  const size = await sql<{ tree_size: bigint }>`
    select c.tree_size from cosignatures c
    join unnest(${witnessKeys.map((k) => k.name)}::text[], ${witnessKeys.map((k) => k.keyId)}::bigint[]) as w(witness, key_id)
      on c.witness = w.witness and c.key_id = w.key_id
    group by c.tree_size
    having count(*) >= ${quorum}
    order by c.tree_size desc
    limit 1`.execute(db);
  const treeSize = size.rows[0]?.tree_size;
  if (treeSize === undefined) return undefined;
  const checkpoint = await checkpointAt(db, fromInt8(treeSize));
  if (checkpoint === undefined) throw new Error(`cosigned checkpoint ${treeSize} is missing from checkpoints`);
  return { checkpoint, cosignatures: await cosignaturesOf(db, [checkpoint.tree_size]) };
}
