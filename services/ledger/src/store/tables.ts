import type { ColumnType, Generated } from "kysely";

/** Rows of the ledger schema (see migrations.ts). */
export interface EntriesTable {
  idx: number;
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
  idx: number;
}

export interface TilesTable {
  level: number;
  idx: number;
  hashes: Buffer;
}

export interface TreeStateTable {
  id: number;
  size: number;
  root: Buffer;
  frontier: Buffer;
  updated_at: Generated<Date>;
}

export interface CheckpointsTable {
  tree_size: number;
  root_hash: Buffer;
  note: string;
  published_at: Generated<Date>;
}

/** Witness cosignatures (C2SP tlog-cosignature) on signed checkpoints; see cosignatures.ts. */
export interface CosignaturesTable {
  tree_size: number;
  witness: string;
  key_id: number;
  line: string;
  cosigned_at: number;
  added_at: Generated<Date>;
}

export interface SequencerTable {
  id: number;
  next_index: number;
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
