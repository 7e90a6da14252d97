/**
 * Uploads: the facade the gRPC and REST handlers call. Create (placement + one multipart
 * upload per slot), stream bytes through an UploadSession, finish (complete the slot objects,
 * compute contentDigest and shardRoot, build the manifest statement), anchor the owner's
 * signed envelope in the ledger, abort, expire. Each step is its own module (see
 * upload-context.ts for the map); this class only reads rows, dispatches on the upload's
 * state and turns rows into the contract's Upload.
 *
 * Nothing is registered before the ledger has the owner's envelope, and the ledger append is
 * idempotent (an identical envelope returns its existing index), so a crash at any step is
 * recovered by calling the same step again.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";

import type { DsseEnvelope } from "@deai/contracts/deai/common/v1/common_pb";
import { UploadSchema, UploadState, type Manifest, type Upload, type UploadSpec } from "@deai/contracts/deai/ingestion/v1/ingestion_pb";
import type { Receipt } from "@deai/contracts/deai/ledger/v1/ledger_pb";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, PermissionDeniedError } from "@deai/kit/errors";

import { datasetById } from "../store/datasets.js";
import type { UploadStateName } from "../store/tables.js";
import * as store from "../store/uploads.js";
import type { UploadRow } from "../store/uploads.js";
import { UploadAnchoring } from "./upload-anchor.js";
import { UploadContext, type UploadsOptions } from "./upload-context.js";
import { createUpload } from "./upload-create.js";
import { UploadEnding } from "./upload-ending.js";
import { UploadFinishing } from "./upload-finish.js";
import { UploadSessions } from "./upload-sessions.js";
import { UploadStreams, type StreamProgress } from "./upload-stream.js";

export type { LedgerAnchor, UploadsOptions } from "./upload-context.js";
export { DEFAULT_K, DEFAULT_M, DEFAULT_SHARD_SIZE } from "./upload-create.js";
export { slotKey } from "./upload-objects.js";

const STATE_NAMES: Record<UploadStateName, UploadState> = {
  open: UploadState.OPEN,
  awaiting_signature: UploadState.AWAITING_SIGNATURE,
  anchoring: UploadState.AWAITING_SIGNATURE,
  completed: UploadState.COMPLETED,
  aborted: UploadState.ABORTED,
  expired: UploadState.EXPIRED,
  failed: UploadState.FAILED,
};

export class Uploads {
  private readonly ctx: UploadContext;
  private readonly sessions: UploadSessions;
  private readonly streams: UploadStreams;
  private readonly finishing: UploadFinishing;
  private readonly anchoring: UploadAnchoring;
  private readonly ending: UploadEnding;
  private sweeping: Promise<number> | undefined;

  constructor(o: UploadsOptions) {
    this.ctx = new UploadContext(o);
    this.sessions = new UploadSessions(this.ctx);
    this.streams = new UploadStreams(this.ctx, this.sessions);
    this.ending = new UploadEnding(this.ctx, this.sessions);
    this.finishing = new UploadFinishing(this.ctx, this.sessions, this.ending);
    this.anchoring = new UploadAnchoring(this.ctx, this.ending);
  }

  async create(actor: string, spec: UploadSpec | undefined): Promise<Upload> {
    const created = await createUpload(this.ctx, actor, spec);
    return "existing" in created ? created.existing : this.toUpload(await this.row(created.uploadId));
  }

  // ---- reads -------------------------------------------------------------------------

  async row(uploadId: string): Promise<UploadRow> {
    if (!/^[0-9a-f-]{36}$/.test(uploadId)) throw new InvalidArgumentError(`upload_id ${JSON.stringify(uploadId)} is not an upload id`);
    const r = await store.uploadById(this.ctx.o.db, uploadId);
    if (!r) throw new NotFoundError(`upload ${uploadId} not found`);
    return r;
  }

  async get(uploadId: string): Promise<Upload> {
    const row = await this.row(uploadId);
    // A REST request that died unverified (crash) does not count: show the offset to resume from.
    if (row.pending_from !== null && row.state === "open" && !this.sessions.has(uploadId)) {
      await this.sessions.rollbackDurable(uploadId, row.pending_from);
      return this.toUpload(await this.row(uploadId));
    }
    return this.toUpload(row);
  }

  toUpload(r: UploadRow): Upload {
    return create(UploadSchema, {
      uploadId: r.upload_id,
      spec: r.spec,
      state: STATE_NAMES[r.state],
      durableOffset: BigInt(r.durable_offset),
      stripesDone: BigInt(r.stripes_done),
      placements: r.placements,
      createdAt: timestampFromDate(r.created_at),
      expiresAt: timestampFromDate(r.expires_at),
      ...(r.manifest ? { manifest: r.manifest } : {}),
      manifestStatement: r.statement ?? new Uint8Array(),
      datasetId: r.dataset_id ?? "",
      error: r.error ?? "",
    });
  }

  /** Bytes received by a live session on this instance (durable or buffered). */
  receivedOffset(uploadId: string): bigint | undefined {
    const s = this.sessions.get(uploadId);
    return s ? BigInt(s.received) : undefined;
  }

  // ---- the lifecycle -----------------------------------------------------------------

  /** UploadChunks (upload-stream.ts). */
  async receive(
    actor: string,
    uploadId: string,
    offset: bigint,
    chunks: AsyncIterable<Uint8Array>,
    opts: { bodyDigest?: string; signedStream?: boolean } = {},
  ): Promise<StreamProgress> {
    return this.streams.receive(actor, await this.row(uploadId), offset, chunks, opts);
  }

  /**
   * CompleteUpload: finishes the stream of an open upload, then with the owner's envelope
   * anchors it (again, for one left `anchoring`); a completed upload answers with its dataset.
   */
  async complete(
    actor: string,
    uploadId: string,
    envelope: DsseEnvelope | undefined,
  ): Promise<{ upload: Upload; manifest?: Manifest; receipt?: Receipt; datasetId?: string }> {
    let row = await this.row(uploadId);
    if (row.owner !== actor) throw new PermissionDeniedError(`upload ${uploadId} belongs to ${row.owner}; only its owner completes it`);
    if (row.state === "open") row = await this.finishing.finish(row);
    if (row.state === "completed") {
      const ds = await datasetById(this.ctx.o.db, row.dataset_id!);
      if (!ds) throw new NotFoundError(`dataset ${row.dataset_id} of upload ${uploadId} not found`);
      return { upload: this.toUpload(row), manifest: ds.manifest, receipt: ds.receipt, datasetId: ds.datasetId };
    }
    // "anchoring": a crash or a ledger timeout interrupted an earlier attempt; the append is idempotent.
    if (row.state !== "awaiting_signature" && row.state !== "anchoring")
      throw new FailedPreconditionError(`upload ${uploadId} is ${row.state}${row.error ? `: ${row.error}` : ""}`);
    if (!envelope) return { upload: this.toUpload(row), ...(row.manifest ? { manifest: row.manifest } : {}) };
    const anchored = await this.anchoring.anchor(row, envelope);
    return { upload: this.toUpload(await this.row(uploadId)), ...anchored };
  }

  /** AbortUpload (upload-ending.ts). */
  async abort(actor: string, uploadId: string): Promise<Upload> {
    await this.ending.abort(actor, await this.row(uploadId));
    return this.get(uploadId);
  }

  /**
   * One sweep over every live state: drops sessions idle past `sessionIdleMs`, expires idle
   * open and awaiting_signature uploads, retries anchors left in `anchoring` (a crash
   * mid-anchor), failing those the ledger refuses for good. Never two at once: a call while
   * one runs gets that run's result. Returns how many uploads it moved to a terminal state.
   */
  sweepOnce(): Promise<number> {
    this.sweeping ??= this.sweepAll().finally(() => (this.sweeping = undefined));
    return this.sweeping;
  }

  private async sweepAll(): Promise<number> {
    this.sessions.evictIdle();
    return (await this.ending.expireDue()) + (await this.anchoring.retryStale());
  }

  /** Closes live sessions (shutdown): their buffered, non-durable bytes are dropped. */
  closeSessions(): void {
    this.sessions.closeAll();
  }
}
