/**
 * NATS JetStream, typed with protobuf. Subjects are `deai.<domain>.<event>`, one stream per
 * domain (`DEAI_<DOMAIN>` over `deai.<domain>.>`), both optionally prefixed (tests, tenants).
 *
 * - `publish` sends a protobuf payload with a dedupe id (`Nats-Msg-Id`) in a PRODUCER span
 *   `publish <subject>` whose W3C trace context travels in the headers, and waits for the
 *   stream's ack. The outbox relay passes the context stored with the row, so the event
 *   belongs to the trace of the request that queued it (linked to the relay run).
 * - `consume` runs a durable pull consumer with explicit acks; the handler runs inside a
 *   CONSUMER span `process <subject>`, the publisher's child. Metrics: redeliveries and the
 *   consumer's lag (JetStream num_pending), by durable. A handler error naks with backoff; after
 *   `maxDeliveries` failed tries (and at once for an undecodable payload, which would never
 *   succeed) the message is copied to a dead-letter subject and terminated, so nothing is
 *   lost and nothing blocks the consumer forever.
 * - `consumeOnce` (consumer.ts) is the template services use: `consume` plus the inbox, so
 *   a redelivered message has no second effect.
 */
import {
  context,
  metrics,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Counter,
  type ObservableGauge,
  type ObservableResult,
} from "@opentelemetry/api";
import { fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
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
   * Failed tries before the message goes to the dead-letter subject. With the default
   * backoff, 5 tries span about 80 s: longer than a restart of a dependency, short enough
   * that a poison message does not sit in the consumer for hours. @default 5
   */
  maxDeliveries?: number;
  /** Delay before the next try after `deliveryCount` failed ones. @default 1 s × 4^(n-1), at most 60 s */
  backoffMs?: (deliveryCount: number) => number;
  /** Where failed messages go (unprefixed). @default `deai.dlq.<durable>` (stream DEAI_DLQ) */
  deadLetterSubject?: string;
}

/** Headers a dead-lettered message carries besides the original ones. */
export const DEAD_LETTER_HEADERS = {
  subject: "deai-dlq-subject",
  error: "deai-dlq-error",
  consumer: "deai-dlq-consumer",
  deliveries: "deai-dlq-deliveries",
  stream: "deai-dlq-stream",
  seq: "deai-dlq-seq",
} as const;

/** The default dead-letter subject of a durable consumer. */
export function deadLetterSubject(durable: string): string {
  return `deai.dlq.${durable.replace(/[^A-Za-z0-9_-]/g, "_")}`;
}

const defaultBackoff = (n: number): number => Math.min(60_000, 1000 * 4 ** Math.max(0, n - 1));

interface EventInstruments {
  failures: Counter;
  deadLettered: Counter;
  redeliveries: Counter;
  lag: ObservableGauge;
}
let eventInstruments: EventInstruments | undefined;
/** Created on first use, so a meter provider registered at startup (or by a test) is the one used. */
function eventMetrics(): EventInstruments {
  if (!eventInstruments) {
    const meter = metrics.getMeter("@deai/kit");
    eventInstruments = {
      failures: meter.createCounter("deai.events.handler_failures", { description: "Event deliveries whose handler threw" }),
      deadLettered: meter.createCounter("deai.events.dead_lettered", { description: "Events moved to a dead-letter subject" }),
      redeliveries: meter.createCounter("deai.events.consumer.redeliveries", {
        description: "Deliveries of an event after its first (a handler failed, or its ack was late)",
      }),
      lag: meter.createObservableGauge("deai.events.consumer.lag", {
        description: "Messages of the stream not yet delivered to the durable consumer (JetStream num_pending)",
        unit: "{message}",
      }),
    };
  }
  return eventInstruments;
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
  private readonly running = new Set<{ messages: ConsumerMessages; done: Promise<void>; unobserve: () => void }>();
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
    // An outboxed event continues the trace of the transaction that queued it (its stored
    // carrier), linked to the relay run that sends it; a direct publish, the active trace.
    const active = context.active();
    const stored = carrier ? propagation.extract(ROOT_CONTEXT, carrier) : undefined;
    const parent = stored && trace.getSpanContext(stored) ? stored : active;
    const relayRun = stored && parent === stored ? trace.getSpanContext(active) : undefined;
    // The stored context goes on as it is; with a propagator registered, the producer span's replaces it below.
    if (carrier) for (const [k, v] of Object.entries(carrier)) h.set(k, v);
    const destination = this.subject(subject);
    const span = tracer().startSpan(
      `publish ${destination}`,
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          "messaging.system": "nats",
          "messaging.destination.name": destination,
          "messaging.operation.type": "send",
          "messaging.operation.name": "publish",
          "messaging.message.id": eventId,
          "messaging.message.body.size": payload.length,
        },
        ...(relayRun && trace.isSpanContextValid(relayRun) ? { links: [{ context: relayRun }] } : {}),
      },
      parent,
    );
    propagation.inject(trace.setSpan(parent, span), h, hdrSetter);
    try {
      const ack = await this.js.publish(destination, payload, { msgID: eventId, headers: h });
      span.setAttribute("messaging.nats.duplicate", ack.duplicate);
      return { duplicate: ack.duplicate, seq: ack.seq };
    } catch (e) {
      span.recordException(e as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (e as Error).message });
      throw e;
    } finally {
      span.end();
    }
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
      // The kit counts tries and dead-letters; JetStream must not drop a message first.
      max_deliver: -1,
    };
    if (o.maxDeliveries !== undefined && (!Number.isInteger(o.maxDeliveries) || o.maxDeliveries < 1))
      throw new RangeError(`maxDeliveries must be a positive integer, got ${o.maxDeliveries}`);
    await this.ensureStream("dlq");
    try {
      await this.jsm.consumers.info(stream, o.durable);
      await this.jsm.consumers.update(stream, o.durable, config);
    } catch (e) {
      if (!/consumer not found/i.test((e as Error).message)) throw e;
      await this.jsm.consumers.add(stream, config);
    }
    const consumer = await this.js.consumers.get(stream, o.durable);
    const messages = await consumer.consume({ max_messages: 64 });
    const lag = async (r: ObservableResult): Promise<void> => {
      // An unreachable server leaves the point out of this collection; it is not a failure of it.
      const info = await this.jsm.consumers.info(stream, o.durable).catch(() => undefined);
      if (info) r.observe(info.num_pending, { durable: o.durable });
    };
    eventMetrics().lag.addCallback(lag);
    const entry = { messages, done: Promise.resolve(), unobserve: () => eventMetrics().lag.removeCallback(lag) };
    entry.done = (async () => {
      for await (const m of messages) await this.handle(m, o);
    })().catch((e: unknown) => this.opts.logger.error({ err: e, durable: o.durable }, "consumer stopped"));
    this.running.add(entry);
  }

  private async handle<D extends DescMessage>(m: JsMsg, o: ConsumeOptions<D>): Promise<void> {
    this.inflight++;
    const parent = m.headers ? propagation.extract(ROOT_CONTEXT, m.headers, hdrGetter) : ROOT_CONTEXT;
    const deliveries = m.info.deliveryCount;
    const span = tracer().startSpan(
      `process ${m.subject}`,
      {
        kind: SpanKind.CONSUMER,
        attributes: {
          "messaging.system": "nats",
          "messaging.destination.name": m.subject,
          "messaging.operation.type": "process",
          "messaging.operation.name": "process",
          "messaging.consumer.group.name": o.durable,
          "messaging.message.id": m.headers?.get("Nats-Msg-Id") || `${m.info.stream}:${m.seq}`,
          "messaging.nats.delivery_count": deliveries,
        },
      },
      parent,
    );
    if (deliveries > 1) eventMetrics().redeliveries.add(1, { durable: o.durable });
    try {
      await context.with(trace.setSpan(parent, span), async () => {
        let event: MessageShape<D>;
        try {
          event = fromBinary(o.schema, m.data);
        } catch (e) {
          span.setStatus({ code: SpanStatusCode.ERROR, message: "undecodable payload" });
          this.opts.logger.error({ err: e, subject: m.subject, seq: m.seq }, "undecodable event: dead-lettered");
          await this.deadLetter(m, o, `undecodable payload: ${(e as Error).message}`);
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
          span.recordException(e as Error);
          span.setStatus({ code: SpanStatusCode.ERROR, message: (e as Error).message });
          eventMetrics().failures.add(1, { "messaging.consumer.name": o.durable });
          if (meta.deliveryCount >= (o.maxDeliveries ?? 5)) {
            this.opts.logger.error(
              { err: e, subject: m.subject, attempt: meta.deliveryCount },
              "event handler failed for the last time: dead-lettered",
            );
            await this.deadLetter(m, o, (e as Error).message ?? String(e));
          } else {
            this.opts.logger.warn({ err: e, subject: m.subject, attempt: meta.deliveryCount }, "event handler failed; will redeliver");
            m.nak((o.backoffMs ?? defaultBackoff)(meta.deliveryCount));
          }
        }
      });
    } finally {
      span.end();
      if (--this.inflight === 0) for (const w of this.idle.splice(0)) w();
    }
  }

  /**
   * Copies a message to the dead-letter subject (original headers plus where it came from
   * and why it failed), then terminates it. If the copy cannot be published the message is
   * nak'd instead and comes back later: it is never dropped.
   */
  private async deadLetter<D extends DescMessage>(m: JsMsg, o: ConsumeOptions<D>, error: string): Promise<void> {
    const h = natsHeaders();
    if (m.headers) for (const k of m.headers.keys()) if (k !== "Nats-Msg-Id") h.set(k, m.headers.get(k));
    const H = DEAD_LETTER_HEADERS;
    h.set(H.subject, m.subject);
    // Header values are one line of printable text.
    // Header values are one line.
    const oneLine = error.replace(/[\r\n]+/g, " ").slice(0, 1000) || "(no message)";
    h.set(H.error, oneLine);
    h.set(H.consumer, o.durable);
    h.set(H.deliveries, String(m.info.deliveryCount));
    h.set(H.stream, m.info.stream);
    h.set(H.seq, String(m.seq));
    const id = m.headers?.get("Nats-Msg-Id") || `${m.info.stream}:${m.seq}`;
    try {
      await this.js.publish(this.subject(o.deadLetterSubject ?? deadLetterSubject(o.durable)), m.data, {
        msgID: `dlq/${o.durable}/${id}`,
        headers: h,
      });
      eventMetrics().deadLettered.add(1, { "messaging.consumer.name": o.durable });
      // No reason: servers before 2.10 ignore "+TERM <reason>" and would redeliver forever.
      m.term();
    } catch (e) {
      this.opts.logger.error({ err: e, subject: m.subject }, "could not dead-letter an event; will redeliver");
      m.nak((o.backoffMs ?? defaultBackoff)(m.info.deliveryCount));
    }
  }

  /** Stops fetching and waits for the handlers in flight; unacked messages are redelivered later. */
  async stopConsumers(): Promise<void> {
    for (const r of this.running) {
      r.unobserve();
      await r.messages.close().catch(() => undefined);
    }
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
