import type { ColumnType } from "kysely";

import type { PlacementRow } from "./tables.js";

type Json<T> = ColumnType<T, string, string>;
type Int8 = ColumnType<bigint, string | number | bigint, string | number | bigint>;

/** One slot a repair job moves. */
export interface RepairSlotJson {
  slot: number;
  from: string;
  to: string;
  reason: "unavailable" | "invalid" | "jailed" | "tombstoned";
  bucket: string;
  key: string;
  endpoint: string;
  /** The multipart upload at the new provider, once started. */
  uploadId: string | null;
}

export interface RepairJobsTable {
  job_id: string;
  dataset_id: string;
  version: number;
  base_version: number;
  slots: Json<RepairSlotJson[]>;
  state: string;
  stripes_done: Int8;
  /** Part ETags per slot (slot → ETags in part order). */
  parts: Json<Record<string, string[]>>;
  parts_sent: number;
  bytes_read: Int8;
  bytes_written: Int8;
  runs: number;
  statement: Buffer | null;
  envelope: Json<unknown> | null;
  ledger_index: Int8 | null;
  receipt: Json<unknown> | null;
  error: string | null;
  created_at: Date;
  updated_at: Date;
  /** When every new object was complete and checked (the statement signed). */
  rebuilt_at: Date | null;
  completed_at: Date | null;
}

export interface PlacementVersionsTable {
  dataset_id: string;
  version: number;
  placements: Json<PlacementRow[]>;
  envelope: Json<unknown>;
  ledger_index: Int8;
  created_at: Date;
}

export interface RepairWatchTable {
  dataset_id: string;
  slot: number;
  provider_id: string;
  since: Date;
}

export interface ProviderStatusTable {
  provider_id: string;
  status: "active" | "jailed" | "tombstoned";
  until: Date | null;
  slash_id: string | null;
  updated_at: Date;
}

export interface ProviderStakesTable {
  provider_id: string;
  bonded: ColumnType<string, string, string>;
  updated_at: Date;
}

/** Repair's tables (store/repair-migrations.ts). */
export interface RepairTables {
  repair_jobs: RepairJobsTable;
  placement_versions: PlacementVersionsTable;
  repair_watch: RepairWatchTable;
  provider_status: ProviderStatusTable;
  provider_stakes: ProviderStakesTable;
}
