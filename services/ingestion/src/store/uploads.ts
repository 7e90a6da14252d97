// Upload repository: uploads and their committed part groups. One decoder per table.
import { fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import type { Kysely, Selectable } from "kysely";

import type { DsseEnvelope } from "@deai/contracts/deai/common/v1/common_pb";
import {
  PlacementSchema,
  UploadSpecSchema,
  type Manifest,
  type Placement,
  type UploadSpec,
} from "@deai/contracts/deai/ingestion/v1/ingestion_pb";
import { FailedPreconditionError } from "@deai/kit/errors";

import { manifestFromJson } from "../domain/manifest.js";
import { envelopeFromJson, envelopeJson } from "./envelopes.js";
import type { IngestionDb, UploadGroupsTable, UploadsTable, UploadStateName } from "./tables.js";

/** An upload row, decoded (jsonb as messages, int8 as numbers). */
export interface UploadRow {
  readonly upload_id: string;
  readonly owner: string;
  readonly spec: UploadSpec;
  readonly k: number;
  readonly m: number;
  readonly shard_size: number;
  readonly stripes_per_group: number;
  readonly state: UploadStateName;
  readonly durable_offset: number;
  readonly stripes_done: number;
  readonly pending_from: number | null;
  readonly placements: Placement[];
  readonly multipart: string[];
  readonly size: number | null;
  readonly content_digest: string | null;
  readonly shard_root: Buffer | null;
  readonly manifest: Manifest | undefined;
  readonly statement: Buffer | null;
  readonly dataset_id: string | null;
  readonly error: string | null;
  readonly anchor_envelope: DsseEnvelope | undefined;
  readonly created_at: Date;
  readonly updated_at: Date;
  readonly expires_at: Date;
}

/** The one decoder of upload rows. */
function uploadFromRow(r: Selectable<UploadsTable>): UploadRow {
  return {
    upload_id: r.upload_id,
    owner: r.owner,
    spec: fromJson(UploadSpecSchema, r.spec as JsonValue),
    k: r.k,
    m: r.m,
    shard_size: r.shard_size,
    stripes_per_group: r.stripes_per_group,
    state: r.state,
    durable_offset: Number(r.durable_offset),
    stripes_done: Number(r.stripes_done),
    pending_from: r.pending_from === null ? null : Number(r.pending_from),
    placements: (r.placements as JsonValue[]).map((p) => fromJson(PlacementSchema, p)),
    multipart: r.multipart as string[],
    size: r.size === null ? null : Number(r.size),
    content_digest: r.content_digest,
    shard_root: r.shard_root,
    manifest: r.manifest ? manifestFromJson(r.manifest) : undefined,
    statement: r.statement,
    dataset_id: r.dataset_id,
    error: r.error,
    anchor_envelope: r.anchor_envelope ? envelopeFromJson(r.anchor_envelope) : undefined,
    created_at: r.created_at,
    updated_at: r.updated_at,
    expires_at: r.expires_at,
  };
}

/** A committed part group, decoded. */
export interface GroupRow {
  readonly groupIndex: number;
  readonly stripes: number;
  readonly etags: string[];
  readonly leaves: Buffer;
}

/** The one decoder of upload_groups rows. */
function groupFromRow(r: Selectable<UploadGroupsTable>): GroupRow {
  return { groupIndex: r.group_index, stripes: r.stripes, etags: r.etags, leaves: r.leaves };
}

export async function uploadById(db: Kysely<IngestionDb>, uploadId: string): Promise<UploadRow | undefined> {
  const r = await db.selectFrom("uploads").selectAll().where("upload_id", "=", uploadId).executeTakeFirst();
  return r && uploadFromRow(r);
}

export async function insertUpload(
  db: Kysely<IngestionDb>,
  u: Pick<
    UploadRow,
    "upload_id" | "owner" | "spec" | "k" | "m" | "shard_size" | "stripes_per_group" | "placements" | "multipart" | "expires_at"
  >,
): Promise<void> {
  await db
    .insertInto("uploads")
    .values({
      upload_id: u.upload_id,
      owner: u.owner,
      spec: JSON.stringify(toJson(UploadSpecSchema, u.spec)),
      k: u.k,
      m: u.m,
      shard_size: u.shard_size,
      stripes_per_group: u.stripes_per_group,
      state: "open",
      placements: JSON.stringify(u.placements.map((p) => toJson(PlacementSchema, p))),
      multipart: JSON.stringify(u.multipart),
      expires_at: u.expires_at,
    })
    .execute();
}

/** A REST request's start while its body is unchecked (null: none pending). */
export async function setPendingFrom(db: Kysely<IngestionDb>, uploadId: string, from: number | null): Promise<void> {
  await db.updateTable("uploads").set({ pending_from: from }).where("upload_id", "=", uploadId).execute();
}

/** Rolls durable progress back to the part group containing `offset`; returns the new durable offset. */
export async function rollbackDurable(db: Kysely<IngestionDb>, uploadId: string, offset: number, now: Date): Promise<number> {
  return db.transaction().execute(async (trx) => {
    const r = await trx.selectFrom("uploads").selectAll().where("upload_id", "=", uploadId).forUpdate().executeTakeFirstOrThrow();
    const groupBytes = r.k * r.shard_size * r.stripes_per_group;
    const group = Math.floor(offset / groupBytes);
    const to = Math.min(Number(r.durable_offset), group * groupBytes);
    await trx.deleteFrom("upload_groups").where("upload_id", "=", uploadId).where("group_index", ">=", group).execute();
    await trx
      .updateTable("uploads")
      .set({ durable_offset: to, stripes_done: to / (r.k * r.shard_size), pending_from: null, updated_at: now })
      .where("upload_id", "=", uploadId)
      .execute();
    return to;
  });
}

/** Commits one part group and the new durable offset of an open upload (FailedPrecondition when it is no longer open). */
export async function commitGroup(
  db: Kysely<IngestionDb>,
  g: {
    uploadId: string;
    groupIndex: number;
    stripes: number;
    etags: string[];
    leaves: Buffer;
    endOffset: number;
    stripesDone: number;
    now: Date;
    expiresAt: Date;
  },
): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx
      .insertInto("upload_groups")
      .values({ upload_id: g.uploadId, group_index: g.groupIndex, stripes: g.stripes, etags: JSON.stringify(g.etags), leaves: g.leaves })
      .onConflict((oc) =>
        oc.columns(["upload_id", "group_index"]).doUpdateSet({ stripes: g.stripes, etags: JSON.stringify(g.etags), leaves: g.leaves }),
      )
      .execute();
    const r = await trx
      .updateTable("uploads")
      .set({ durable_offset: g.endOffset, stripes_done: g.stripesDone, updated_at: g.now, expires_at: g.expiresAt })
      .where("upload_id", "=", g.uploadId)
      .where("state", "=", "open")
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) !== 1) throw new FailedPreconditionError(`upload ${g.uploadId} is no longer open`);
  });
}

/** The committed part groups of an upload (or a dataset: same id), in order. */
export async function groupsOf(db: Kysely<IngestionDb>, uploadId: string): Promise<GroupRow[]> {
  const rows = await db.selectFrom("upload_groups").selectAll().where("upload_id", "=", uploadId).orderBy("group_index").execute();
  return rows.map(groupFromRow);
}

/** Keeps the envelope of an upload already `anchoring` (a retried anchor). */
export async function keepAnchorEnvelope(db: Kysely<IngestionDb>, uploadId: string, envelope: DsseEnvelope, now: Date): Promise<void> {
  await db
    .updateTable("uploads")
    .set({ anchor_envelope: JSON.stringify(envelopeJson(envelope)), updated_at: now })
    .where("upload_id", "=", uploadId)
    .where("state", "=", "anchoring")
    .execute();
}

/** Uploads in `states` whose expiry passed. */
export async function expiredUploads(db: Kysely<IngestionDb>, states: UploadStateName[], now: Date, limit: number): Promise<UploadRow[]> {
  const rows = await db.selectFrom("uploads").selectAll().where("state", "in", states).where("expires_at", "<", now).limit(limit).execute();
  return rows.map(uploadFromRow);
}

/** Uploads left in `anchoring`, untouched since `before`. */
export async function staleAnchoring(db: Kysely<IngestionDb>, before: Date, limit: number): Promise<UploadRow[]> {
  const rows = await db
    .selectFrom("uploads")
    .selectAll()
    .where("state", "=", "anchoring")
    .where("updated_at", "<", before)
    .limit(limit)
    .execute();
  return rows.map(uploadFromRow);
}

/** How many uploads are in `states`. */
export async function countInStates(db: Kysely<IngestionDb>, states: readonly UploadStateName[]): Promise<number> {
  const r = await db
    .selectFrom("uploads")
    .select((eb) => eb.fn.countAll<string>().as("n"))
    .where("state", "in", [...states])
    .executeTakeFirst();
  return Number(r?.n ?? 0);
}

/** The state of an upload now (inside a transaction). */
export async function uploadState(db: Kysely<IngestionDb>, uploadId: string): Promise<UploadStateName | undefined> {
  return (await db.selectFrom("uploads").select(["state"]).where("upload_id", "=", uploadId).executeTakeFirst())?.state;
}
