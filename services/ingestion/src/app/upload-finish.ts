/**
 * The end of an upload's byte stream: the declared size is checked, the last part group
 * committed, every slot object completed, and contentDigest (from the session's running hash,
 * or from the stored shards when a restart lost it) and shardRoot (over the stored leaf table)
 * computed. Then one of: the declared digest does not match (failed, objects deleted); the
 * owner already has these bytes (completed as that dataset, this copy deleted); or the
 * manifest statement is built and the upload awaits the owner's signature.
 */
import { createHash } from "node:crypto";

import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";

import { DigestSchema } from "@deai/contracts/deai/common/v1/common_pb";
import { ManifestSchema } from "@deai/contracts/deai/ingestion/v1/ingestion_pb";
import { transitionRow } from "@deai/kit";
import { FailedPreconditionError, InvalidArgumentError } from "@deai/kit/errors";
import { shardRoot as shardRootOf } from "@deai/proofs";

import { CODEC_ID, manifestJson, manifestStatement } from "../domain/manifest.js";
import { uploadStates } from "../domain/upload-states.js";
import { datasetByDigest } from "../store/datasets.js";
import * as store from "../store/uploads.js";
import type { UploadRow } from "../store/uploads.js";
import { codecFor } from "./codecs.js";
import { leafList, readVerified, slotLocations, type ReadLayout } from "./reader.js";
import type { UploadContext } from "./upload-context.js";
import type { UploadEnding } from "./upload-ending.js";
import { completeAll } from "./upload-objects.js";
import type { UploadSessions } from "./upload-sessions.js";

export class UploadFinishing {
  constructor(
    private readonly ctx: UploadContext,
    private readonly sessions: UploadSessions,
    private readonly ending: UploadEnding,
  ) {}

  /** Ends the byte stream of an open upload; returns its row in the state it reached. */
  async finish(row: UploadRow): Promise<UploadRow> {
    const o = this.ctx.o;
    const uploadId = row.upload_id;
    const session = await this.sessions.attach(row);
    if (session.isLocked())
      throw new FailedPreconditionError(`upload ${uploadId} is still receiving a stream; complete it after the stream ends`);
    const spec = row.spec;
    if (spec.size !== undefined && BigInt(session.received) !== spec.size) {
      throw new FailedPreconditionError(
        `upload ${uploadId} has ${session.received} of its declared ${spec.size} bytes: send the rest from offset ${session.received} (durable_offset ${session.durable})`,
      );
    }
    if (session.received === 0) throw new FailedPreconditionError(`upload ${uploadId} has no bytes: a dataset holds at least one byte`);
    if (!session.tryLock())
      throw new FailedPreconditionError(`upload ${uploadId} is still receiving a stream; complete it after the stream ends`);
    try {
      await session.finish();
    } catch (e) {
      await session.rollbackToDurable();
      throw e;
    } finally {
      session.unlock();
    }
    const size = session.received;
    const groups = await store.groupsOf(o.db, uploadId);
    const placements = row.placements;
    await completeAll(
      o.registry,
      placements,
      row.multipart,
      groups.map((g) => g.etags),
    );
    const leaves = Buffer.concat(groups.map((g) => g.leaves));
    const n = row.k + row.m;
    const stripes = Math.ceil(size / (row.k * row.shard_size));
    if (leaves.length !== stripes * n * 32)
      throw new Error(`upload ${uploadId}: ${leaves.length / 32} leaves stored for ${stripes} stripes × ${n} slots`);
    const shardRoot = shardRootOf(leafList(leaves));
    const contentHex =
      session.digestHex() ??
      (await this.digestFromStorage({
        datasetId: uploadId,
        k: row.k,
        m: row.m,
        shardSize: row.shard_size,
        size,
        stripes,
        leaves,
        slots: slotLocations(placements, o.registry),
      }));
    this.sessions.drop(uploadId);
    const declared = spec.contentDigest?.hex;
    if (declared && declared !== contentHex) {
      const error = `content digest mismatch: spec.content_digest is sha256 ${declared}, the bytes received hash to ${contentHex}`;
      await transitionRow(o.db, uploadStates, {
        table: "uploads",
        key: { upload_id: uploadId },
        from: ["open"],
        to: "failed",
        set: { error, updated_at: this.ctx.now() },
      });
      await this.ending
        .deleteObjects(row)
        .catch((e: unknown) => o.logger.warn({ err: e, uploadId }, "cleanup after digest mismatch failed; the sweeper retries"));
      throw new InvalidArgumentError(`${error}; the upload failed and its objects were deleted`);
    }
    // Same bytes, same owner: the existing dataset stands; this upload's copy goes.
    const existing = await datasetByDigest(o.db, contentHex, row.owner);
    if (existing) {
      await transitionRow(o.db, uploadStates, {
        table: "uploads",
        key: { upload_id: uploadId },
        from: ["open"],
        to: "completed",
        set: { dataset_id: existing.datasetId, size, content_digest: contentHex, updated_at: this.ctx.now() },
      });
      await this.ending
        .deleteObjects(row)
        .catch((e: unknown) => o.logger.warn({ err: e, uploadId }, "cleanup of a duplicate upload failed"));
      return this.reread(uploadId);
    }
    const manifest = create(ManifestSchema, {
      contentDigest: create(DigestSchema, { algorithm: "sha256", hex: contentHex }),
      size: BigInt(size),
      k: row.k,
      m: row.m,
      shardSize: row.shard_size,
      stripes: BigInt(stripes),
      shardRoot,
      placements,
      mediaType: spec.mediaType || "application/octet-stream",
      name: spec.name,
      license: spec.license,
      usageTerms: spec.usageTerms,
      owner: row.owner,
      parents: spec.parents,
      createdAt: timestampFromDate(this.ctx.now()),
      codec: CODEC_ID,
      provenance: spec.provenance,
    });
    const statement = manifestStatement(manifest);
    await transitionRow(o.db, uploadStates, {
      table: "uploads",
      key: { upload_id: uploadId },
      from: ["open"],
      to: "awaiting_signature",
      set: {
        size,
        content_digest: contentHex,
        shard_root: Buffer.from(shardRoot),
        manifest: JSON.stringify(manifestJson(manifest)),
        statement: Buffer.from(statement),
        updated_at: this.ctx.now(),
        expires_at: this.ctx.expiresFromNow(),
      },
    });
    o.logger.info({ uploadId, size, stripes, contentDigest: contentHex }, "upload finished; awaiting the owner's signature");
    return this.reread(uploadId);
  }

  private async reread(uploadId: string): Promise<UploadRow> {
    const r = await store.uploadById(this.ctx.o.db, uploadId);
    if (!r) throw new Error(`upload ${uploadId} vanished while finishing`);
    return r;
  }

  /** contentDigest read back through the verified read path, when the session's running hash was lost. */
  private async digestFromStorage(layout: ReadLayout): Promise<string> {
    this.ctx.o.logger.info(
      { uploadId: layout.datasetId },
      "hash state lost (restart or rollback): computing contentDigest from the stored shards",
    );
    const hash = createHash("sha256");
    for await (const piece of readVerified(layout, 0, layout.size, {
      ...this.ctx.o.readOptions,
      codec: codecFor(layout.k, layout.m, layout.shardSize),
    })) {
      hash.update(piece);
    }
    return hash.digest("hex");
  }
}
