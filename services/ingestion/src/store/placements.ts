// Placement repository: the versions after repair (placement/v1 statements), latest first.
import { create, fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import type { Kysely } from "kysely";

import { PlacementSchema, type Placement } from "@deai/contracts/deai/ingestion/v1/ingestion_pb";
import type { Receipt } from "@deai/contracts/deai/ledger/v1/ledger_pb";
import { ReceiptSchema } from "@deai/contracts/deai/ledger/v1/ledger_pb";
import type { DsseEnvelope } from "@deai/contracts/deai/common/v1/common_pb";

import { envelopeJson } from "./envelopes.js";
import type { IngestionDb } from "./tables.js";

/** A placement version in force. */
export interface PlacementVersion {
  readonly version: number;
  readonly placements: Placement[];
  readonly ledgerIndex: bigint;
}

/** The latest placement version of a dataset after repair; undefined while the manifest's (version 1) is in force. */
export async function latestPlacement(db: Kysely<IngestionDb>, datasetId: string): Promise<PlacementVersion | undefined> {
  const r = await db
    .selectFrom("placements")
    .select(["version", "placements", "ledger_index"])
    .where("dataset_id", "=", datasetId)
    .orderBy("version", "desc")
    .executeTakeFirst();
  if (!r) return undefined;
  return {
    version: r.version,
    placements: (r.placements as JsonValue[]).map((p) => fromJson(PlacementSchema, p)),
    ledgerIndex: BigInt(r.ledger_index),
  };
}

/** Records a verified placement version (a repeated one does nothing). */
export async function insertPlacement(
  db: Kysely<IngestionDb>,
  p: {
    datasetId: string;
    version: number;
    placements: readonly { slot: number; providerId: string; bucket: string; key: string; endpoint: string }[];
    envelope: DsseEnvelope;
    receipt: Receipt | undefined;
    ledgerIndex: bigint;
    signer: string;
    at: Date;
  },
): Promise<boolean> {
  const r = await db
    .insertInto("placements")
    .values({
      dataset_id: p.datasetId,
      version: p.version,
      placements: JSON.stringify(p.placements.map((x) => toJson(PlacementSchema, create(PlacementSchema, x)))),
      envelope: JSON.stringify(envelopeJson(p.envelope)),
      receipt: p.receipt ? JSON.stringify(toJson(ReceiptSchema, p.receipt)) : null,
      ledger_index: p.ledgerIndex,
      signer: p.signer,
      created_at: p.at,
    })
    .onConflict((oc) => oc.columns(["dataset_id", "version"]).doNothing())
    .executeTakeFirst();
  return Number(r.numInsertedOrUpdatedRows ?? 0n) === 1;
}
