// Anchoring slash records in the ledger: a scheduled loop takes the records not yet anchored
// (written in the transaction of the change they record) and appends each through the kit's
// LedgerAnchoringClient. The ledger's append is idempotent, so a crash between the append and
// storing its receipt only appends the same entry again and gets the same index. A ledger that
// is down or slow stops the run; the next run retries. A record the ledger refuses for good is
// marked refused (logged as an error) and not sent again.
import { toJson } from "@bufbuild/protobuf";
import { sql, type Kysely } from "kysely";

import { DsseEnvelopeSchema } from "@deai/contracts/deai/common/v1/common_pb";
import { ReceiptSchema } from "@deai/contracts/deai/ledger/v1/ledger_pb";
import { AnchorRefusedError, type Clock, type LedgerAnchoring, type Logger } from "@deai/kit";
import { dsseFromJson, type DsseEnvelopeJson } from "@deai/proofs";
import { create } from "@bufbuild/protobuf";

import type { SlashingMetrics } from "./metrics.js";

export class RecordAnchoring {
  constructor(
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    private readonly db: Kysely<any>,
    private readonly ledger: LedgerAnchoring,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly metrics: SlashingMetrics,
  ) {}

  /** Anchors up to `limit` pending records, oldest first; returns how many were anchored. */
  async anchorPending(limit = 50): Promise<number> {
    const rows = await sql<{ record_id: string; envelope: DsseEnvelopeJson }>`
      select record_id, envelope from slash_records where ledger_index is null and refused is null
      order by created_at, record_id limit ${limit}`.execute(this.db);
    let n = 0;
    for (const r of rows.rows) {
      const e = dsseFromJson(r.envelope);
      const envelope = create(DsseEnvelopeSchema, {
        payloadType: e.payloadType,
        payload: e.payload,
        signatures: e.signatures.map((s) => ({ keyid: s.keyid, sig: s.sig })),
      });
      let anchored;
      try {
        anchored = await this.ledger.anchor(envelope);
      } catch (err) {
        if (err instanceof AnchorRefusedError) {
          this.metrics.anchors.add(1, { outcome: "refused" });
          await sql`update slash_records set refused = ${err.message}, attempts = attempts + 1 where record_id = ${r.record_id}`.execute(
            this.db,
          );
          this.logger.error({ err, record: r.record_id }, "the ledger refused a slash record");
          continue;
        }
        this.metrics.anchors.add(1, { outcome: "retry" });
        await sql`update slash_records set attempts = attempts + 1 where record_id = ${r.record_id}`.execute(this.db);
        this.logger.warn({ err, record: r.record_id }, "anchoring slash records: the ledger is not taking entries; the next run retries");
        return n;
      }
      await sql`update slash_records set ledger_index = ${anchored.index.toString()}, receipt = ${JSON.stringify(toJson(ReceiptSchema, anchored.receipt))}::jsonb,
        attempts = attempts + 1 where record_id = ${r.record_id} and ledger_index is null`.execute(this.db);
      this.metrics.anchors.add(1, { outcome: "anchored" });
      n++;
    }
    if (n > 0) this.logger.debug({ anchored: n, at: this.clock.now() }, "slash records anchored");
    return n;
  }

  /** Records not yet anchored (and not refused). */
  async pending(): Promise<number> {
    const r = await sql<{ n: number }>`select count(*)::int as n from slash_records where ledger_index is null and refused is null`.execute(
      this.db,
    );
    return r.rows[0]!.n;
  }
}
