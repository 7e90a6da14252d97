// Dataset repository: anchored datasets, their leaf tables (from upload_groups) and shard findings.
import { fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import type { Kysely, Selectable } from "kysely";

import type { DsseEnvelope } from "@deai/contracts/deai/common/v1/common_pb";
import type { Manifest } from "@deai/contracts/deai/ingestion/v1/ingestion_pb";
import { ReceiptSchema, type Receipt } from "@deai/contracts/deai/ledger/v1/ledger_pb";

import { manifestFromJson, manifestJson } from "../domain/manifest.js";
import { enqueueShardInvalid, type ShardFinding } from "../events/dataset-events.js";
import { envelopeFromJson, envelopeJson } from "./envelopes.js";
import type { DatasetsTable, IngestionDb } from "./tables.js";

/** A dataset row, decoded. */
export interface DatasetRecord {
  readonly datasetId: string;
  readonly uploadId: string;
  readonly owner: string;
  readonly contentDigest: string;
  readonly size: bigint;
  readonly manifest: Manifest;
  readonly envelope: DsseEnvelope;
  readonly receipt: Receipt;
  readonly ledgerIndex: bigint;
  readonly createdAt: Date;
}

/** The one decoder of dataset rows. */
function datasetFromRow(r: Selectable<DatasetsTable>): DatasetRecord {
  return {
    datasetId: r.dataset_id,
    uploadId: r.upload_id,
    owner: r.owner,
    contentDigest: r.content_digest,
    size: BigInt(r.size),
    manifest: manifestFromJson(r.manifest),
    envelope: envelopeFromJson(r.envelope),
    receipt: fromJson(ReceiptSchema, r.receipt as JsonValue),
    ledgerIndex: BigInt(r.ledger_index),
    createdAt: r.created_at,
  };
}

export async function datasetById(db: Kysely<IngestionDb>, datasetId: string): Promise<DatasetRecord | undefined> {
  const r = await db.selectFrom("datasets").selectAll().where("dataset_id", "=", datasetId).executeTakeFirst();
  return r && datasetFromRow(r);
}

/** The newest dataset with this contentDigest (of `owner`, when given). */
export async function datasetByDigest(db: Kysely<IngestionDb>, contentHex: string, owner?: string): Promise<DatasetRecord | undefined> {
  let q = db.selectFrom("datasets").selectAll().where("content_digest", "=", contentHex);
  if (owner !== undefined) q = q.where("owner", "=", owner);
  const r = await q.orderBy("created_at", "desc").executeTakeFirst();
  return r && datasetFromRow(r);
}

/** One page of datasets, newest first, after the position `after` (exclusive); `limit` rows at most. */
export async function listDatasets(
  db: Kysely<IngestionDb>,
  f: { owner?: string; contentHex?: string; after?: { at: Date; id: string }; limit: number },
): Promise<DatasetRecord[]> {
  let q = db.selectFrom("datasets").selectAll();
  if (f.owner) q = q.where("owner", "=", f.owner);
  if (f.contentHex) q = q.where("content_digest", "=", f.contentHex);
  const after = f.after;
  if (after)
    q = q.where((eb) =>
      eb.or([eb("created_at", "<", after.at), eb.and([eb("created_at", "=", after.at), eb("dataset_id", "<", after.id)])]),
    );
  const rows = await q.orderBy("created_at", "desc").orderBy("dataset_id", "desc").limit(f.limit).execute();
  return rows.map(datasetFromRow);
}

/** Records an anchored dataset (a repeated insert of the same dataset does nothing). */
export async function insertDataset(trx: Kysely<IngestionDb>, d: Omit<DatasetRecord, "createdAt">): Promise<void> {
  await trx
    .insertInto("datasets")
    .values({
      dataset_id: d.datasetId,
      upload_id: d.uploadId,
      owner: d.owner,
      content_digest: d.contentDigest,
      size: d.size,
      manifest: JSON.stringify(manifestJson(d.manifest)),
      envelope: JSON.stringify(envelopeJson(d.envelope)),
      receipt: JSON.stringify(toJson(ReceiptSchema, d.receipt)),
      ledger_index: d.ledgerIndex,
    })
    .onConflict((oc) => oc.column("dataset_id").doNothing())
    .execute();
}

/** Stores a shard finding and its shard_invalid event in one transaction (the outbox relays it). */
export async function recordShardFinding(db: Kysely<IngestionDb>, f: ShardFinding): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx
      .insertInto("shard_findings")
      .values({
        finding_id: f.findingId,
        dataset_id: f.datasetId,
        stripe: f.stripe,
        slot: f.slot,
        provider_id: f.providerId,
        expected_leaf: Buffer.from(f.expected),
        observed_leaf: Buffer.from(f.observed),
        reporter_id: f.reporterId,
        found_at: f.foundAt,
      })
      .execute();
    await enqueueShardInvalid(trx as unknown as Kysely<unknown>, f);
  });
}
