/**
 * Anchoring: the owner's signed manifest envelope is checked, the row claimed (`anchoring`,
 * the envelope kept for a retry), the envelope appended to the ledger through the kit's
 * anchoring client, and the dataset recorded with dataset_ingested in one transaction. The
 * append is idempotent (an identical envelope returns its existing index), so a crash at any
 * step is recovered by appending again: the sweep does it for rows left in `anchoring`.
 */
import type { Kysely } from "kysely";

import type { DsseEnvelope } from "@deai/contracts/deai/common/v1/common_pb";
import type { Manifest } from "@deai/contracts/deai/ingestion/v1/ingestion_pb";
import type { Receipt } from "@deai/contracts/deai/ledger/v1/ledger_pb";
import { isRefusedForGood, publicKeyOf, transitionRow } from "@deai/kit";
import { FailedPreconditionError, InvalidArgumentError } from "@deai/kit/errors";

import { checkManifestEnvelope } from "../domain/manifest.js";
import { envelopeLeafBytes, MAX_MANIFEST_SIGNATURES } from "../domain/upload-bounds.js";
import { uploadStates } from "../domain/upload-states.js";
import { enqueueDatasetIngested } from "../events/dataset-events.js";
import { insertDataset } from "../store/datasets.js";
import { envelopeJson } from "../store/envelopes.js";
import * as store from "../store/uploads.js";
import type { UploadRow } from "../store/uploads.js";
import type { UploadContext } from "./upload-context.js";
import type { UploadEnding } from "./upload-ending.js";

export interface Anchored {
  manifest: Manifest;
  receipt: Receipt;
  datasetId: string;
}

export class UploadAnchoring {
  /** Uploads this instance is anchoring now: the sweep leaves them alone. */
  private readonly anchoringHere = new Set<string>();

  constructor(
    private readonly ctx: UploadContext,
    private readonly ending: UploadEnding,
  ) {}

  /**
   * Anchors the owner's envelope: checks it, claims the row (`anchoring`, with the envelope
   * kept for a retry), appends it to the ledger, and records the dataset. A ledger that
   * refuses for good fails the upload and deletes its objects; "try again" leaves it
   * `anchoring` for the next call or sweep.
   */
  async anchor(row: UploadRow, envelope: DsseEnvelope): Promise<Anchored> {
    const o = this.ctx.o;
    checkManifestEnvelope(envelope, row.statement!, row.owner, publicKeyOf);
    if (envelope.signatures.length > MAX_MANIFEST_SIGNATURES) {
      throw new InvalidArgumentError(
        `manifest envelope has ${envelope.signatures.length} signatures; at most ${MAX_MANIFEST_SIGNATURES} fit a ledger entry with this statement`,
      );
    }
    const leafBytes = envelopeLeafBytes(envelope.payload.length, envelope.signatures.length);
    if (leafBytes > o.ledgerEntryBytes)
      throw new InvalidArgumentError(
        `manifest envelope is ${leafBytes} bytes as a ledger entry; the ledger holds entries up to ${o.ledgerEntryBytes}`,
      );
    if (!o.ledger) throw new FailedPreconditionError("this ingestion service has no ledger configured (INGESTION_LEDGER_URL)");
    // Claim the row first: sweep and abort leave an anchoring upload (and its objects) alone.
    if (row.state === "anchoring") {
      await store.keepAnchorEnvelope(o.db, row.upload_id, envelope, this.ctx.now());
    } else {
      await transitionRow(o.db, uploadStates, {
        table: "uploads",
        key: { upload_id: row.upload_id },
        from: ["awaiting_signature"],
        to: "anchoring",
        set: { anchor_envelope: JSON.stringify(envelopeJson(envelope)), updated_at: this.ctx.now() },
      });
    }
    return this.appendAndRecord(row, envelope);
  }

  /** The ledger append and the dataset record, for `anchor` and for the sweep's retry. */
  private async appendAndRecord(row: UploadRow, envelope: DsseEnvelope): Promise<Anchored> {
    const o = this.ctx.o;
    this.anchoringHere.add(row.upload_id);
    let anchored;
    try {
      anchored = await o.ledger!.anchor(envelope);
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
    await o.db.transaction().execute(async (trx) => {
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
          set: { dataset_id: datasetId, anchor_envelope: null, updated_at: this.ctx.now() },
        });
      } catch (e) {
        // Another instance (a sweep elsewhere) recorded the same append first: the same dataset.
        if ((await store.uploadState(trx, row.upload_id)) === "completed") return;
        throw e;
      }
      await enqueueDatasetIngested(trx as unknown as Kysely<unknown>, { datasetId, manifest, ledgerIndex: index, at: this.ctx.now() });
    });
    o.outbox.kick();
    o.logger.info({ datasetId, ledgerIndex: index.toString() }, "dataset anchored");
    return { manifest, receipt, datasetId };
  }

  /** anchoring → failed (the ledger refused for good), then the objects go. */
  private async failAnchoring(row: UploadRow, reason: string): Promise<void> {
    await this.ending.endAs(row, "failed", ["anchoring"], reason);
    this.ctx.o.logger.warn({ uploadId: row.upload_id, reason }, "upload failed: the ledger refused its manifest; objects deleted");
  }

  /** Uploads stuck in `anchoring` (no instance is on them): append again, or fail for good. Returns how many ended. */
  async retryStale(limit = 20): Promise<number> {
    const o = this.ctx.o;
    const stale = await store.staleAnchoring(o.db, new Date(this.ctx.clock.nowMs() - o.anchorRetryAfterMs), limit);
    let done = 0;
    for (const row of stale) {
      if (this.anchoringHere.has(row.upload_id)) continue;
      if (!o.ledger) continue;
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
        else o.logger.warn({ err: e, uploadId: row.upload_id }, "anchor retry did not finish; retrying next sweep");
      }
    }
    return done;
  }
}
