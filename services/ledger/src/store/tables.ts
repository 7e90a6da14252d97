import type { ColumnType, Generated } from "kysely";

/**
 * A Postgres int8 (bigint) column: the driver returns it as a bigint (the kit's type parser),
 * writes take a number or a bigint. Repositories decode rows into numbers (every index and
 * size here is < 2^53, checked where it enters) in one decoder per table.
 */
export type Int8 = ColumnType<bigint, bigint | number, bigint | number>;

/** Rows of the ledger schema (see migrations.ts). */
export interface EntriesTable {
  idx: Int8;
  leaf_hash: Buffer;
  leaf: Buffer;
  predicate_type: string;
  signers: ColumnType<string[], string, string>;
  subjects: ColumnType<string[], string, string>;
  materials: ColumnType<string[], string, string>;
  sequenced_at: Generated<Date>;
}

export interface EntryDigestsTable {
  digest: string;
  role: "s" | "m";
  idx: Int8;
}

export interface TilesTable {
  level: number;
  idx: Int8;
  hashes: Buffer;
}

export interface TreeStateTable {
  id: number;
  size: Int8;
  root: Buffer;
  frontier: Buffer;
  updated_at: Generated<Date>;
}

export interface CheckpointsTable {
  tree_size: Int8;
  root_hash: Buffer;
  note: string;
  published_at: Generated<Date>;
}

/** Witness cosignatures (C2SP tlog-cosignature) on signed checkpoints; see cosignatures.ts. */
export interface CosignaturesTable {
  tree_size: Int8;
  witness: string;
  key_id: Int8;
  line: string;
  cosigned_at: Int8;
  added_at: Generated<Date>;
}

export interface SequencerTable {
  id: number;
  next_index: Int8;
}

export interface LedgerDb {
  entries: EntriesTable;
  entry_digests: EntryDigestsTable;
  tiles: TilesTable;
  tree_state: TreeStateTable;
  checkpoints: CheckpointsTable;
  sequencer: SequencerTable;
  cosignatures: CosignaturesTable;
}

/** An int8 value as a number; throws past 2^53 (no index or size of this log gets there). */
export function fromInt8(v: bigint | number | string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new Error(`int8 value ${String(v)} is not a safe integer`);
  return n;
}
