import type { ColumnType, Generated } from "kysely";

import type { RepairTables } from "./repair-tables.js";

type Json<T> = ColumnType<T, string, string>;
type Int8 = ColumnType<bigint, string | number | bigint, string | number | bigint>;

export interface PlacementRow {
  slot: number;
  providerId: string;
  bucket: string;
  key: string;
  endpoint: string;
}

export interface DatasetsTable {
  dataset_id: string;
  content_digest: string;
  shard_root: Buffer;
  k: number;
  m: number;
  shard_size: number;
  stripes: Int8;
  placements: Json<PlacementRow[]>;
  leaves: Buffer;
  ledger_index: Int8;
  added_at: Date;
}

export interface FailureJson {
  stripe: number;
  outcome: string;
}

export interface RoundsTable {
  sampler_id: string;
  dataset_id: string;
  slot: number;
  round: Int8;
  provider_id: string;
  checkpoint_size: Int8;
  checkpoint_root: Buffer;
  samples: number;
  failures: Json<FailureJson[]>;
  started_at: Date;
  attestation_id: string | null;
}

export interface SamplesTable {
  id: Generated<Int8>;
  sampler_id: string;
  dataset_id: string;
  slot: number;
  provider_id: string;
  stripe: Int8;
  purpose: "round" | "recheck" | "request";
  outcome: string;
  expected_leaf: Buffer;
  observed_leaf: Buffer | null;
  latency_ms: number;
  sampled_at: Date;
  detail: string;
}

export interface SlotStatesTable {
  dataset_id: string;
  slot: number;
  provider_id: string;
  state: string;
  last_sampled_at: Date | null;
  last_outcome: string | null;
  consecutive_failures: number;
}

export interface RechecksTable {
  recheck_id: string;
  available_id: string;
  dataset_id: string;
  slot: number;
  provider_id: string;
  requester_id: string;
  payload: Buffer;
  state: string;
  local_requester: boolean;
  created_at: Date;
  closed_at: Date | null;
}

export interface VotesTable {
  attestation_id: string;
  recheck_id: string;
  sampler_id: string;
  verdict: string;
  sig: Buffer;
  received_at: Date;
}

export interface AttestationsTable {
  attestation_id: string;
  kind: string;
  verdict: string;
  evidence: boolean;
  dataset_id: string;
  provider_id: string;
  slot: number;
  payload: Buffer;
  envelope: Json<unknown>;
  signers: Json<string[]>;
  confidence: number;
  issued_at: Date;
  anchor_here: boolean;
  ledger_index: Int8 | null;
  receipt: Json<unknown> | null;
  refused: string | null;
  created_at: Date;
}

export interface ProviderAvailabilityTable {
  provider_id: string;
  state: string;
  unavailable_slots: number;
  sequence: Int8;
  changed_at: Date;
}

export interface DaSamplerDb extends RepairTables {
  datasets: DatasetsTable;
  rounds: RoundsTable;
  samples: SamplesTable;
  slot_states: SlotStatesTable;
  rechecks: RechecksTable;
  votes: VotesTable;
  attestations: AttestationsTable;
  provider_availability: ProviderAvailabilityTable;
}
