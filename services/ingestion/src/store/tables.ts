import type { ColumnType, Generated } from "kysely";

import type { UploadStateName } from "../domain/upload-states.js";

type Timestamp = ColumnType<Date, Date | string, Date | string>;
type TimestampDefault = ColumnType<Date, Date | string | undefined, Date | string>;
// int8 columns: bigint (the kit's pg type parser returns BigInt); read them through BigInt()/Number() only.
type Int8 = ColumnType<bigint, number | bigint | string, number | bigint | string>;
type Int8Default = ColumnType<bigint, number | bigint | string | undefined, number | bigint | string>;
type Int8Null = ColumnType<bigint | null, number | bigint | string | null | undefined, number | bigint | string | null>;

export type { UploadStateName };

export interface UploadsTable {
  upload_id: string;
  owner: string;
  spec: ColumnType<unknown, string, string>;
  k: number;
  m: number;
  shard_size: number;
  stripes_per_group: number;
  state: UploadStateName;
  durable_offset: Int8Default;
  stripes_done: Int8Default;
  pending_from: Int8Null;
  placements: ColumnType<unknown, string, string>;
  multipart: ColumnType<unknown, string, string>;
  size: Int8Null;
  content_digest: ColumnType<string | null, string | null | undefined, string | null>;
  shard_root: ColumnType<Buffer | null, Buffer | null | undefined, Buffer | null>;
  manifest: ColumnType<unknown, string | null | undefined, string | null>;
  statement: ColumnType<Buffer | null, Buffer | null | undefined, Buffer | null>;
  dataset_id: ColumnType<string | null, string | null | undefined, string | null>;
  error: ColumnType<string | null, string | null | undefined, string | null>;
  /** The owner's envelope while anchoring (DSSE JSON), so a sweep can retry the append after a crash. */
  anchor_envelope: ColumnType<unknown, string | null | undefined, string | null>;
  created_at: TimestampDefault;
  updated_at: TimestampDefault;
  expires_at: Timestamp;
}

export interface UploadGroupsTable {
  upload_id: string;
  group_index: number;
  stripes: number;
  etags: ColumnType<string[], string, string>;
  leaves: Buffer;
}

export interface DatasetsTable {
  dataset_id: string;
  upload_id: string;
  owner: string;
  content_digest: string;
  size: Int8;
  manifest: ColumnType<unknown, string, string>;
  envelope: ColumnType<unknown, string, string>;
  receipt: ColumnType<unknown, string, string>;
  ledger_index: Int8;
  state: Generated<string>;
  created_at: TimestampDefault;
}

export interface ShardFindingsTable {
  finding_id: string;
  dataset_id: string;
  stripe: Int8;
  slot: number;
  provider_id: string;
  expected_leaf: Buffer;
  observed_leaf: Buffer;
  reporter_id: string;
  found_at: Timestamp;
}

export interface PlacementsTable {
  dataset_id: string;
  version: number;
  /** Placement proto JSON per slot, slot order. */
  placements: ColumnType<unknown, string, string>;
  envelope: ColumnType<unknown, string, string>;
  receipt: ColumnType<unknown, string | null, string | null>;
  ledger_index: Int8;
  signer: string;
  created_at: Timestamp;
}

export interface IngestionDb {
  uploads: UploadsTable;
  upload_groups: UploadGroupsTable;
  datasets: DatasetsTable;
  shard_findings: ShardFindingsTable;
  placements: PlacementsTable;
}
