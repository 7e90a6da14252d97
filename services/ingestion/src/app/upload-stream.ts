/**
 * UploadChunks: feeds a stream of bytes into an open upload's session. Bytes bound to a signed
 * digest (REST's Content-Digest, gRPC's signed stream) count only once the whole body matched;
 * otherwise (mismatch, broken body, crash) progress rolls back to where the request started.
 */
import { createHash } from "node:crypto";

import {
  FailedPreconditionError,
  InvalidArgumentError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnavailableError,
} from "@deai/kit/errors";

import { maxSizeForLeafTable } from "../domain/upload-bounds.js";
import * as store from "../store/uploads.js";
import type { UploadRow } from "../store/uploads.js";
import { ingestionMetrics } from "./metrics.js";
import type { UploadSession } from "./session.js";
import type { UploadContext } from "./upload-context.js";
import type { UploadSessions } from "./upload-sessions.js";

export interface StreamProgress {
  durableOffset: bigint;
  receivedOffset: bigint;
  stripesDone: bigint;
}

export class UploadStreams {
  constructor(
    private readonly ctx: UploadContext,
    private readonly sessions: UploadSessions,
  ) {}

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
    row: UploadRow,
    offset: bigint,
    chunks: AsyncIterable<Uint8Array>,
    opts: { bodyDigest?: string; signedStream?: boolean } = {},
  ): Promise<StreamProgress> {
    const uploadId = row.upload_id;
    const bound = opts.bodyDigest !== undefined || opts.signedStream === true;
    if (row.owner !== actor)
      throw new PermissionDeniedError(`upload ${uploadId} belongs to ${row.owner}; bytes must be signed by its owner`);
    if (row.state !== "open") throw new FailedPreconditionError(`upload ${uploadId} is ${row.state}, not open: it accepts no more bytes`);
    const session = await this.sessions.attach(row);
    if (session.finished) throw new FailedPreconditionError(`upload ${uploadId}: its stream is finished; complete it`);
    if (!session.tryLock()) throw new UnavailableError(`upload ${uploadId} is already receiving a stream; retry when it has ended`);
    this.sessions.touch(uploadId);
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
      if (bound) await store.setPendingFrom(this.ctx.o.db, uploadId, start);
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
      if (bound) await store.setPendingFrom(this.ctx.o.db, uploadId, null);
      ok = true;
    } finally {
      try {
        if (!ok) await this.rollback(session, bound ? start : undefined);
      } finally {
        session.unlock();
        this.sessions.touch(uploadId);
      }
    }
    return {
      durableOffset: BigInt(session.durable),
      receivedOffset: BigInt(session.received),
      stripesDone: BigInt(Math.ceil(session.durable / session.stripeBytes)),
    };
  }

  /** The most bytes this upload may hold: its declared size, else the service's and the leaf table's bound. */
  private sizeLimit(row: UploadRow): { bytes: number; error: (at: number) => Error } {
    const o = this.ctx.o;
    const spec = row.spec;
    if (spec.size !== undefined) {
      const declared = Number(spec.size);
      return {
        bytes: declared,
        error: (at) => new InvalidArgumentError(`stream overruns the declared size: ${at} bytes sent, spec.size is ${declared}`),
      };
    }
    const leafBound = maxSizeForLeafTable(o.maxLeafTableBytes, row.k, row.m, row.shard_size);
    const bytes = Math.min(o.maxUploadBytes, leafBound);
    return {
      bytes,
      error: (at) =>
        new ResourceExhaustedError(
          `stream exceeds this upload's limit of ${bytes} bytes (at ${at}): ` +
            (bytes === o.maxUploadBytes
              ? "the service's largest dataset"
              : `its leaf table with k=${row.k}, m=${row.m}, S=${row.shard_size} would exceed INGESTION_MAX_LEAF_TABLE_BYTES; use a larger shard size`),
        ),
    };
  }

  /** After a failed stream: drop buffered bytes; for a bound request, also durable bytes it added. */
  private async rollback(session: UploadSession, requestStart: number | undefined): Promise<void> {
    await session.rollbackToDurable();
    if (requestStart !== undefined && session.durable > requestStart) {
      const to = await this.sessions.rollbackDurable(session.uploadId, requestStart);
      await session.rollbackTo(to);
    } else if (requestStart !== undefined) await store.setPendingFrom(this.ctx.o.db, session.uploadId, null).catch(() => undefined);
  }
}
