/**
 * The consumer template against real NATS JetStream and Postgres: one effect per event id
 * through the inbox (redelivery and republish), dead-lettering after N tries with the
 * original subject and error in headers and a metric, and inbox pruning on the clock.
 */
import { randomUUID } from "node:crypto";

import { create, toBinary } from "@bufbuild/protobuf";
import { sql } from "kysely";
import { nanos } from "nats";

import { WhoAmIRequestSchema } from "@deai/contracts/deai/system/v1/system_pb";
import {
  DEAD_LETTER_HEADERS,
  EventBus,
  INBOX_PRUNE_LOOP,
  INBOX_RETENTION_MS,
  ManualClock,
  Scheduler,
  consumeOnce,
  createLogger,
  deadLetterSubject,
  migrate,
  onceHandler,
  openDatabase,
  scheduleInboxPrune,
  streamName,
  type Database,
  type EventMeta,
} from "@deai/kit";
import { createTestEnv, natsUrl, type TestEnv } from "@deai/testkit";

import { metricPoints } from "./metric-points.js";

/** The cumulative sum of a counter for the given consumer. */
async function counter(name: string, consumer: string): Promise<number> {
  let total = 0;
  for (const p of await metricPoints(name)) if (p.attributes["messaging.consumer.name"] === consumer) total += p.value as number;
  return total;
}

const logger = createLogger({ service: "events-test", level: "silent" });
let env: TestEnv;
let bus: EventBus;
let database: Database<unknown>;

async function eventually(cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

beforeAll(async () => {
  env = await createTestEnv("events");
  bus = await EventBus.connect({ url: natsUrl, prefix: env.natsPrefix, name: "events-test", logger });
  database = openDatabase<unknown>({ url: env.database.url, schema: "events_test" });
  await migrate(database, {
    "0001_effects": async (db) => {
      await db.schema.createTable("effects").addColumn("note", "text").execute();
    },
  });
});
afterAll(async () => {
  await bus?.close();
  await database?.close();
  await env?.close();
});

const effects = async (): Promise<string[]> =>
  (await sql<{ note: string }>`select note from effects order by note`.execute(database.db)).rows.map((r) => r.note);

it("has one effect per event id: a failed try is rolled back and redelivered, a republish past the dedupe window is swallowed", async () => {
  const tries: number[] = [];
  let failNext = true;
  await consumeOnce(bus, {
    db: database.db,
    domain: "system",
    durable: "events-once",
    subject: "deai.system.once",
    schema: WhoAmIRequestSchema,
    backoffMs: () => 50,
    handler: async (e, meta, trx) => {
      tries.push(meta.deliveryCount);
      await sql`insert into effects (note) values (${e.note})`.execute(trx);
      if (failNext) {
        failNext = false;
        throw new Error("fails after writing: the write and the inbox row roll back");
      }
    },
  });
  const id = randomUUID();
  await bus.publish("deai.system.once", WhoAmIRequestSchema, create(WhoAmIRequestSchema, { note: "once" }), id);
  await eventually(() => tries.length === 2);
  expect(tries).toEqual([1, 2]);
  expect(await effects()).toEqual(["once"]);
  // The same event id arrives again as a new stream message (the outbox republishing after a
  // crash, later than JetStream's duplicate window): shrink the window to get it through.
  const stream = streamName(env.natsPrefix, "system");
  const info = await bus.jsm.streams.info(stream);
  await bus.jsm.streams.update(stream, { ...info.config, duplicate_window: nanos(100) });
  await new Promise((r) => setTimeout(r, 300));
  const again = await bus.publish("deai.system.once", WhoAmIRequestSchema, create(WhoAmIRequestSchema, { note: "once" }), id);
  expect(again.duplicate).toBe(false);
  await eventually(async () => (await bus.jsm.consumers.info(stream, "events-once")).delivered.stream_seq >= again.seq);
  await eventually(async () => (await bus.jsm.consumers.info(stream, "events-once")).num_ack_pending === 0);
  await bus.ensureStream("system");
  expect(tries).toEqual([1, 2]);
  expect(await effects()).toEqual(["once"]);
  const inbox = await sql<{ n: number }>`select count(*)::int as n from kit_inbox where consumer = 'events-once'`.execute(database.db);
  expect(inbox.rows[0]?.n).toBe(1);
});

it("dead-letters after N failed tries with the original subject, error and trace headers, and counts it", async () => {
  const tries: number[] = [];
  await consumeOnce(bus, {
    db: database.db,
    domain: "system",
    durable: "events-poison",
    subject: "deai.system.poison",
    schema: WhoAmIRequestSchema,
    maxDeliveries: 3,
    backoffMs: () => 50,
    handler: async (_e, meta) => {
      tries.push(meta.deliveryCount);
      throw new Error("cannot handle\nthis one");
    },
  });
  const dead: { note: string; meta: EventMeta }[] = [];
  const dlq = deadLetterSubject("events-poison");
  await bus.consume({
    domain: "dlq",
    durable: "events-dlq-reader",
    subject: dlq,
    schema: WhoAmIRequestSchema,
    handler: async (e, meta) => {
      dead.push({ note: e.note, meta });
    },
  });
  const id = randomUUID();
  const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  await bus.publishRaw(
    "deai.system.poison",
    toBinary(WhoAmIRequestSchema, create(WhoAmIRequestSchema, { note: "poison" })),
    id,
    WhoAmIRequestSchema.typeName,
    { traceparent },
  );
  await eventually(() => dead.length === 1);
  expect(tries).toEqual([1, 2, 3]);
  expect(dead[0]?.note).toBe("poison");
  expect(dead[0]?.meta.subject).toBe(bus.subject(dlq));
  // The headers, read from the stream (a handler sees the decoded payload only).
  const stored = await bus.jsm.streams.getMessage(streamName(env.natsPrefix, "dlq"), { last_by_subj: bus.subject(dlq) });
  const H = DEAD_LETTER_HEADERS;
  expect(stored.header.get(H.subject)).toBe(bus.subject("deai.system.poison"));
  expect(stored.header.get(H.error)).toBe("cannot handle this one");
  expect(stored.header.get(H.deliveries)).toBe("3");
  expect(stored.header.get(H.consumer)).toBe("events-poison");
  expect(stored.header.get("traceparent")).toBe(traceparent);
  expect(stored.header.get("Nats-Msg-Id")).toBe(`dlq/events-poison/${id}`);
  // Terminated: nothing pending on the original consumer, no effect, and no fourth try.
  const poisonInfo = () => bus.jsm.consumers.info(streamName(env.natsPrefix, "system"), "events-poison");
  await eventually(async () => (await poisonInfo()).num_ack_pending === 0);
  expect((await poisonInfo()).num_pending).toBe(0);
  await new Promise((r) => setTimeout(r, 300));
  expect(tries).toEqual([1, 2, 3]);
  expect(await counter("deai.events.dead_lettered", "events-poison")).toBe(1);
  // Tries 2 and 3 were redeliveries; the consumer's lag is observed (nothing left to deliver).
  const byDurable = async (name: string) =>
    (await metricPoints(name)).filter((p) => p.attributes.durable === "events-poison").map((p) => p.value as number);
  expect(await byDurable("deai.events.consumer.redeliveries")).toEqual([2]);
  expect(await byDurable("deai.events.consumer.lag")).toEqual([0]);
  expect(await counter("deai.events.handler_failures", "events-poison")).toBe(3);
});

it("dead-letters an undecodable payload at once", async () => {
  let handled = 0;
  await consumeOnce(bus, {
    db: database.db,
    domain: "system",
    durable: "events-garbage",
    subject: "deai.system.garbage",
    schema: WhoAmIRequestSchema,
    handler: async () => void handled++,
  });
  await bus.publishRaw("deai.system.garbage", new Uint8Array([0xff, 0xff, 0xff]), randomUUID(), WhoAmIRequestSchema.typeName);
  const dlq = bus.subject(deadLetterSubject("events-garbage"));
  await eventually(async () => (await counter("deai.events.dead_lettered", "events-garbage")) === 1);
  const stored = await bus.jsm.streams.getMessage(streamName(env.natsPrefix, "dlq"), { last_by_subj: dlq });
  expect(stored.header.get(DEAD_LETTER_HEADERS.error)).toMatch(/^undecodable payload/);
  expect(stored.header.get(DEAD_LETTER_HEADERS.deliveries)).toBe("1");
  // Terminated, not left pending for redelivery.
  await eventually(
    async () => (await bus.jsm.consumers.info(streamName(env.natsPrefix, "system"), "events-garbage")).num_ack_pending === 0,
  );
  expect(handled).toBe(0);
});

it("prunes inbox rows older than the retention, on the scheduler's clock", async () => {
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const handler = onceHandler(database.db, "events-prune", async () => undefined, clock);
  const meta = (eventId: string): EventMeta => ({ eventId, subject: "deai.system.x", deliveryCount: 1 });
  const e = create(WhoAmIRequestSchema, {});
  await handler(e, meta("old-1"));
  await handler(e, meta("old-2"));
  clock.advance(INBOX_RETENTION_MS / 2);
  await handler(e, meta("recent"));
  const scheduler = new Scheduler({ logger, clock, db: database.db });
  const loop = scheduleInboxPrune(scheduler, database.db);
  expect(loop.name).toBe(INBOX_PRUNE_LOOP);
  const ids = async (): Promise<string[]> =>
    (
      await sql<{ event_id: string }>`select event_id from kit_inbox where consumer = 'events-prune' order by event_id`.execute(database.db)
    ).rows.map((r) => r.event_id);
  // A fresh loop runs at once; nothing is old enough yet.
  scheduler.start();
  await eventually(() => loop.stats.runs === 1);
  expect(await ids()).toEqual(["old-1", "old-2", "recent"]);
  // Past the retention of the first two (and the hourly interval): they go, the recent one stays.
  clock.advance(INBOX_RETENTION_MS / 2 + 1);
  await eventually(() => loop.stats.runs === 2);
  expect(await ids()).toEqual(["recent"]);
  // A pruned id is a new event again: retention must outlive every redelivery path.
  await handler(e, meta("old-1"));
  expect(await ids()).toEqual(["old-1", "recent"]);
  await scheduler.stop();
});
