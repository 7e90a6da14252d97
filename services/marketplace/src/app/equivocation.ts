// Equivocation evidence to slashing, exactly once. A conflicting usage report (leases.ts settle)
// is stored in `usage_conflicts` and queued in `evidence_outbox` in one transaction; the tick
// submits each due row through the `EvidenceSink` port (gRPC SubmitEvidence, signed by the
// marketplace's key: it is the reporter). Slashing is idempotent by evidence hash, so a crash
// between its answer and our mark only re-sends what it already has (`duplicate`), and the row is
// marked submitted once. Unavailable, timeouts and other transient failures back off and retry
// (1 s × 2^attempt, at most 10 min); a refusal that can never succeed (the pair does not verify,
// too old, the provider already tombstoned) marks the row `refused` with slashing's reason.
import { Code, ConnectError } from "@connectrpc/connect";
import { sql } from "kysely";

import { SlashingService } from "@deai/contracts/deai/slashing/v1/slashing_pb";
import { serviceClient, type ActorKey } from "@deai/kit";
import { dsseFromJson, type DsseEnvelope } from "@deai/proofs";

import type { MarketContext, Trx } from "./context.js";
import { marketMetrics } from "./metrics.js";

export interface EvidenceReceipt {
  readonly evidenceId: string;
  readonly slashId: string;
  readonly duplicate: boolean;
}

/** Slashing refused the evidence for good (retrying cannot help). */
export class EvidenceRefused extends Error {
  override readonly name = "EvidenceRefused";
}

/** The port to slashing's SubmitEvidence. Throws EvidenceRefused for a final refusal, anything else to retry. */
export interface EvidenceSink {
  submitEquivocation(first: DsseEnvelope, second: DsseEnvelope): Promise<EvidenceReceipt>;
}

const FINAL = new Set([Code.InvalidArgument, Code.FailedPrecondition, Code.PermissionDenied, Code.AlreadyExists, Code.OutOfRange]);

/** EvidenceSink over deai.slashing.v1 SubmitEvidence. */
export class SlashingEvidence implements EvidenceSink {
  private readonly client;

  constructor(
    baseUrl: string,
    key: ActorKey,
    private readonly timeoutMs = 5000,
  ) {
    this.client = serviceClient(SlashingService, { baseUrl, key });
  }

  async submitEquivocation(first: DsseEnvelope, second: DsseEnvelope): Promise<EvidenceReceipt> {
    const env = (e: DsseEnvelope) => ({ payloadType: e.payloadType, payload: e.payload, signatures: e.signatures.map((s) => ({ ...s })) });
    try {
      const r = await this.client.submitEvidence(
        { evidence: { case: "equivocation", value: { first: env(first), second: env(second) } } },
        { timeoutMs: this.timeoutMs },
      );
      return { evidenceId: r.evidence?.evidenceId ?? "", slashId: r.evidence?.slashId ?? "", duplicate: r.duplicate };
    } catch (e) {
      const ce = ConnectError.from(e);
      if (FINAL.has(ce.code)) throw new EvidenceRefused(`${Code[ce.code]}: ${ce.rawMessage}`);
      throw e;
    }
  }
}

/** Queues a conflicting pair for slashing inside the transaction that records the conflict. */
export async function queueEquivocation(
  trx: Trx,
  ctx: MarketContext,
  c: { leaseId: string; epoch: number; providerId: string; secondSha256: string },
): Promise<void> {
  await sql`insert into evidence_outbox (lease_id, epoch, second_sha256, provider_id, next_attempt_at, created_at)
            values (${c.leaseId}, ${c.epoch}, ${c.secondSha256}, ${c.providerId}, ${ctx.clock.now()}, ${ctx.clock.now()})
            on conflict do nothing`.execute(trx);
}

const backoffMs = (attempts: number) => Math.min(600_000, 1000 * 2 ** attempts);

/** Submits due queued evidence (one row per transaction, locked so replicas take disjoint rows); returns how many were accepted. */
export async function submitDueEvidence(ctx: MarketContext, limit = 20): Promise<number> {
  const sink = ctx.evidence;
  if (!sink) return 0;
  let done = 0;
  for (let i = 0; i < limit; i++) {
    const more = await ctx.db.transaction().execute(async (trx) => {
      const row = (
        await sql<{
          lease_id: string;
          epoch: number;
          second_sha256: string;
          attempts: number;
          first_envelope: unknown;
          second_envelope: unknown;
        }>`
          select q.lease_id, q.epoch, q.second_sha256, q.attempts, c.first_envelope, c.second_envelope
          from evidence_outbox q join usage_conflicts c using (lease_id, epoch, second_sha256)
          where q.state = 'pending' and q.next_attempt_at <= ${ctx.clock.now()}
          order by q.next_attempt_at limit 1 for update of q skip locked`.execute(trx)
      ).rows[0];
      if (!row) return false;
      const key = sql`lease_id = ${row.lease_id} and epoch = ${row.epoch} and second_sha256 = ${row.second_sha256}`;
      try {
        const r = await sink.submitEquivocation(dsseFromJson(row.first_envelope), dsseFromJson(row.second_envelope));
        await sql`update evidence_outbox set state = 'submitted', attempts = attempts + 1, evidence_id = ${r.evidenceId}, slash_id = ${r.slashId},
                  duplicate = ${r.duplicate}, last_error = null, submitted_at = ${ctx.clock.now()} where ${key}`.execute(trx);
        marketMetrics.evidence.add(1, { outcome: r.duplicate ? "duplicate" : "submitted" });
        done++;
      } catch (e) {
        const refused = e instanceof EvidenceRefused;
        await sql`update evidence_outbox set state = ${refused ? "refused" : "pending"}, attempts = attempts + 1, last_error = ${String((e as Error).message).slice(0, 1000)},
                  next_attempt_at = ${new Date(ctx.clock.nowMs() + backoffMs(row.attempts))} where ${key}`.execute(trx);
        marketMetrics.evidence.add(1, { outcome: refused ? "refused" : "retry" });
      }
      return true;
    });
    if (!more) break;
  }
  return done;
}
