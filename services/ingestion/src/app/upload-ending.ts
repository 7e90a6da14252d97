/**
 * How an upload ends without a dataset: aborted by its owner, expired by the sweep, or failed
 * (the ledger refused its manifest for good). The row moves to its terminal state first (so an
 * upload being anchored keeps its objects), upload_aborted names the placements through the
 * outbox in the same transaction, then the slot objects go.
 */
import type { Kysely } from "kysely";

import { transitionRow } from "@deai/kit";
import { FailedPreconditionError, PermissionDeniedError } from "@deai/kit/errors";

import { uploadStates } from "../domain/upload-states.js";
import { enqueueUploadAborted } from "../events/dataset-events.js";
import type { UploadStateName } from "../store/tables.js";
import * as store from "../store/uploads.js";
import type { UploadRow } from "../store/uploads.js";
import type { UploadContext } from "./upload-context.js";
import { deleteAll } from "./upload-objects.js";
import type { UploadSessions } from "./upload-sessions.js";

export class UploadEnding {
  constructor(
    private readonly ctx: UploadContext,
    private readonly sessions: UploadSessions,
  ) {}

  /** AbortUpload: only by the owner, only before anchoring (the ledger may already hold an anchoring upload's manifest). */
  async abort(actor: string, row: UploadRow): Promise<void> {
    const uploadId = row.upload_id;
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
  }

  /** Expires idle open and awaiting_signature uploads past their TTL (at most `limit`); returns how many. */
  async expireDue(limit = 50): Promise<number> {
    const expirable = uploadStates.live.filter((st): st is "open" | "awaiting_signature" => uploadStates.canTransition(st, "expired"));
    const due = await store.expiredUploads(this.ctx.o.db, expirable, this.ctx.now(), limit);
    let done = 0;
    for (const row of due) {
      if (this.sessions.get(row.upload_id)?.isLocked()) continue;
      try {
        await this.end(row, "expired");
        done++;
      } catch (e) {
        this.ctx.o.logger.warn({ err: e, uploadId: row.upload_id }, "could not expire upload yet; retrying next sweep");
      }
    }
    return done;
  }

  private async end(row: UploadRow, state: "aborted" | "expired"): Promise<void> {
    this.sessions.drop(row.upload_id);
    await this.endAs(row, state, ["open", "awaiting_signature"]);
    this.ctx.o.logger.info({ uploadId: row.upload_id, state }, "upload ended; objects deleted");
  }

  /**
   * Moves the row to a terminal state (claimed before anything is deleted, so an upload being
   * anchored keeps its objects), publishes upload_aborted naming the placements, and deletes
   * the objects.
   */
  async endAs(row: UploadRow, state: "aborted" | "expired" | "failed", from: UploadStateName[], error?: string): Promise<void> {
    const { db, outbox, logger } = this.ctx.o;
    await db.transaction().execute(async (trx) => {
      await transitionRow(trx, uploadStates, {
        table: "uploads",
        key: { upload_id: row.upload_id },
        from,
        to: state,
        set: { updated_at: this.ctx.now(), ...(error ? { error } : {}) },
      });
      await enqueueUploadAborted(trx as unknown as Kysely<unknown>, {
        uploadId: row.upload_id,
        expired: state === "expired",
        placements: row.placements,
        at: this.ctx.now(),
      });
    });
    outbox.kick();
    // The event names the placements, so a failed delete is not silent: logged, and evident from the event.
    await this.deleteObjects(row).catch((e: unknown) =>
      logger.error({ err: e, uploadId: row.upload_id }, "could not delete an ended upload's objects; see its upload_aborted event"),
    );
  }

  /** Aborts each slot's multipart upload and deletes its object (whichever exists). */
  deleteObjects(row: UploadRow): Promise<void> {
    return deleteAll(this.ctx.o.registry, row.placements, row.multipart);
  }
}
