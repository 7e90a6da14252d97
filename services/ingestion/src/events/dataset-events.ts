// Ingestion's events: its NATS subjects and their typed publishers. Every event goes through
// the kit's outbox in the transaction that makes it true (the dataset recorded, the upload
// ended, the shard finding stored), so none is lost while NATS is down.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Kysely } from "kysely";

import {
  DatasetIngestedSchema,
  ShardCheckSource,
  ShardInvalidSchema,
  UploadAbortedSchema,
} from "@deai/contracts/deai/events/v1/ingestion_pb";
import type { Manifest, Placement } from "@deai/contracts/deai/ingestion/v1/ingestion_pb";
import { enqueueEvent } from "@deai/kit";

/** The JetStream stream holding ingestion's subjects (`deai.dataset.>`). */
export const DATASET_STREAM = "dataset";

/** Subjects ingestion publishes (each under the deployment's NATS prefix). */
export const DatasetSubjects = {
  /** A dataset anchored in the ledger (deai.events.v1.DatasetIngested). */
  ingested: "deai.dataset.ingested",
  /** An upload ended without a dataset: aborted, expired or failed (deai.events.v1.UploadAborted). */
  uploadAborted: "deai.dataset.upload_aborted",
  /** Evidence: a shard that failed its leaf check (deai.events.v1.ShardInvalid). */
  shardInvalid: "deai.dataset.shard_invalid",
} as const;

/** Enqueues DatasetIngested in `trx` (the transaction that records the dataset). */
export async function enqueueDatasetIngested(
  trx: Kysely<unknown>,
  e: { datasetId: string; manifest: Manifest; ledgerIndex: bigint; at: Date },
): Promise<void> {
  const eventId = `dataset/ingested/${e.datasetId}`;
  await enqueueEvent(
    trx,
    DatasetSubjects.ingested,
    DatasetIngestedSchema,
    create(DatasetIngestedSchema, {
      eventId,
      occurredAt: timestampFromDate(e.at),
      datasetId: e.datasetId,
      contentDigest: e.manifest.contentDigest,
      manifest: e.manifest,
      ledgerIndex: e.ledgerIndex,
    }),
    eventId,
  );
}

/** Enqueues UploadAborted in `trx` (the transaction that ends the upload). */
export async function enqueueUploadAborted(
  trx: Kysely<unknown>,
  e: { uploadId: string; expired: boolean; placements: Placement[]; at: Date },
): Promise<void> {
  const eventId = `dataset/upload_aborted/${e.uploadId}`;
  await enqueueEvent(
    trx,
    DatasetSubjects.uploadAborted,
    UploadAbortedSchema,
    create(UploadAbortedSchema, {
      eventId,
      occurredAt: timestampFromDate(e.at),
      uploadId: e.uploadId,
      expired: e.expired,
      placements: e.placements,
    }),
    eventId,
  );
}

/** One shard that failed its leaf check, as stored and as ShardInvalid carries it. */
export interface ShardFinding {
  readonly findingId: string;
  readonly datasetId: string;
  readonly stripe: number;
  readonly slot: number;
  readonly providerId: string;
  readonly expected: Uint8Array;
  readonly observed: Uint8Array;
  readonly reporterId: string;
  readonly foundAt: Date;
}

/** Enqueues ShardInvalid in `trx` (the transaction that stores the finding); one event per finding. */
export async function enqueueShardInvalid(trx: Kysely<unknown>, f: ShardFinding): Promise<void> {
  const eventId = `dataset/shard_invalid/${f.findingId}`;
  await enqueueEvent(
    trx,
    DatasetSubjects.shardInvalid,
    ShardInvalidSchema,
    create(ShardInvalidSchema, {
      eventId,
      occurredAt: timestampFromDate(f.foundAt),
      providerId: f.providerId,
      datasetId: f.datasetId,
      stripe: BigInt(f.stripe),
      slot: f.slot,
      expectedLeafHash: f.expected,
      observedLeafHash: f.observed,
      source: ShardCheckSource.DOWNLOAD,
      reporterId: f.reporterId,
      detail: `leaf mismatch at stripe ${f.stripe}, slot ${f.slot}`,
    }),
    eventId,
  );
}
