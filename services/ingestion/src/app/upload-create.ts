/**
 * CreateUpload: checks the spec (coding parameters, sizes, digests, owner = caller), answers
 * with the existing dataset when the owner declares bytes it already has, places the n = k + m
 * slots at distinct providers, starts one multipart upload per slot and records the upload.
 * Nothing is recorded unless every slot's multipart upload started.
 */
import { randomUUID } from "node:crypto";

import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";

import { DigestSchema } from "@deai/contracts/deai/common/v1/common_pb";
import {
  ManifestSchema,
  UploadSchema,
  UploadSpecSchema,
  UploadState,
  type Upload,
  type UploadSpec,
} from "@deai/contracts/deai/ingestion/v1/ingestion_pb";
import { InvalidArgumentError, PermissionDeniedError, ResourceExhaustedError } from "@deai/kit/errors";

import { checkCodingParameters } from "../coding/reed-solomon.js";
import { CODEC_ID, manifestStatement } from "../domain/manifest.js";
import { checkShardSize, checkSpecFields, checkStatementSize, maxSizeForLeafTable, maxStatementBytes } from "../domain/upload-bounds.js";
import { datasetByDigest } from "../store/datasets.js";
import * as store from "../store/uploads.js";
import type { UploadContext } from "./upload-context.js";
import { initiateAll, placementsOf } from "./upload-objects.js";

export const DEFAULT_K = 8;
export const DEFAULT_M = 4;
export const DEFAULT_SHARD_SIZE = 256 * 1024;

function hexOf(digest: { algorithm: string; hex: string } | undefined, what: string): string | undefined {
  if (!digest) return undefined;
  if (digest.algorithm !== "sha256") throw new InvalidArgumentError(`${what}: only sha256 digests are accepted, got ${digest.algorithm}`);
  if (!/^[0-9a-f]{64}$/.test(digest.hex)) throw new InvalidArgumentError(`${what}: sha256 hex must be 64 lowercase hex digits`);
  return digest.hex;
}

/**
 * Creates the upload and returns its id, or the existing dataset as a completed upload when
 * the declared digest names bytes this owner already has.
 */
export async function createUpload(
  ctx: UploadContext,
  actor: string,
  specIn: UploadSpec | undefined,
): Promise<{ uploadId: string } | { existing: Upload }> {
  const o = ctx.o;
  const spec = create(UploadSpecSchema, specIn ?? {});
  const k = spec.k || DEFAULT_K;
  const m = spec.m || DEFAULT_M;
  const shardSize = spec.shardSize || DEFAULT_SHARD_SIZE;
  checkCodingParameters(k, m, shardSize);
  checkShardSize(shardSize);
  checkSpecFields(spec);
  const owner = spec.owner || actor;
  if (owner !== actor) throw new PermissionDeniedError(`an upload for owner ${owner} must be created by that owner (signed by ${actor})`);
  const declaredDigest = hexOf(spec.contentDigest, "spec.content_digest");
  spec.parents.forEach((p, i) => hexOf(p, `spec.parents[${i}]`));
  if (spec.size !== undefined) {
    if (spec.size === 0n) throw new InvalidArgumentError("spec.size: a dataset holds at least one byte");
    if (spec.size > BigInt(o.maxUploadBytes)) {
      throw new ResourceExhaustedError(`spec.size ${spec.size} exceeds this service's limit of ${o.maxUploadBytes} bytes`);
    }
    const leafBound = maxSizeForLeafTable(o.maxLeafTableBytes, k, m, shardSize);
    if (spec.size > BigInt(leafBound)) {
      throw new InvalidArgumentError(
        `spec.size ${spec.size}: with k=${k}, m=${m}, S=${shardSize} its leaf table would exceed ${o.maxLeafTableBytes} bytes (INGESTION_MAX_LEAF_TABLE_BYTES); ` +
          `at most ${leafBound} bytes with this geometry: use a larger shard size`,
      );
    }
  }
  spec.k = k;
  spec.m = m;
  spec.shardSize = shardSize;
  spec.owner = owner;
  const uploadId = randomUUID();
  // Same bytes from the same owner: the existing dataset, no bytes needed.
  if (declaredDigest) {
    const existing = await datasetByDigest(o.db, declaredDigest, owner);
    if (existing) {
      return {
        existing: create(UploadSchema, {
          uploadId: existing.uploadId,
          spec,
          state: UploadState.COMPLETED,
          datasetId: existing.datasetId,
          manifest: existing.manifest,
          createdAt: timestampFromDate(existing.createdAt),
          expiresAt: timestampFromDate(existing.createdAt),
        }),
      };
    }
  }
  const n = k + m;
  const bound = maxStatementBytes(o.ledgerEntryBytes);
  let providers = await o.placement.place(n, { seed: uploadId });
  checkStatementSize(worstCaseStatementBytes(ctx, spec, uploadId, providers), bound);
  let multipart: string[];
  try {
    multipart = await initiateAll(uploadId, providers);
  } catch {
    // A provider went down since its (cached) probe: the failed call marked it down, so a
    // second placement probes it again and leaves it out.
    providers = await o.placement.place(n, { seed: uploadId });
    checkStatementSize(worstCaseStatementBytes(ctx, spec, uploadId, providers), bound);
    multipart = await initiateAll(uploadId, providers);
  }
  await store.insertUpload(o.db, {
    upload_id: uploadId,
    owner,
    spec,
    k,
    m,
    shard_size: shardSize,
    stripes_per_group: Math.max(1, Math.ceil(o.partBytes / shardSize)),
    placements: placementsOf(uploadId, providers),
    multipart,
    expires_at: ctx.expiresFromNow(),
  });
  o.logger.info({ uploadId, owner, k, m, shardSize, providers: providers.map((p) => p.id) }, "upload created");
  return { uploadId };
}

/**
 * The largest statement this upload can produce: the spec's own fields and the placement as
 * they will be, with the largest values of what finish fills in (size, stripes, digests, time).
 */
function worstCaseStatementBytes(
  ctx: UploadContext,
  spec: UploadSpec,
  uploadId: string,
  providers: readonly { id: string; config: { bucket: string; endpoint: string } }[],
): number {
  const o = ctx.o;
  const maxSize = spec.size ?? BigInt(Math.min(o.maxUploadBytes, maxSizeForLeafTable(o.maxLeafTableBytes, spec.k, spec.m, spec.shardSize)));
  const manifest = create(ManifestSchema, {
    contentDigest: create(DigestSchema, { algorithm: "sha256", hex: "f".repeat(64) }),
    size: maxSize,
    k: spec.k,
    m: spec.m,
    shardSize: spec.shardSize,
    stripes: maxSize,
    shardRoot: new Uint8Array(32).fill(0xff),
    placements: placementsOf(uploadId, providers),
    mediaType: spec.mediaType || "application/octet-stream",
    name: spec.name,
    license: spec.license,
    usageTerms: spec.usageTerms,
    owner: spec.owner,
    parents: spec.parents,
    createdAt: timestampFromDate(new Date(Date.UTC(9999, 11, 31, 23, 59, 59, 999))),
    codec: CODEC_ID,
    provenance: spec.provenance,
  });
  return manifestStatement(manifest).length;
}
