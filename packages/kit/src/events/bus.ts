/**
 * NATS JetStream, typed with protobuf. Subjects are `deai.<domain>.<event>`, one stream per
 * domain (`DEAI_<DOMAIN>` over `deai.<domain>.>`), both optionally prefixed (tests, tenants).
 *
 * - `publish` sends a protobuf payload with a dedupe id (`Nats-Msg-Id`) and the W3C trace
 *   context in headers, and waits for the stream's ack.
 * - `consume` runs a durable pull consumer with explicit acks; the handler runs inside a
 *   span continued from the publisher's trace. A handler error naks with backoff; an
 *   undecodable payload is terminated (it would never succeed).
 * - `consumeOnce` adds an inbox table so a redelivered message has no second effect.
 */
import { context, propagation, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { sql, type Kysely, type Transaction } from "kysely";
import {
  AckPolicy,
  DeliverPolicy,
  Events,
  connect,
  headers as natsHeaders,
  nanos,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type MsgHdrs,
  type NatsConnection,
} from "nats";

import type { Logger } from "../logger.js";
import { tracer } from "../telemetry.js";

export interface BusOptions {
  url: string;
  /** Prepended to every subject (`<prefix>.deai...`) and stream name; "" in production. */
  prefix: string;
  name: string;
  logger: Logger;
}

export interface EventMeta {
  /** The dedupe id the publisher set. */
  eventId: string;
  subject: string;
  deliveryCount: number;
}

export type EventHandler<D extends DescMessage> = (event: MessageShape<D>, meta: EventMeta) => Promise<void>;

export interface ConsumeOptions<D extends DescMessage> {
  /** The domain whose stream to read (e.g. "ledger"). */
  domain: string;
  /** Durable consumer name: survives restarts, shared by replicas. */
  durable: string;
  /** Unprefixed subject filter, e.g. "deai.dataset.ingested". */
  subject: string;
  schema: D;
  handler: EventHandler<D>;
  /** @default 30000 */
  ackWaitMs?: number;
  /**
   * Deliveries before JetStream gives up on a message. Unlimited by default: a handler
   * failing through a long outage must not lose events; backoff is capped at 30 s.
   * @default -1
   */
  maxDeliver?: number;
}

const hdrGetter = {
  keys: (h: MsgHdrs) => [...h.keys()],
  get: (h: MsgHdrs, k: string) => h.get(k) || undefined,
};
const hdrSetter = { set: (h: MsgHdrs, k: string, v: string) => h.set(k, v) };

/** Stream name of a domain. */
export function streamName(prefix: string, domain: string): string {
  const p = prefix.replace(/[^A-Za-z0-9_-]/g, "_");
  return `${p ? `${p}_` : ""}DEAI_${domain.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
}

export class EventBus {
  private readonly running = new Set<{ messages: ConsumerMessages; done: Promise<void> }>();
  private inflight = 0;
  private idle: (() => void)[] = [];
  private isConnected = true;

  private constructor(
    readonly nc: NatsConnection,
    readonly js: JetStreamClient,
    readonly jsm: JetStreamManager,
    private readonly opts: BusOptions,
  ) {}

  static async connect(opts: BusOptions): Promise<EventBus> {
    const nc = await connect({ servers: opts.url, name: opts.name, maxReconnectAttempts: -1 });
    const jsm = await nc.jetstreamManager();
    const bus = new EventBus(nc, nc.jetstream(), jsm, opts);
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === Events.Disconnect) bus.isConnected = false;
        if (s.type === Events.Reconnect) bus.isConnected = true;
      }
    })();
    return bus;
  }

  /** The prefixed form of a subject. */
  subject(s: string): string {
    return this.opts.prefix ? `${this.opts.prefix}.${s}` : s;
  }

  /** Creates (or updates) the stream of a domain: `deai.<domain>.>`, file storage, 2-minute dedupe window. */
  async ensureStream(domain: string): Promise<string> {
    const name = streamName(this.opts.prefix, domain);
    const cfg = { name, subjects: [this.subject(`deai.${domain}.>`)], duplicate_window: nanos(120_000) };
    try {
      await this.jsm.streams.info(name);
      await this.jsm.streams.update(name, cfg);
    } catch (e) {
      if (!/stream not found/i.test((e as Error).message)) throw e;
      await this.jsm.streams.add(cfg);
    }
    return name;
  }

  /** Publishes one event and waits for the stream ack; a repeated eventId is dropped by JetStream. */
  async publish<D extends DescMessage>(
    subject: string,
    schema: D,
    event: MessageShape<D>,
    eventId: string,
  ): Promise<{ duplicate: boolean; seq: number }> {
    return this.publishRaw(subject, toBinary(schema, event), eventId, schema.typeName);
  }

  /** Publishes pre-encoded bytes (the outbox relay uses this). */
  async publishRaw(
    subject: string,
    payload: Uint8Array,
    eventId: string,
    typeName: string,
    carrier?: Record<string, string>,
  ): Promise<{ duplicate: boolean; seq: number }> {
    const h = natsHeaders();
    h.set("content-type", "application/protobuf");
    h.set("deai-type", typeName);
    if (carrier) for (const [k, v] of Object.entries(carrier)) h.set(k, v);
    else propagation.inject(context.active(), h, hdrSetter);
    const ack = await this.js.publish(this.subject(subject), payload, { msgID: eventId, headers: h });
    return { duplicate: ack.duplicate, seq: ack.seq };
  }

  /** Starts a durable consumer; runs until `drain()`. */
  async consume<D extends DescMessage>(o: ConsumeOptions<D>): Promise<void> {
    const stream = await this.ensureStream(o.domain);
    const config = {
      durable_name: o.durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subject: this.subject(o.subject),
      ack_wait: nanos(o.ackWaitMs ?? 30_000),
      max_deliver: o.maxDeliver ?? -1,
    };
    try {
      await this.jsm.consumers.info(stream, o.durable);
      await this.jsm.consumers.update(stream, o.durable, config);
    } catch (e) {
      if (!/consumer not found/i.test((e as Error).message)) throw e;
      await this.jsm.consumers.add(stream, config);
    }
    const consumer = await this.js.consumers.get(stream, o.durable);
    const messages = await consumer.consume({ max_messages: 64 });
    const entry = { messages, done: Promise.resolve() };
    entry.done = (async () => {
      for await (const m of messages) await this.handle(m, o);
    })().catch((e: unknown) => this.opts.logger.error({ err: e, durable: o.durable }, "consumer stopped"));
    this.running.add(entry);
  }

  private async handle<D extends DescMessage>(m: JsMsg, o: ConsumeOptions<D>): Promise<void> {
    this.inflight++;
    const parent = m.headers ? propagation.extract(context.active(), m.headers, hdrGetter) : context.active();
    const span = tracer().startSpan(
      `consume ${o.subject}`,
      { kind: SpanKind.CONSUMER, attributes: { "messaging.system": "nats", "messaging.destination.name": m.subject } },
      parent,
    );
    try {
      await context.with(trace.setSpan(parent, span), async () => {
        let event: MessageShape<D>;
        try {
          event = fromBinary(o.schema, m.data);
        } catch (e) {
          this.opts.logger.error({ err: e, subject: m.subject, seq: m.seq }, "undecodable event terminated");
          m.term("undecodable payload");
          return;
        }
        const meta: EventMeta = {
          eventId: m.headers?.get("Nats-Msg-Id") ?? `${m.info.stream}:${m.seq}`,
          subject: m.subject,
          deliveryCount: m.info.deliveryCount,
        };
        try {
          await o.handler(event, meta);
          await m.ackAck();
        } catch (e) {
          span.setStatus({ code: SpanStatusCode.ERROR, message: (e as Error).message });
          this.opts.logger.warn({ err: e, subject: m.subject, attempt: meta.deliveryCount }, "event handler failed; will redeliver");
          m.nak(Math.min(30_000, 250 * 2 ** Math.min(meta.deliveryCount, 7)));
        }
      });
    } finally {
      span.end();
      if (--this.inflight === 0) for (const w of this.idle.splice(0)) w();
    }
  }

  /** Stops fetching and waits for the handlers in flight; unacked messages are redelivered later. */
  async stopConsumers(): Promise<void> {
    for (const r of this.running) await r.messages.close().catch(() => undefined);
    if (this.inflight > 0) await new Promise<void>((r) => this.idle.push(r));
    await Promise.all([...this.running].map((r) => r.done));
    this.running.clear();
  }

  /** Stops consumers, flushes pending publishes and closes the connection. */
  async close(): Promise<void> {
    await this.stopConsumers();
    if (!this.nc.isClosed()) await this.nc.drain();
  }

  /** True while connected to NATS (false while reconnecting after a disconnect). */
  get connected(): boolean {
    return this.isConnected && !this.nc.isClosed();
  }
}

/**
 * Exactly-once effect on top of at-least-once delivery: the handler runs in a transaction
 * that first records (consumer, eventId) in the inbox; a redelivered event finds its row
 * and is acked without running the handler again.
 */
export function onceHandler<D extends DescMessage, DB>(
  db: Kysely<DB>,
  consumer: string,
  handler: (event: MessageShape<D>, meta: EventMeta, trx: Transaction<DB>) => Promise<void>,
): EventHandler<D> {
  return async (event, meta) => {
    await db.transaction().execute(async (trx) => {
      const r = await sql<{
        event_id: string;
      }>`insert into kit_inbox (consumer, event_id) values (${consumer}, ${meta.eventId}) on conflict do nothing returning event_id`.execute(
        trx,
      );
      if (r.rows.length === 0) return;
      await handler(event, meta, trx);
    });
  };
}
