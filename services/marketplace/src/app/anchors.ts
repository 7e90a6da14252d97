// Lease records in the ledger: every lease creation, settled usage report and close is a
// signed statement queued in `anchors` in the transaction that makes it true, and a scheduled
// loop appends the queue through the kit's LedgerAnchoring port (idempotent at the ledger, so
// a crash between append and mark only re-sends). Escrow balances are recomputable from them:
// a lease statement names the price and GPUs, a usage report the GPU-seconds of each epoch.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { sql } from "kysely";

import { DsseEnvelopeSchema, type DsseEnvelope as DsseEnvelopeMessage } from "@deai/contracts/deai/common/v1/common_pb";
import { ReceiptSchema, type Receipt } from "@deai/contracts/deai/ledger/v1/ledger_pb";
import { isRefusedForGood, type LedgerAnchoring } from "@deai/kit";
import {
  dsseFromJson,
  dsseSign,
  dsseToJson,
  IN_TOTO_PAYLOAD_TYPE,
  PredicateTypes,
  sha256Hex,
  statementBytes,
  statementOf,
  utf8Encode,
  type DsseEnvelope,
} from "@deai/proofs";

import type { Db, MarketContext, Trx } from "./context.js";

/** A lease statement (created or closed), signed by the marketplace. */
export function leaseStatement(ctx: MarketContext, predicate: Record<string, unknown> & { leaseId: string }): DsseEnvelope {
  const st = statementOf(
    PredicateTypes.lease,
    [{ name: predicate.leaseId, digest: { sha256: sha256Hex(utf8Encode(predicate.leaseId)!) } }],
    predicate,
  );
  return dsseSign(IN_TOTO_PAYLOAD_TYPE, statementBytes(st), [ctx.signer]);
}

/** Queues `envelope` for the ledger inside `trx`; idempotent by anchor id. */
export async function enqueueAnchor(
  trx: Trx,
  ctx: MarketContext,
  anchorId: string,
  kind: string,
  subjectId: string,
  envelope: DsseEnvelope,
): Promise<void> {
  await sql`
    insert into anchors (anchor_id, kind, subject_id, envelope, created_at)
    values (${anchorId}, ${kind}, ${subjectId}, ${JSON.stringify(dsseToJson(envelope))}::jsonb, ${ctx.clock.now()})
    on conflict (anchor_id) do nothing`.execute(trx);
}

function toMessage(e: DsseEnvelope): DsseEnvelopeMessage {
  return create(DsseEnvelopeSchema, {
    payloadType: e.payloadType,
    payload: e.payload,
    signatures: e.signatures.map((s) => ({ keyid: s.keyid, sig: s.sig })),
  });
}

/** Appends pending anchors (oldest first); returns how many were anchored. Refused-for-good rows are marked and kept. */
export async function anchorPending(db: Db, ctx: MarketContext, ledger: LedgerAnchoring, limit = 50): Promise<number> {
  const rows = await sql<{ anchor_id: string; envelope: unknown }>`
    select anchor_id, envelope from anchors where state = 'pending' order by created_at limit ${limit}`.execute(db);
  let done = 0;
  for (const r of rows.rows) {
    try {
      const a = await ledger.anchor(toMessage(dsseFromJson(r.envelope)));
      await sql`update anchors set state = 'anchored', log_index = ${a.index}, receipt = ${Buffer.from(toBinary(ReceiptSchema, a.receipt))},
                anchored_at = ${ctx.clock.now()}, attempts = attempts + 1 where anchor_id = ${r.anchor_id}`.execute(db);
      done++;
    } catch (e) {
      const refused = isRefusedForGood(e);
      await sql`update anchors set attempts = attempts + 1, error = ${(e as Error).message.slice(0, 500)}, state = ${refused ? "refused" : "pending"}
                where anchor_id = ${r.anchor_id}`.execute(db);
      if (!refused) return done;
    }
  }
  return done;
}

/** The receipt of a subject's first anchored statement of `kind`, if any. */
export async function receiptOf(db: Db, subjectId: string, kind: string): Promise<Receipt | undefined> {
  const r = await sql<{ receipt: Buffer | null }>`
    select receipt from anchors where subject_id = ${subjectId} and kind = ${kind} and state = 'anchored' order by created_at limit 1`.execute(
    db,
  );
  const b = r.rows[0]?.receipt;
  return b ? fromBinary(ReceiptSchema, b) : undefined;
}
