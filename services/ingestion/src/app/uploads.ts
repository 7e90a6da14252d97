/**
 * Uploads: create (placement + one multipart upload per slot), stream bytes through an
 * UploadSession, finish (complete the slot objects, compute contentDigest and shardRoot, build
 * the manifest statement), anchor the owner's signed envelope in the ledger, abort, expire.
 *
 * Nothing is registered before the ledger has the owner's envelope, and the ledger append is
 * idempotent (an identical envelope returns its existing index), so a crash at any step is
 * recovered by calling the same step again.
 */
import { createHash, randomUUID } from "node:crypto";

import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ObservableResult } from "@opentelemetry/api";
import type { Kysely } from "kysely";

import { DigestSchema, type DsseEnvelope } from "@deai/contracts/deai/common/v1/common_pb";
import {
  ManifestSchema,
  PlacementSchema,
  UploadSchema,
  UploadSpecSchema,
  UploadState,
  type Manifest,
  type Placement,
  type Upload,
  type UploadSpec,
} from "@deai/contracts/deai/ingestion/v1/ingestion_pb";
import type { Receipt } from "@deai/contracts/deai/ledger/v1/ledger_pb";
import {
  isRefusedForGood,
  publicKeyOf,
  systemClock,
  transitionRow,
  type Clock,
  type LedgerAnchoring,
  type Logger,
  type OutboxRelay,
} from "@deai/kit";
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnavailableError,
} from "@deai/kit/errors";
import { shardRoot as shardRootOf } from "@deai/proofs";

import { checkCodingParameters } from "../coding/reed-solomon.js";
import { checkManifestEnvelope, CODEC_ID, manifestJson, manifestStatement } from "../domain/manifest.js";
import type { PlacementPolicy, ProviderRegistry, StorageProvider } from "@deai/kit";
import {
  checkShardSize,
  checkSpecFields,
  checkStatementSize,
  envelopeLeafBytes,
  maxSizeForLeafTable,
  maxStatementBytes,
  MAX_MANIFEST_SIGNATURES,
} from "../domain/upload-bounds.js";
import { uploadStates } from "../domain/upload-states.js";
import { enqueueDatasetIngested, enqueueUploadAborted } from "../events/dataset-events.js";
import { datasetByDigest, datasetById, insertDataset } from "../store/datasets.js";
import { envelopeJson } from "../store/envelopes.js";
import type { IngestionDb, UploadStateName } from "../store/tables.js";
import * as store from "../store/uploads.js";
import type { UploadRow } from "../store/uploads.js";
import { codecFor } from "./codecs.js";
import { ingestionMetrics } from "./metrics.js";
import type { MemoryBudget } from "./memory-budget.js";
import { MemoryLease } from "./memory-budget.js";
import { leafList, readVerified, slotLocations, type ReadLayout, type ReadOptions } from "./reader.js";
import { UploadSession, type SessionStore } from "./session.js";

export const DEFAULT_K = 8;
export const DEFAULT_M = 4;
export const DEFAULT_SHARD_SIZE = 256 * 1024;

/** Anchors a signed manifest envelope in the ledger (the kit's anchoring client). */
export type LedgerAnchor = LedgerAnchoring;

export interface UploadsOptions {
  readonly db: Kysely<IngestionDb>;
  readonly registry: ProviderRegistry;
  readonly placement: PlacementPolicy;
  readonly outbox: OutboxRelay;
  readonly logger: Logger;
  readonly ledger: LedgerAnchor | undefined;
  readonly ttlS: number;
  readonly partBytes: number;
  readonly maxUploadBytes: number;
  /** Largest entry the ledger accepts (bytes): the manifest statement's bound derives from it. */
  readonly ledgerEntryBytes: number;
  /** Largest leaf table (stripes × n × 32 bytes) of one upload; bounds its size for a given geometry. */
  readonly maxLeafTableBytes: number;
  /** Buffers of every upload session on this instance. */
  readonly memory: MemoryBudget;
  /** A session with no stream attached for this long is dropped (its buffered bytes resend from durable_offset). */
  readonly sessionIdleMs: number;
  /** An upload in `anchoring` untouched this long is retried by the sweep (an instance crashed mid-anchor). */
  readonly anchorRetryAfterMs: number;
  readonly readOptions: Omit<ReadOptions, "codec">;
  readonly clock?: Clock;
}

const STATE_NAMES: Record<UploadStateName, UploadState> = {
  open: UploadState.OPEN,
  awaiting_signature: UploadState.AWAITING_SIGNATURE,
  anchoring: UploadState.AWAITING_SIGNATURE,
  completed: UploadState.COMPLETED,
  aborted: UploadState.ABORTED,
  expired: UploadState.EXPIRED,
  failed: UploadState.FAILED,
};

/** S3 object key of one slot of an upload (the dataset keeps its upload's objects). */
export function slotKey(uploadId: string, slot: number): string {
  return `datasets/${uploadId}/slot-${String(slot).padStart(3, "0")}`;
}

/** Where each slot of an upload lives: one object per (upload, slot) at its provider. */
function placementsOf(uploadId: string, providers: readonly { id: string; config: { bucket: string; endpoint: string } }[]): Placement[] {
  return providers.map((p, slot) =>
    create(PlacementSchema, { slot, providerId: p.id, bucket: p.config.bucket, key: slotKey(uploadId, slot), endpoint: p.config.endpoint }),
  );
}

function hexOf(digest: { algorithm: string; hex: string } | undefined, what: string): string | undefined {
  if (!digest) return undefined;
  if (digest.algorithm !== "sha256") throw new InvalidArgumentError(`${what}: only sha256 digests are accepted, got ${digest.algorithm}`);
  if (!/^[0-9a-f]{64}$/.test(digest.hex)) throw new InvalidArgumentError(`${what}: sha256 hex must be 64 lowercase hex digits`);
  return digest.hex;
}

export class Uploads {
  private readonly sessions = new Map<string, UploadSession>();
  /** When each session last had a stream attached (clock ms), for idle eviction. */
  private readonly lastUse = new Map<string, number>();
  private readonly clock: Clock;
  /** Uploads this instance is anchoring now: the sweep leaves them alone. */
  private readonly anchoringHere = new Set<string>();
  private sweeping: Promise<number> | undefined;

  constructor(private readonly o: UploadsOptions) {
    this.clock = o.clock ?? systemClock;
    ingestionMetrics().activeUploads.addCallback(this.observeActive);
  }

  /** deai.ingestion.active_uploads: uploads in a live state (every replica reports the same count). */
  private readonly observeActive = async (r: ObservableResult): Promise<void> => {
    r.observe(await store.countInStates(this.o.db, uploadStates.live));
  };

  private now(): Date {
    return this.clock.now();
  }

  // ---- create ------------------------------------------------------------------------

  async create(actor: string, specIn: UploadSpec | undefined): Promise<Upload> {
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
      if (spec.size > BigInt(this.o.maxUploadBytes)) {
        throw new ResourceExhaustedError(`spec.size ${spec.size} exceeds this service's limit of ${this.o.maxUploadBytes} bytes`);
      }
      const leafBound = maxSizeForLeafTable(this.o.maxLeafTableBytes, k, m, shardSize);
      if (spec.size > BigInt(leafBound)) {
        throw new InvalidArgumentError(
          `spec.size ${spec.size}: with k=${k}, m=${m}, S=${shardSize} its leaf table would exceed ${this.o.maxLeafTableBytes} bytes (INGESTION_MAX_LEAF_TABLE_BYTES); ` +
            `at most ${leafBound} bytes with this geometry: use a larger shard size`,
        );
      }
    }
    spec.k = k;
    spec.m = m;
    spec.shardSize = shardSize;
    spec.owner = owner;
    const uploadId = randomUUID();
    const now = this.now();
    const expires = new Date(now.getTime() + this.o.ttlS * 1000);
    // Same bytes from the same owner: the existing dataset, no bytes needed.
    if (declaredDigest) {
      const existing = await datasetByDigest(this.o.db, declaredDigest, owner);
      if (existing) {
        return create(UploadSchema, {
          uploadId: existing.uploadId,
          spec,
          state: UploadState.COMPLETED,
          datasetId: existing.datasetId,
          manifest: existing.manifest,
          createdAt: timestampFromDate(existing.createdAt),
          expiresAt: timestampFromDate(existing.createdAt),
        });
      }
    }
    const n = k + m;
    let providers = await this.o.placement.place(n, { seed: uploadId });
    checkStatementSize(this.worstCaseStatementBytes(spec, uploadId, providers), maxStatementBytes(this.o.ledgerEntryBytes));
    let multipart: string[];
    try {
      multipart = await this.initiateAll(uploadId, providers);
    } catch {
      // A provider went down since its (cached) probe: the failed call marked it down, so a
      // second placement probes it again and leaves it out.
      providers = await this.o.placement.place(n, { seed: uploadId });
      checkStatementSize(this.worstCaseStatementBytes(spec, uploadId, providers), maxStatementBytes(this.o.ledgerEntryBytes));
      multipart = await this.initiateAll(uploadId, providers);
    }
    const placements = placementsOf(uploadId, providers);
    const stripesPerGroup = Math.max(1, Math.ceil(this.o.partBytes / shardSize));
    await store.insertUpload(this.o.db, {
      upload_id: uploadId,
      owner,
      spec,
      k,
      m,
      shard_size: shardSize,
      stripes_per_group: stripesPerGroup,
      placements,
      multipart,
      expires_at: expires,
    });
    this.o.logger.info({ uploadId, owner, k, m, shardSize, providers: providers.map((p) => p.id) }, "upload created");
    return this.toUpload(await this.row(uploadId));
  }

  /** One multipart upload per slot; on a failure, the ones started are aborted. */
  private async initiateAll(uploadId: string, providers: readonly StorageProvider[]): Promise<string[]> {
    const multipart: string[] = [];
    try {
      for (const [slot, p] of providers.entries()) multipart.push(await p.initiateMultipart(slotKey(uploadId, slot)));
      return multipart;
    } catch (e) {
      await Promise.all(multipart.map((id, slot) => providers[slot]!.abortMultipart(slotKey(uploadId, slot), id).catch(() => undefined)));
      throw e;
    }
  }

  /**
   * The largest statement this upload can produce: the spec's own fields and the placement as
   * they will be, with the largest values of what finish fills in (size, stripes, digests, time).
   */
  private worstCaseStatementBytes(
    spec: UploadSpec,
    uploadId: string,
    providers: readonly { id: string; config: { bucket: string; endpoint: string } }[],
  ): number {
    const maxSize =
      spec.size ?? BigInt(Math.min(this.o.maxUploadBytes, maxSizeForLeafTable(this.o.maxLeafTableBytes, spec.k, spec.m, spec.shardSize)));
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

  // ---- reads -------------------------------------------------------------------------

  async row(uploadId: string): Promise<UploadRow> {
    if (!/^[0-9a-f-]{36}$/.test(uploadId)) throw new InvalidArgumentError(`upload_id ${JSON.stringify(uploadId)} is not an upload id`);
    const r = await store.uploadById(this.o.db, uploadId);
    if (!r) throw new NotFoundError(`upload ${uploadId} not found`);
    return r;
  }

  async get(uploadId: string): Promise<Upload> {
    const row = await this.row(uploadId);
    // A REST request that died unverified (crash) does not count: show the offset to resume from.
    if (row.pending_from !== null && row.state === "open" && !this.sessions.has(uploadId)) {
      await this.rollbackDurable(uploadId, row.pending_from);
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

  // ---- streaming ---------------------------------------------------------------------

  /**
   * Feeds a stream of bytes starting at `offset` into the upload. `offset` must be the
   * durable offset, or the received offset of this instance's live session. With
   * `bodyDigest` (REST: the signed Content-Digest of the request body), bytes of this request
   * only count once the body matches it: otherwise (mismatch, broken body, crash) progress
   * rolls back to where the request started. `signedStream` (gRPC: the kit checks the stream
   * against its signed content-digest when it ends, and throws from the iterator if it does not
   * match) binds the bytes the same way: none of the stream counts until it ended intact.
   */
  async receive(
    actor: string,
    uploadId: string,
    offset: bigint,
    chunks: AsyncIterable<Uint8Array>,
    opts: { bodyDigest?: string; signedStream?: boolean } = {},
  ): Promise<{ durableOffset: bigint; receivedOffset: bigint; stripesDone: bigint }> {
    const bound = opts.bodyDigest !== undefined || opts.signedStream === true;
    const row = await this.row(uploadId);
    if (row.owner !== actor)
      throw new PermissionDeniedError(`upload ${uploadId} belongs to ${row.owner}; bytes must be signed by its owner`);
    if (row.state !== "open") throw new FailedPreconditionError(`upload ${uploadId} is ${row.state}, not open: it accepts no more bytes`);
    const session = await this.attach(row);
    if (session.finished) throw new FailedPreconditionError(`upload ${uploadId}: its stream is finished; complete it`);
    if (!session.tryLock()) throw new UnavailableError(`upload ${uploadId} is already receiving a stream; retry when it has ended`);
    this.lastUse.set(uploadId, this.clock.nowMs());
    const start = Number(offset);
    const limit = this.sizeLimit(row);
    let bodyHash = opts.bodyDigest ? createHash("sha256") : undefined;
    let ok = false;
    if (start !== session.received && start !== session.durable) {
      session.unlock();
      throw new FailedPreconditionError(
        `offset ${start} does not continue upload ${uploadId}: resume from durable_offset ${session.durable}` +
          (session.received !== session.durable ? ` (or received_offset ${session.received})` : ""),
      );
    }
    try {
      if (start !== session.received) await session.rollbackToDurable();
      if (bound) await this.markPending(uploadId, start);
      for await (const chunk of chunks) {
        if (chunk.length === 0) continue;
        if (session.received + chunk.length > limit.bytes) throw limit.error(session.received + chunk.length);
        bodyHash?.update(chunk);
        await session.write(chunk);
        ingestionMetrics().received.add(chunk.length);
      }
      await session.settle();
      if (bodyHash && opts.bodyDigest) {
        const got = `sha-256=:${bodyHash.digest("base64")}:`;
        bodyHash = undefined;
        if (got !== opts.bodyDigest) {
          throw new InvalidArgumentError(
            `request body does not match its signed Content-Digest; upload ${uploadId} rolled back to offset ${start}`,
          );
        }
      }
      if (bound) await this.clearPending(uploadId);
      ok = true;
    } finally {
      try {
        if (!ok) await this.rollback(session, bound ? start : undefined);
      } finally {
        session.unlock();
        this.lastUse.set(uploadId, this.clock.nowMs());
      }
    }
    return {
      durableOffset: BigInt(session.durable),
      receivedOffset: BigInt(session.received),
      stripesDone: BigInt(this.stripesOf(session)),
    };
  }

  private stripesOf(s: UploadSession): number {
    return Math.ceil(s.durable / s.stripeBytes);
  }

  private sizeLimit(row: UploadRow): { bytes: number; error: (at: number) => Error } {
    const spec = row.spec;
    if (spec.size !== undefined) {
      const declared = Number(spec.size);
      return {
        bytes: declared,
        error: (at) => new InvalidArgumentError(`stream overruns the declared size: ${at} bytes sent, spec.size is ${declared}`),
      };
    }
    const leafBound = maxSizeForLeafTable(this.o.maxLeafTableBytes, row.k, row.m, row.shard_size);
    const bytes = Math.min(this.o.maxUploadBytes, leafBound);
    return {
      bytes,
      error: (at) =>
        new ResourceExhaustedError(
          `stream exceeds this upload's limit of ${bytes} bytes (at ${at}): ` +
            (bytes === this.o.maxUploadBytes
              ? "the service's largest dataset"
              : `its leaf table with k=${row.k}, m=${row.m}, S=${row.shard_size} would exceed INGESTION_MAX_LEAF_TABLE_BYTES; use a larger shard size`),
        ),
    };
  }

  private async markPending(uploadId: string, from: number): Promise<void> {
    await store.setPendingFrom(this.o.db, uploadId, from);
  }

  private async clearPending(uploadId: string): Promise<void> {
    await store.setPendingFrom(this.o.db, uploadId, null);
  }

  /** After a failed stream: drop buffered bytes; for a REST request, also durable bytes it added. */
  private async rollback(session: UploadSession, requestStart: number | undefined): Promise<void> {
    await session.rollbackToDurable();
    if (requestStart !== undefined && session.durable > requestStart) {
      const to = await this.rollbackDurable(session.uploadId, requestStart);
      await session.rollbackTo(to);
    } else if (requestStart !== undefined) await this.clearPending(session.uploadId).catch(() => undefined);
  }

  /** Rolls durable progress back to the part group containing `offset`; returns the new durable offset. */
  private async rollbackDurable(uploadId: string, offset: number): Promise<number> {
    return store.rollbackDurable(this.o.db, uploadId, offset, this.now());
  }

  /** The live session of an open upload, rebuilt from its durable state when this instance has none. */
  private async attach(row: UploadRow): Promise<UploadSession> {
    let s = this.sessions.get(row.upload_id);
    if (s) return s;
    let durable = Number(row.durable_offset);
    // A REST request whose body was never checked (the process died mid-request) does not count.
    if (row.pending_from !== null) durable = await this.rollbackDurable(row.upload_id, row.pending_from);
    const codec = codecFor(row.k, row.m, row.shard_size);
    const declared = row.spec.size;
    // The last group ends off a group boundary: the stream was finished before a restart.
    const finished = durable % (row.k * row.shard_size * row.stripes_per_group) !== 0;
    const memory = new MemoryLease(this.o.memory, `upload ${row.upload_id}`);
    s = new UploadSession(
      row.upload_id,
      codec,
      row.stripes_per_group,
      this.groupStore(row),
      { durableOffset: durable, hashValid: durable === 0, finished },
      declared === undefined ? undefined : Number(declared),
      memory,
    );
    // Another request built one meanwhile (both awaited the rollback): keep the first.
    const raced = this.sessions.get(row.upload_id);
    if (raced) {
      s.close();
      return raced;
    }
    this.sessions.set(row.upload_id, s);
    this.lastUse.set(row.upload_id, this.clock.nowMs());
    return s;
  }

  private groupStore(row: UploadRow): SessionStore {
    const placements = row.placements;
    const multipart = row.multipart;
    const uploadId = row.upload_id;
    const stripeBytes = row.k * row.shard_size;
    const ttlS = this.o.ttlS;
    return {
      openParts: (groupIndex, bytesPerSlot) =>
        placements.map((p, slot) => this.o.registry.get(p.providerId).openPart(p.key, multipart[slot]!, groupIndex + 1, bytesPerSlot)),
      commitGroup: async (g) => {
        const etags = g.etags
          ? await g.etags
          : await Promise.all(
              placements.map((p, slot) =>
                this.o.registry.get(p.providerId).uploadPart(p.key, multipart[slot]!, g.groupIndex + 1, g.parts![slot]!),
              ),
            );
        await store.commitGroup(this.o.db, {
          uploadId,
          groupIndex: g.groupIndex,
          stripes: g.stripes,
          etags,
          leaves: Buffer.from(g.leaves),
          endOffset: g.endOffset,
          stripesDone: Math.ceil(g.endOffset / stripeBytes),
          now: this.now(),
          expiresAt: new Date(this.clock.nowMs() + ttlS * 1000),
        });
      },
    };
  }

  // ---- finishing and anchoring -------------------------------------------------------

  async complete(
    actor: string,
    uploadId: string,
    envelope: DsseEnvelope | undefined,
  ): Promise<{ upload: Upload; manifest?: Manifest; receipt?: Receipt; datasetId?: string }> {
    let row = await this.row(uploadId);
    if (row.owner !== actor) throw new PermissionDeniedError(`upload ${uploadId} belongs to ${row.owner}; only its owner completes it`);
    if (row.state === "open") row = await this.finishStream(row);
    if (row.state === "completed") {
      const ds = await datasetById(this.o.db, row.dataset_id!);
      if (!ds) throw new NotFoundError(`dataset ${row.dataset_id} of upload ${uploadId} not found`);
      return { upload: this.toUpload(row), manifest: ds.manifest, receipt: ds.receipt, datasetId: ds.datasetId };
    }
    // "anchoring": a crash or a ledger timeout interrupted an earlier attempt; the append is idempotent.
    if (row.state !== "awaiting_signature" && row.state !== "anchoring")
      throw new FailedPreconditionError(`upload ${uploadId} is ${row.state}${row.error ? `: ${row.error}` : ""}`);
    if (!envelope) return { upload: this.toUpload(row), ...(row.manifest ? { manifest: row.manifest } : {}) };
    return this.anchor(row, envelope);
  }

  /** Ends the byte stream: checks the declared size, commits the last group, completes the slot objects, builds the manifest. */
  private async finishStream(row: UploadRow): Promise<UploadRow> {
    const uploadId = row.upload_id;
    const session = await this.attach(row);
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
    const groups = await store.groupsOf(this.o.db, uploadId);
    const placements = row.placements;
    const multipart = row.multipart;
    // Complete every slot object; a provider failing here leaves the upload open to retry.
    await Promise.all(
      placements.map(async (p, slot) => {
        const provider = this.o.registry.get(p.providerId);
        try {
          await provider.completeMultipart(
            p.key,
            multipart[slot]!,
            groups.map((g) => g.etags[slot]!),
          );
        } catch (e) {
          // Completed on an earlier attempt: the object is there.
          if (!(await provider.exists(p.key))) throw e;
        }
      }),
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
        slots: slotLocations(placements, this.o.registry),
      }));
    this.dropSession(uploadId);
    const declared = spec.contentDigest?.hex;
    if (declared && declared !== contentHex) {
      const error = `content digest mismatch: spec.content_digest is sha256 ${declared}, the bytes received hash to ${contentHex}`;
      await transitionRow(this.o.db, uploadStates, {
        table: "uploads",
        key: { upload_id: uploadId },
        from: ["open"],
        to: "failed",
        set: { error, updated_at: this.now() },
      });
      await this.deleteObjects(row).catch((e: unknown) =>
        this.o.logger.warn({ err: e, uploadId }, "cleanup after digest mismatch failed; the sweeper retries"),
      );
      throw new InvalidArgumentError(`${error}; the upload failed and its objects were deleted`);
    }
    // Same bytes, same owner: the existing dataset stands; this upload's copy goes.
    const existing = await datasetByDigest(this.o.db, contentHex, row.owner);
    if (existing) {
      await transitionRow(this.o.db, uploadStates, {
        table: "uploads",
        key: { upload_id: uploadId },
        from: ["open"],
        to: "completed",
        set: { dataset_id: existing.datasetId, size, content_digest: contentHex, updated_at: this.now() },
      });
      await this.deleteObjects(row).catch((e: unknown) => this.o.logger.warn({ err: e, uploadId }, "cleanup of a duplicate upload failed"));
      return this.row(uploadId);
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
      createdAt: timestampFromDate(this.now()),
      codec: CODEC_ID,
      provenance: spec.provenance,
    });
    const statement = manifestStatement(manifest);
    await transitionRow(this.o.db, uploadStates, {
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
        updated_at: this.now(),
        expires_at: new Date(this.clock.nowMs() + this.o.ttlS * 1000),
      },
    });
    this.o.logger.info({ uploadId, size, stripes, contentDigest: contentHex }, "upload finished; awaiting the owner's signature");
    return this.row(uploadId);
  }

  private async digestFromStorage(layout: ReadLayout): Promise<string> {
    this.o.logger.info(
      { uploadId: layout.datasetId },
      "hash state lost (restart or rollback): computing contentDigest from the stored shards",
    );
    const hash = createHash("sha256");
    for await (const piece of readVerified(layout, 0, layout.size, {
      ...this.o.readOptions,
      codec: codecFor(layout.k, layout.m, layout.shardSize),
    })) {
      hash.update(piece);
    }
    return hash.digest("hex");
  }

  /**
   * Anchors the owner's envelope: checks it, claims the row (`anchoring`, with the envelope
   * kept for a retry), appends it to the ledger, and records the dataset. A ledger that
   * refuses for good fails the upload and deletes its objects; "try again" leaves it
   * `anchoring` for the next call or sweep.
   */
  private async anchor(
    row: UploadRow,
    envelope: DsseEnvelope,
  ): Promise<{ upload: Upload; manifest: Manifest; receipt: Receipt; datasetId: string }> {
    checkManifestEnvelope(envelope, row.statement!, row.owner, publicKeyOf);
    if (envelope.signatures.length > MAX_MANIFEST_SIGNATURES) {
      throw new InvalidArgumentError(
        `manifest envelope has ${envelope.signatures.length} signatures; at most ${MAX_MANIFEST_SIGNATURES} fit a ledger entry with this statement`,
      );
    }
    const leafBytes = envelopeLeafBytes(envelope.payload.length, envelope.signatures.length);
    if (leafBytes > this.o.ledgerEntryBytes)
      throw new InvalidArgumentError(
        `manifest envelope is ${leafBytes} bytes as a ledger entry; the ledger holds entries up to ${this.o.ledgerEntryBytes}`,
      );
    if (!this.o.ledger) throw new FailedPreconditionError("this ingestion service has no ledger configured (INGESTION_LEDGER_URL)");
    // Claim the row first: sweep and abort leave an anchoring upload (and its objects) alone.
    const stored = JSON.stringify(envelopeJson(envelope));
    if (row.state === "anchoring") {
      await store.keepAnchorEnvelope(this.o.db, row.upload_id, envelope, this.now());
    } else {
      await transitionRow(this.o.db, uploadStates, {
        table: "uploads",
        key: { upload_id: row.upload_id },
        from: ["awaiting_signature"],
        to: "anchoring",
        set: { anchor_envelope: stored, updated_at: this.now() },
      });
    }
    return this.appendAndRecord(row, envelope);
  }

  /** The ledger append and the dataset record, for `anchor` and for the sweep's retry. */
  private async appendAndRecord(
    row: UploadRow,
    envelope: DsseEnvelope,
  ): Promise<{ upload: Upload; manifest: Manifest; receipt: Receipt; datasetId: string }> {
    this.anchoringHere.add(row.upload_id);
    let anchored;
    try {
      anchored = await this.o.ledger!.anchor(envelope);
    } catch (e) {
      if (!isRefusedForGood(e)) throw e;
      const reason = `the ledger refused the manifest for good: ${(e as Error).message}`;
      await this.failAnchoring(row, reason);
      throw new FailedPreconditionError(`upload ${row.upload_id} failed: ${reason}; its objects were deleted`);
    } finally {
      this.anchoringHere.delete(row.upload_id);
    }
    const { index, receipt } = anchored;
    const manifest = row.manifest!;
    const datasetId = row.upload_id;
    await this.o.db.transaction().execute(async (trx) => {
      await insertDataset(trx, {
        datasetId,
        uploadId: row.upload_id,
        owner: row.owner,
        contentDigest: row.content_digest!,
        size: BigInt(row.size!),
        manifest,
        envelope,
        receipt,
        ledgerIndex: index,
      });
      try {
        await transitionRow(trx, uploadStates, {
          table: "uploads",
          key: { upload_id: row.upload_id },
          from: ["anchoring"],
          to: "completed",
          set: { dataset_id: datasetId, anchor_envelope: null, updated_at: this.now() },
        });
      } catch (e) {
        // Another instance (a sweep elsewhere) recorded the same append first: the same dataset.
        if ((await store.uploadState(trx, row.upload_id)) === "completed") return;
        throw e;
      }
      await enqueueDatasetIngested(trx as unknown as Kysely<unknown>, { datasetId, manifest, ledgerIndex: index, at: this.now() });
    });
    this.o.outbox.kick();
    this.o.logger.info({ datasetId, ledgerIndex: index.toString() }, "dataset anchored");
    return { upload: this.toUpload(await this.row(row.upload_id)), manifest, receipt, datasetId };
  }

  /** anchoring → failed (the ledger refused for good), then the objects go. */
  private async failAnchoring(row: UploadRow, reason: string): Promise<void> {
    await this.endAs(row, "failed", ["anchoring"], reason);
    this.o.logger.warn({ uploadId: row.upload_id, reason }, "upload failed: the ledger refused its manifest; objects deleted");
  }

  // ---- abort and expiry --------------------------------------------------------------

  async abort(actor: string, uploadId: string): Promise<Upload> {
    const row = await this.row(uploadId);
    if (row.owner !== actor) throw new PermissionDeniedError(`upload ${uploadId} belongs to ${row.owner}; only its owner aborts it`);
    if (row.state === "anchoring")
      throw new FailedPreconditionError(
        `upload ${uploadId} is being anchored in the ledger, which may already hold its manifest: it cannot be aborted; ` +
          "complete it again (or wait for the sweep) to get its receipt or its failure",
      );
    if (row.state === "failed")
      throw new FailedPreconditionError(
        `upload ${uploadId} already failed (${row.error ?? "no reason recorded"}); its objects were deleted: nothing to abort`,
      );
    if (row.state !== "open" && row.state !== "awaiting_signature")
      throw new FailedPreconditionError(`upload ${uploadId} is ${row.state}: nothing to abort`);
    // A stream still attached (e.g. held by a stalled provider) is cut: the session closes and its writes fail.
    await this.end(row, "aborted");
    return this.get(uploadId);
  }

  /**
   * One sweep over every live state (`uploadStates.live`): expires idle open and
   * awaiting_signature uploads, retries anchors left in `anchoring` (a crash mid-anchor),
   * failing those the ledger refuses for good, and drops sessions idle past
   * `sessionIdleMs`. Never two at once: a call while one runs gets that run's result.
   * Returns how many uploads it moved to a terminal state.
   */
  sweepOnce(): Promise<number> {
    this.sweeping ??= this.sweepAll().finally(() => (this.sweeping = undefined));
    return this.sweeping;
  }

  /** @deprecated the sweep is `sweepOnce()`; kept for callers of the old name. */
  sweep(): Promise<number> {
    return this.sweepOnce();
  }

  private async sweepAll(): Promise<number> {
    this.evictIdleSessions();
    let done = 0;
    const live = uploadStates.live;
    const expirable = live.filter((st): st is "open" | "awaiting_signature" => uploadStates.canTransition(st, "expired"));
    const due = await store.expiredUploads(this.o.db, expirable, this.now(), 50);
    for (const row of due) {
      if (this.sessions.get(row.upload_id)?.isLocked()) continue;
      try {
        await this.end(row, "expired");
        done++;
      } catch (e) {
        this.o.logger.warn({ err: e, uploadId: row.upload_id }, "could not expire upload yet; retrying next sweep");
      }
    }
    if (live.includes("anchoring")) done += await this.retryAnchors();
    return done;
  }

  /** Uploads stuck in `anchoring` (no instance is on them): append again, or fail for good. */
  private async retryAnchors(): Promise<number> {
    const stale = await store.staleAnchoring(this.o.db, new Date(this.clock.nowMs() - this.o.anchorRetryAfterMs), 20);
    let done = 0;
    for (const row of stale) {
      if (this.anchoringHere.has(row.upload_id)) continue;
      if (!this.o.ledger) continue;
      if (!row.anchor_envelope) {
        await this.failAnchoring(
          row,
          "the envelope being anchored was not kept (an anchor from before this version); sign and upload again",
        );
        done++;
        continue;
      }
      try {
        await this.appendAndRecord(row, row.anchor_envelope);
        done++;
      } catch (e) {
        if (e instanceof FailedPreconditionError && /failed: the ledger refused/.test(e.message)) done++;
        else this.o.logger.warn({ err: e, uploadId: row.upload_id }, "anchor retry did not finish; retrying next sweep");
      }
    }
    return done;
  }

  /** Drops sessions with no stream attached for `sessionIdleMs`: their buffers go back to the budget. */
  private evictIdleSessions(): void {
    const cutoff = this.clock.nowMs() - this.o.sessionIdleMs;
    for (const [id, s] of this.sessions) {
      if (s.isLocked() || (this.lastUse.get(id) ?? 0) > cutoff) continue;
      this.dropSession(id);
      this.o.logger.info({ uploadId: id }, "idle upload session dropped; the next stream resumes from durable_offset");
    }
  }

  private dropSession(uploadId: string): void {
    this.sessions.get(uploadId)?.close();
    this.sessions.delete(uploadId);
    this.lastUse.delete(uploadId);
  }

  private async end(row: UploadRow, state: "aborted" | "expired"): Promise<void> {
    this.dropSession(row.upload_id);
    await this.endAs(row, state, ["open", "awaiting_signature"]);
    this.o.logger.info({ uploadId: row.upload_id, state }, "upload ended; objects deleted");
  }

  /**
   * Moves the row to a terminal state (claimed before anything is deleted, so an upload being
   * anchored keeps its objects), publishes upload_aborted naming the placements, and deletes
   * the objects.
   */
  private async endAs(row: UploadRow, state: "aborted" | "expired" | "failed", from: UploadStateName[], error?: string): Promise<void> {
    const placements = row.placements;
    await this.o.db.transaction().execute(async (trx) => {
      await transitionRow(trx, uploadStates, {
        table: "uploads",
        key: { upload_id: row.upload_id },
        from,
        to: state,
        set: { updated_at: this.now(), ...(error ? { error } : {}) },
      });
      await enqueueUploadAborted(trx as unknown as Kysely<unknown>, {
        uploadId: row.upload_id,
        expired: state === "expired",
        placements,
        at: this.now(),
      });
    });
    this.o.outbox.kick();
    // The event names the placements, so a failed delete is not silent: logged, and evident from the event.
    await this.deleteObjects(row).catch((e: unknown) =>
      this.o.logger.error({ err: e, uploadId: row.upload_id }, "could not delete an ended upload's objects; see its upload_aborted event"),
    );
  }

  /** Aborts each slot's multipart upload and deletes its object (whichever exists). */
  private async deleteObjects(row: UploadRow): Promise<void> {
    const placements = row.placements;
    const multipart = row.multipart;
    await Promise.all(
      placements.map(async (p: Placement, slot) => {
        if (!this.o.registry.has(p.providerId)) return;
        const provider = this.o.registry.get(p.providerId);
        await provider.abortMultipart(p.key, multipart[slot]!);
        await provider.remove(p.key);
      }),
    );
  }

  /** Closes live sessions (shutdown): their buffered, non-durable bytes are dropped. */
  closeSessions(): void {
    ingestionMetrics().activeUploads.removeCallback(this.observeActive);
    for (const id of [...this.sessions.keys()]) this.dropSession(id);
  }
}
