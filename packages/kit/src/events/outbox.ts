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
import { context, propagation } from "@opentelemetry/api";
import { sql, type Kysely } from "kysely";

import type { Logger } from "../logger.js";
import type { EventBus } from "./bus.js";

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

interface OutboxRow {
  id: number;
  event_id: string;
  subject: string;
  payload: Buffer;
  headers: Record<string, string>;
}

export class OutboxRelay {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private again = false;

  constructor(
    private readonly db: Kysely<unknown>,
    private readonly bus: EventBus,
    private readonly logger: Logger,
    private readonly intervalMs = 250,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.kick(), this.intervalMs);
    this.timer.unref();
    this.kick();
  }

  /** Publishes now (call after committing a transaction that enqueued events). */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.flush()
      .then(() => undefined)
      .catch((e: unknown) => this.logger.warn({ err: e }, "outbox relay: publish failed; will retry"))
      .finally(() => {
        this.running = undefined;
        if (this.again && !this.stopped) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Publishes every queued event; returns how many were sent. Replicas share rows via SKIP LOCKED. */
  async flush(): Promise<number> {
    let sent = 0;
    for (;;) {
      const n = await this.db.transaction().execute(async (trx) => {
        const rows =
          await sql<OutboxRow>`select id, event_id, subject, payload, headers from kit_outbox order by id limit 100 for update skip locked`.execute(
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

  /** Stops the timer and publishes what is left. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
    await this.flush().catch((e: unknown) => this.logger.warn({ err: e }, "outbox relay: final flush failed; events stay queued"));
  }
}
