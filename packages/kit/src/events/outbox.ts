/**
 * Transactional outbox: a service writes its events in the same transaction as the state
 * change, and a relay publishes them to JetStream with the row's event id as dedupe id.
 * A crash between commit and publish only delays the event; a crash after publish and
 * before the row is deleted republishes it, and JetStream drops the duplicate when that
 * happens within its 2-minute dedupe window. Delivery is therefore at least once (consumers
 * use the inbox) and, across replicas, not ordered: order comes from the payloads (sizes,
 * indexes), never from arrival.
 */
import { toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { context, propagation, type ObservableGauge, type ObservableResult } from "@opentelemetry/api";
import { sql, type Kysely, type RawBuilder } from "kysely";

import type { Logger } from "../logger.js";
import { Scheduler, type ScheduledLoop } from "../schedule/scheduler.js";
import { meter } from "../telemetry.js";
import type { EventBus } from "./bus.js";

let backlogGauge: ObservableGauge | undefined;

/** Queues an event inside `trx`; it is published after commit. */
export async function enqueueEvent<D extends DescMessage>(
  trx: Kysely<unknown>,
  subject: string,
  schema: D,
  event: MessageShape<D>,
  eventId: string,
): Promise<void> {
  const carrier: Record<string, string> = { "deai-type": schema.typeName };
  propagation.inject(context.active(), carrier);
  await sql`insert into kit_outbox (event_id, subject, payload, headers) values (${eventId}, ${subject}, ${Buffer.from(toBinary(schema, event))}, ${JSON.stringify(carrier)}::jsonb) on conflict (event_id) do nothing`.execute(
    trx,
  );
}

/** One event of `enqueueEvents`. */
export interface QueuedEvent<D extends DescMessage = DescMessage> {
  readonly subject: string;
  readonly schema: D;
  readonly event: MessageShape<D>;
  readonly eventId: string;
}

/** Queues many events inside `trx` in one statement (a batch commit); like `enqueueEvent` for each. */
export async function enqueueEvents(trx: Kysely<unknown>, events: readonly QueuedEvent[]): Promise<void> {
  await outboxInsert(events)?.execute(trx);
}

/**
 * The INSERT of `enqueueEvents` as a statement to compose into a larger write (a CTE), so a
 * batch commit spends no round trip of its own on its events; with `only` (a subquery of event
 * ids of the same statement), just those events. Undefined when there are none.
 */
export function outboxInsert(events: readonly QueuedEvent[], only?: RawBuilder<unknown>): RawBuilder<unknown> | undefined {
  if (events.length === 0) return undefined;
  const carriers = events.map((e) => {
    const carrier: Record<string, string> = { "deai-type": e.schema.typeName };
    propagation.inject(context.active(), carrier);
    return JSON.stringify(carrier);
  });
  return sql`
    insert into kit_outbox (event_id, subject, payload, headers)
    select event_id, subject, payload, headers::jsonb
    from unnest(${events.map((e) => e.eventId)}::text[], ${events.map((e) => e.subject)}::text[],
                ${events.map((e) => Buffer.from(toBinary(e.schema, e.event)))}::bytea[], ${carriers}::text[]) as x (event_id, subject, payload, headers)
    ${only ? sql`where event_id in (${only})` : sql``}
    on conflict (event_id) do nothing`;
}

interface OutboxRow {
  id: string;
  event_id: string;
  subject: string;
  payload: Buffer;
  headers: Record<string, string>;
}

export interface OutboxRelayOptions {
  /**
   * The scheduler the relay loop runs on (the service's). Without one the relay runs its own,
   * started by `start()`.
   */
  readonly scheduler?: Scheduler;
  /** Period between relay runs; a `kick()` after commit runs one sooner. @default 250 */
  readonly intervalMs?: number;
}

/** Name of the relay's scheduled loop. */
export const OUTBOX_LOOP = "kit.outbox.relay";

/**
 * Publishes queued events from a scheduled loop. Every replica relays (rows are shared with
 * SKIP LOCKED), so the loop has no leadership; it is not persisted either: it runs at start
 * and then every interval, and cadence across restarts does not matter for it.
 */
export class OutboxRelay {
  private readonly scheduler: Scheduler;
  private readonly ownScheduler: boolean;
  private readonly loop: ScheduledLoop;
  private readonly unobserve: () => void;

  constructor(
    private readonly db: Kysely<unknown>,
    private readonly bus: EventBus,
    private readonly logger: Logger,
    opts: OutboxRelayOptions = {},
  ) {
    this.ownScheduler = opts.scheduler === undefined;
    this.scheduler = opts.scheduler ?? new Scheduler({ logger });
    this.loop = this.scheduler.register({
      name: OUTBOX_LOOP,
      intervalMs: opts.intervalMs ?? 250,
      persist: false,
      // Four runs a second, nearly all empty: each relayed event's producer span continues the
      // trace stored with its row instead.
      traced: false,
      run: async () => {
        await this.flush();
      },
    });
    this.unobserve = this.observeBacklog();
  }

  /** Observes `deai.outbox.backlog` (rows waiting) at each metric collection until `stop()`. */
  private observeBacklog(): () => void {
    const gauge = (backlogGauge ??= meter().createObservableGauge("deai.outbox.backlog", {
      description: "Events queued in the outbox, not yet published",
      unit: "{event}",
    }));
    const observe = async (r: ObservableResult): Promise<void> => {
      const n = await sql<{ n: number }>`select count(*)::int as n from kit_outbox`.execute(this.db).catch(() => undefined);
      if (n?.rows[0]) r.observe(n.rows[0].n);
    };
    gauge.addCallback(observe);
    return () => gauge.removeCallback(observe);
  }

  /** Starts the relay when it runs its own scheduler (the service's scheduler starts it otherwise). */
  start(): void {
    if (this.ownScheduler) this.scheduler.start();
  }

  /** Publishes soon (call after committing a transaction that enqueued events). */
  kick(): void {
    this.loop.kick();
  }

  /** Publishes every queued event; returns how many were sent. Replicas share rows via SKIP LOCKED. */
  async flush(): Promise<number> {
    let sent = 0;
    for (;;) {
      const n = await this.db.transaction().execute(async (trx) => {
        // ids as text: int8 decodes as bigint or number depending on the type parser.
        const rows =
          await sql<OutboxRow>`select id::text as id, event_id, subject, payload, headers from kit_outbox order by id limit 100 for update skip locked`.execute(
            trx,
          );
        for (const r of rows.rows) {
          const { "deai-type": typeName = "", ...carrier } = r.headers;
          await this.bus.publishRaw(r.subject, r.payload, r.event_id, typeName, carrier);
        }
        if (rows.rows.length > 0) await sql`delete from kit_outbox where id = any(${rows.rows.map((r) => r.id)}::bigint[])`.execute(trx);
        return rows.rows.length;
      });
      sent += n;
      if (n < 100) return sent;
    }
  }

  /** Stops the loop (its run in flight finishes) and publishes what is left. */
  async stop(): Promise<void> {
    this.unobserve();
    await this.loop.stop();
    await this.flush().catch((e: unknown) => this.logger.warn({ err: e }, "outbox relay: final flush failed; events stay queued"));
  }
}
