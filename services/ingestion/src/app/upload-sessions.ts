/**
 * The live UploadSession of each open upload on this instance: built from the row's durable
 * state on first use (after a restart, a REST request that died unverified is rolled back
 * first), persisted one part group at a time through its SessionStore, dropped when idle past
 * `sessionIdleMs` (its buffers go back to the memory budget; the next stream resumes from
 * durable_offset) or when the upload leaves `open`.
 */
import type { ObservableResult } from "@opentelemetry/api";

import { uploadStates } from "../domain/upload-states.js";
import * as store from "../store/uploads.js";
import type { UploadRow } from "../store/uploads.js";
import { codecFor } from "./codecs.js";
import { MemoryLease } from "./memory-budget.js";
import { ingestionMetrics } from "./metrics.js";
import { UploadSession, type SessionStore } from "./session.js";
import type { UploadContext } from "./upload-context.js";

export class UploadSessions {
  private readonly sessions = new Map<string, UploadSession>();
  /** When each session last had a stream attached (clock ms), for idle eviction. */
  private readonly lastUse = new Map<string, number>();

  constructor(private readonly ctx: UploadContext) {
    ingestionMetrics().activeUploads.addCallback(this.observeActive);
  }

  /** deai.ingestion.active_uploads: uploads in a live state (every replica reports the same count). */
  private readonly observeActive = async (r: ObservableResult): Promise<void> => {
    r.observe(await store.countInStates(this.ctx.o.db, uploadStates.live));
  };

  get(uploadId: string): UploadSession | undefined {
    return this.sessions.get(uploadId);
  }

  has(uploadId: string): boolean {
    return this.sessions.has(uploadId);
  }

  /** A stream attached or ended just now: the session is not idle. */
  touch(uploadId: string): void {
    this.lastUse.set(uploadId, this.ctx.clock.nowMs());
  }

  /** Rolls durable progress back to the part group containing `offset`; returns the new durable offset. */
  rollbackDurable(uploadId: string, offset: number): Promise<number> {
    return store.rollbackDurable(this.ctx.o.db, uploadId, offset, this.ctx.now());
  }

  /** The live session of an open upload, rebuilt from its durable state when this instance has none. */
  async attach(row: UploadRow): Promise<UploadSession> {
    let s = this.sessions.get(row.upload_id);
    if (s) return s;
    let durable = Number(row.durable_offset);
    // A REST request whose body was never checked (the process died mid-request) does not count.
    if (row.pending_from !== null) durable = await this.rollbackDurable(row.upload_id, row.pending_from);
    const codec = codecFor(row.k, row.m, row.shard_size);
    const declared = row.spec.size;
    // The last group ends off a group boundary: the stream was finished before a restart.
    const finished = durable % (row.k * row.shard_size * row.stripes_per_group) !== 0;
    const memory = new MemoryLease(this.ctx.o.memory, `upload ${row.upload_id}`);
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
    this.touch(row.upload_id);
    return s;
  }

  /** How a session persists a part group: one part per slot at its provider, then the group row. */
  private groupStore(row: UploadRow): SessionStore {
    const { registry, db } = this.ctx.o;
    const placements = row.placements;
    const multipart = row.multipart;
    const uploadId = row.upload_id;
    const stripeBytes = row.k * row.shard_size;
    return {
      openParts: (groupIndex, bytesPerSlot) =>
        placements.map((p, slot) => registry.get(p.providerId).openPart(p.key, multipart[slot]!, groupIndex + 1, bytesPerSlot)),
      commitGroup: async (g) => {
        const etags = g.etags
          ? await g.etags
          : await Promise.all(
              placements.map((p, slot) =>
                registry.get(p.providerId).uploadPart(p.key, multipart[slot]!, g.groupIndex + 1, g.parts![slot]!),
              ),
            );
        await store.commitGroup(db, {
          uploadId,
          groupIndex: g.groupIndex,
          stripes: g.stripes,
          etags,
          leaves: Buffer.from(g.leaves),
          endOffset: g.endOffset,
          stripesDone: Math.ceil(g.endOffset / stripeBytes),
          now: this.ctx.now(),
          expiresAt: this.ctx.expiresFromNow(),
        });
      },
    };
  }

  drop(uploadId: string): void {
    this.sessions.get(uploadId)?.close();
    this.sessions.delete(uploadId);
    this.lastUse.delete(uploadId);
  }

  /** Drops sessions with no stream attached for `sessionIdleMs`: their buffers go back to the budget. */
  evictIdle(): void {
    const cutoff = this.ctx.clock.nowMs() - this.ctx.o.sessionIdleMs;
    for (const [id, s] of this.sessions) {
      if (s.isLocked() || (this.lastUse.get(id) ?? 0) > cutoff) continue;
      this.drop(id);
      this.ctx.o.logger.info({ uploadId: id }, "idle upload session dropped; the next stream resumes from durable_offset");
    }
  }

  /** Closes every session (shutdown): their buffered, non-durable bytes are dropped. */
  closeAll(): void {
    ingestionMetrics().activeUploads.removeCallback(this.observeActive);
    for (const id of [...this.sessions.keys()]) this.drop(id);
  }
}
