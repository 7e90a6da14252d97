/**
 * The consumer template every service uses: a durable JetStream consumer (shared by
 * replicas, survives restarts), traced (a span per message continuing the publisher's trace),
 * dead-lettering after N failed tries (`deai.dlq.<durable>`, counted by the
 * `deai.events.dead_lettered` metric), and idempotent through the inbox: the handler runs in
 * a transaction that first records (consumer, eventId) in `kit_inbox`, so a redelivered or
 * republished event is acked without a second effect.
 *
 * Inbox rows are pruned by a scheduled loop (`kit.inbox.prune`, one leader) after
 * `INBOX_RETENTION_MS` (7 days). The inbox only has to outlive every way the same event id can
 * arrive again: JetStream redelivery of an unacked message (at most maxDeliveries × backoff,
 * about 80 s by default), an outbox republish after a crash between publish and delete (which
 * happens on the next relay run once the service is back, and which JetStream's own 2-minute
 * duplicate window catches only if it is quick), and a consumer replaying its stream after
 * its durable was recreated. Streams keep messages without a max age, so the last case is
 * bounded by operations, not by the stream: a week covers any outage we plan for, and a
 * durable recreated later must start from a sequence, not from the beginning.
 */
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { sql, type Kysely, type Transaction } from "kysely";

import type { Scheduler, ScheduledLoop } from "../schedule/scheduler.js";
import { systemClock, type Clock } from "../time/clock.js";
import type { ConsumeOptions, EventBus, EventHandler, EventMeta } from "./bus.js";

/** How long inbox rows are kept (see the module comment for why a week). */
export const INBOX_RETENTION_MS = 7 * 24 * 3600_000;

/** Name of the inbox prune loop. */
export const INBOX_PRUNE_LOOP = "kit.inbox.prune";

export type OnceHandler<D extends DescMessage, DB> = (event: MessageShape<D>, meta: EventMeta, trx: Transaction<DB>) => Promise<void>;

export interface ConsumeOnceOptions<D extends DescMessage, DB> extends Omit<ConsumeOptions<D>, "handler"> {
  /** The service database holding `kit_inbox`. */
  readonly db: Kysely<DB>;
  /** Runs once per event id, inside the transaction that records it in the inbox. */
  readonly handler: OnceHandler<D, DB>;
  /** Stamps inbox rows. @default systemClock */
  readonly clock?: Clock;
}

/** Starts a durable, traced, dead-lettering consumer whose handler has exactly one effect per event. */
export async function consumeOnce<D extends DescMessage, DB>(bus: EventBus, o: ConsumeOnceOptions<D, DB>): Promise<void> {
  const { db, handler, clock, ...rest } = o;
  await bus.consume({ ...rest, handler: onceHandler(db, o.durable, handler, clock) });
}

/**
 * Exactly-once effect on top of at-least-once delivery: the handler runs in a transaction
 * that first records (consumer, eventId) in the inbox; a redelivered event finds its row
 * and is acked without running the handler again. A handler that throws rolls the row back.
 */
export function onceHandler<D extends DescMessage, DB>(
  db: Kysely<DB>,
  consumer: string,
  handler: OnceHandler<D, DB>,
  clock: Clock = systemClock,
): EventHandler<D> {
  return async (event, meta) => {
    await db.transaction().execute(async (trx) => {
      const r = await sql<{ event_id: string }>`
        insert into kit_inbox (consumer, event_id, processed_at) values (${consumer}, ${meta.eventId}, ${clock.now()})
        on conflict do nothing returning event_id`.execute(trx);
      if (r.rows.length === 0) return;
      await handler(event, meta, trx);
    });
  };
}

/** Deletes inbox rows processed before `before`, in batches; returns how many. */
export async function pruneInbox(db: Kysely<unknown>, before: Date, batch = 10_000): Promise<number> {
  let deleted = 0;
  for (;;) {
    // Batches keep each statement's locks and WAL small on a large inbox.
    const r = await sql`
      delete from kit_inbox where ctid in (select ctid from kit_inbox where processed_at < ${before} limit ${batch})`.execute(db);
    const n = Number(r.numAffectedRows ?? 0n);
    deleted += n;
    if (n < batch) return deleted;
  }
}

/** Registers the inbox prune loop (one replica, hourly, cadence kept across restarts). */
export function scheduleInboxPrune(
  scheduler: Scheduler,
  db: Kysely<unknown>,
  opts: { retentionMs?: number; intervalMs?: number } = {},
): ScheduledLoop {
  const retention = opts.retentionMs ?? INBOX_RETENTION_MS;
  return scheduler.register({
    name: INBOX_PRUNE_LOOP,
    intervalMs: opts.intervalMs ?? 3600_000,
    leader: true,
    run: async () => {
      const n = await pruneInbox(db, new Date(scheduler.clock.nowMs() - retention));
      if (n > 0) scheduler.logger.info({ deleted: n }, "inbox pruned");
    },
  });
}
