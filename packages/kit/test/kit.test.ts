/**
 * The kit against real Postgres, real NATS JetStream and an in-process S3 server, and a
 * real server answered by a stock grpc-js client and curl.
 */
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { promisify } from "node:util";

import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { sql } from "kysely";

import {
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus,
} from "@deai/contracts/grpc/health/v1/health_pb";
import {
  GetInfoRequestSchema,
  GetInfoResponseSchema,
  WhoAmIRequestSchema,
  WhoAmIResponseSchema,
} from "@deai/contracts/deai/system/v1/system_pb";
import {
  BlobStore,
  EventBus,
  OutboxRelay,
  createLogger,
  enqueueEvent,
  enqueueEvents,
  generateActorKey,
  migrate,
  onceHandler,
  openDatabase,
  startService,
  type Database,
  type RunningService,
} from "@deai/kit";
import { createTestEnv, grpcSignature, grpcUnary, signedFetch, type TestEnv } from "@deai/testkit";

const run = promisify(execFile);
const logger = createLogger({ service: "kit-test", level: "silent" });
let env: TestEnv;

beforeAll(async () => {
  env = await createTestEnv("kit");
});
afterAll(async () => {
  await env?.close();
});

describe("Postgres migrations", () => {
  it("creates the schema, applies kit and service migrations once, and records them", async () => {
    const database = openDatabase<unknown>({ url: env.database.url, schema: "migr_test" });
    try {
      const migrations = {
        "0001_widgets": async (db: Database<unknown>["db"]) => {
          await db.schema
            .createTable("widgets")
            .addColumn("id", "text", (c) => c.primaryKey())
            .execute();
        },
      };
      const first = await migrate(database, migrations);
      expect(first).toEqual([
        "0000_kit_001_nonces",
        "0000_kit_002_outbox",
        "0000_kit_003_inbox",
        "0000_kit_004_schedules",
        "0000_kit_005_inbox_processed_at",
        "0001_widgets",
      ]);
      const again = await migrate(database, migrations);
      expect(again).toEqual(first);
      const t = await sql<{
        table_name: string;
      }>`select table_name from information_schema.tables where table_schema = 'migr_test' order by 1`.execute(database.db);
      expect(t.rows.map((r) => r.table_name)).toEqual(
        expect.arrayContaining(["widgets", "kit_outbox", "kit_inbox", "kit_request_nonces", "kysely_migration"]),
      );
    } finally {
      await database.close();
    }
  });

  it("refuses a failing migration with its name and leaves earlier ones applied", async () => {
    const database = openDatabase<unknown>({ url: env.database.url, schema: "migr_fail" });
    try {
      await expect(
        migrate(database, {
          "0001_bad": async (db) => {
            await sql`select * from no_such_table`.execute(db);
          },
        }),
      ).rejects.toThrow(/migration 0001_bad failed in schema migr_fail/);
    } finally {
      await database.close();
    }
  });
});

describe("NATS JetStream", () => {
  let bus: EventBus;
  beforeAll(async () => {
    bus = await EventBus.connect({ url: "nats://127.0.0.1:4222", prefix: env.natsPrefix, name: "kit-test", logger });
    await bus.ensureStream("system");
  });
  afterAll(async () => {
    await bus.close();
  });

  it("publishes typed protobuf with a dedupe id, and a durable consumer receives and acks it", async () => {
    const got: { note: string; eventId: string }[] = [];
    const done = new Promise<void>((resolve) => {
      void bus.consume({
        domain: "system",
        durable: "kit-test-1",
        subject: "deai.system.whoami",
        schema: WhoAmIRequestSchema,
        handler: async (e, meta) => {
          got.push({ note: e.note, eventId: meta.eventId });
          if (got.length === 2) resolve();
        },
      });
    });
    const id1 = randomUUID();
    const a = await bus.publish("deai.system.whoami", WhoAmIRequestSchema, create(WhoAmIRequestSchema, { note: "one" }), id1);
    const dup = await bus.publish("deai.system.whoami", WhoAmIRequestSchema, create(WhoAmIRequestSchema, { note: "one again" }), id1);
    expect(a.duplicate).toBe(false);
    expect(dup.duplicate).toBe(true);
    await bus.publish("deai.system.whoami", WhoAmIRequestSchema, create(WhoAmIRequestSchema, { note: "two" }), randomUUID());
    await done;
    expect(got.map((g) => g.note)).toEqual(["one", "two"]);
    expect(got[0]?.eventId).toBe(id1);
    await bus.stopConsumers();
    // Acked: the durable consumer has nothing pending or unacknowledged.
    const info = await bus.jsm.consumers.info(await bus.ensureStream("system"), "kit-test-1");
    expect(info.num_ack_pending).toBe(0);
    expect(info.num_pending).toBe(0);
  });

  it("redelivers a message whose handler failed, and the inbox gives exactly one effect", async () => {
    const database = openDatabase<unknown>({ url: env.database.url, schema: "inbox_test" });
    await migrate(database, {
      "0001_counter": async (db) => {
        await db.schema.createTable("effects").addColumn("note", "text").execute();
      },
    });
    const attempts: number[] = [];
    let failOnce = true;
    const handler = onceHandler<typeof WhoAmIRequestSchema, unknown>(database.db, "kit-test-2", async (e, meta, trx) => {
      attempts.push(meta.deliveryCount);
      await sql`insert into effects (note) values (${e.note})`.execute(trx);
      if (failOnce) {
        failOnce = false;
        throw new Error("transient failure after writing (rolled back)");
      }
    });
    const done = new Promise<void>((resolve) => {
      void bus.consume({
        domain: "system",
        durable: "kit-test-2",
        subject: "deai.system.effect",
        schema: WhoAmIRequestSchema,
        handler: async (e, meta) => {
          await handler(e, meta);
          resolve();
        },
      });
    });
    const eventId = randomUUID();
    await bus.publish("deai.system.effect", WhoAmIRequestSchema, create(WhoAmIRequestSchema, { note: "x" }), eventId);
    await done;
    // Deliver the same event again by hand: the inbox must swallow it.
    await handler(create(WhoAmIRequestSchema, { note: "x" }), { eventId, subject: "deai.system.effect", deliveryCount: 3 });
    const rows = await sql<{ n: number }>`select count(*)::int as n from effects`.execute(database.db);
    expect(attempts).toEqual([1, 2]);
    expect(rows.rows[0]?.n).toBe(1);
    await bus.stopConsumers();
    await database.close();
  });

  it("publishes outbox events after commit, and not at all after rollback", async () => {
    const database = openDatabase<unknown>({ url: env.database.url, schema: "outbox_test" });
    await migrate(database, {});
    const relay = new OutboxRelay(database.db, bus, logger);
    const received: string[] = [];
    const done = new Promise<void>((resolve) => {
      void bus.consume({
        domain: "system",
        durable: "kit-test-3",
        subject: "deai.system.outboxed",
        schema: WhoAmIRequestSchema,
        handler: async (e) => {
          received.push(e.note);
          if (received.length === 3) resolve();
        },
      });
    });
    await database.db
      .transaction()
      .execute(async (trx) => {
        await enqueueEvent(
          trx,
          "deai.system.outboxed",
          WhoAmIRequestSchema,
          create(WhoAmIRequestSchema, { note: "rolled back" }),
          randomUUID(),
        );
        throw new Error("abort");
      })
      .catch(() => undefined);
    await database.db.transaction().execute(async (trx) => {
      const event = (note: string) => ({
        subject: "deai.system.outboxed",
        schema: WhoAmIRequestSchema,
        event: create(WhoAmIRequestSchema, { note }),
        eventId: randomUUID(),
      });
      await enqueueEvents(trx, [event("batch 1"), event("batch 2")]);
      await enqueueEvent(
        trx,
        "deai.system.outboxed",
        WhoAmIRequestSchema,
        create(WhoAmIRequestSchema, { note: "committed" }),
        randomUUID(),
      );
    });
    expect(await relay.flush()).toBe(3);
    await done;
    expect(received.sort()).toEqual(["batch 1", "batch 2", "committed"]);
    const left = await sql<{ n: number }>`select count(*)::int as n from kit_outbox`.execute(database.db);
    expect(left.rows[0]?.n).toBe(0);
    await bus.stopConsumers();
    await database.close();
  });
});

describe("S3 (in-process server through the minio client)", () => {
  it("puts, stats, range-reads, gets and removes an object", async () => {
    const blobs = new BlobStore({
      endpoint: env.s3.endpoint,
      bucket: "kit-blobs",
      accessKey: env.s3.accessKey,
      secretKey: env.s3.secretKey,
      region: env.s3.region,
    });
    await blobs.ensureBucket();
    const body = Buffer.from("0123456789abcdef".repeat(1000));
    await blobs.put("a/b.bin", body, body.length);
    expect((await blobs.stat("a/b.bin"))?.size).toBe(body.length);
    expect(await blobs.getBytes("a/b.bin")).toEqual(body);
    const chunks: Buffer[] = [];
    for await (const c of await blobs.getRange("a/b.bin", 10, 6)) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe("abcdef");
    await blobs.remove("a/b.bin");
    expect(await blobs.stat("a/b.bin")).toBeUndefined();
  });
});

describe("one server: gRPC (grpc-js), REST (curl, fetch), signatures", () => {
  let svc: RunningService<unknown>;
  let base: string;
  let client: grpc.Client;

  beforeAll(async () => {
    svc = await startService({ name: "kit-demo", version: "0.0.1", migrations: {}, create: async () => ({ bindings: [] }) }, env.config(), {
      logger,
    });
    base = `http://127.0.0.1:${svc.port}`;
    client = new grpc.Client(`127.0.0.1:${svc.port}`, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    client?.close();
    await svc?.stop();
  });

  const unary = <I extends DescMessage, O extends DescMessage>(
    path: string,
    i: I,
    o: O,
    msg: MessageShape<I>,
    meta: Record<string, string> = {},
  ) => grpcUnary(client, path, i, o, msg, meta);

  it("answers grpc.health.v1 Check and SystemService/GetInfo to a stock grpc-js client", async () => {
    const h = await unary(
      "/grpc.health.v1.Health/Check",
      HealthCheckRequestSchema,
      HealthCheckResponseSchema,
      create(HealthCheckRequestSchema),
    );
    expect(h.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    const info = await unary(
      "/deai.system.v1.SystemService/GetInfo",
      GetInfoRequestSchema,
      GetInfoResponseSchema,
      create(GetInfoRequestSchema),
    );
    expect(info.service).toBe("kit-demo");
    expect(info.schema).toBe("kit_demo");
    expect(info.migrations).toContain("0000_kit_002_outbox");
  });

  it("answers curl on /healthz, /readyz, /openapi.json and the REST form of GetInfo", async () => {
    const { stdout: h } = await run("curl", ["-sS", "-f", `${base}/healthz`]);
    expect(JSON.parse(h)).toEqual({ status: "ok" });
    const { stdout: r } = await run("curl", ["-sS", "-f", `${base}/readyz`]);
    expect(JSON.parse(r)).toMatchObject({ status: "ready", checks: { postgres: "ok", nats: "ok" } });
    const { stdout: info } = await run("curl", ["-sS", "-f", `${base}/v1/system/info`]);
    expect(JSON.parse(info)).toMatchObject({ service: "kit-demo", schema: "kit_demo" });
    const { stdout: doc } = await run("curl", ["-sS", "-f", `${base}/openapi.json`]);
    const openapi = JSON.parse(doc) as { paths: Record<string, Record<string, { security?: unknown }>> };
    expect(openapi.paths["/v1/system/info"]?.get).toBeDefined();
    expect(openapi.paths["/v1/system/whoami"]?.post?.security).toBeDefined();
  });

  it("accepts a signed REST request and refuses tampered, unsigned and replayed ones without effect", async () => {
    const key = generateActorKey();
    const ok = await signedFetch(`${base}/v1/system/whoami`, key, { body: JSON.stringify({ note: "hi" }) });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ actor: key.id, note: "hi" });

    const unsigned = await fetch(`${base}/v1/system/whoami`, { method: "POST", body: "{}" });
    expect(unsigned.status).toBe(401);
    expect(await unsigned.json()).toMatchObject({ code: "unauthenticated", message: expect.stringMatching(/not signed/) });

    // Tampered: signature made for one body, another body sent.
    const { signRequest } = await import("@deai/kit");
    const sig = signRequest({ key, method: "POST", url: `${base}/v1/system/whoami`, body: new TextEncoder().encode('{"note":"a"}') });
    const tampered = await fetch(`${base}/v1/system/whoami`, { method: "POST", body: '{"note":"b"}', headers: { ...sig } });
    expect(tampered.status).toBe(401);
    expect(((await tampered.json()) as { message: string }).message).toMatch(/content-digest does not match/);
    // Tampered digest header too: the signature no longer verifies.
    const { contentDigest } = await import("@deai/kit");
    const forged = await fetch(`${base}/v1/system/whoami`, {
      method: "POST",
      body: '{"note":"b"}',
      headers: { ...sig, "content-digest": contentDigest(new TextEncoder().encode('{"note":"b"}')) },
    });
    expect(forged.status).toBe(401);
    expect(((await forged.json()) as { message: string }).message).toMatch(/signature does not verify/);

    // Replay: the exact same signed request twice.
    const body = new TextEncoder().encode('{"note":"once"}');
    const once = signRequest({ key, method: "POST", url: `${base}/v1/system/whoami`, body });
    const first = await fetch(`${base}/v1/system/whoami`, { method: "POST", body, headers: { ...once } });
    expect(first.status).toBe(200);
    const replay = await fetch(`${base}/v1/system/whoami`, { method: "POST", body, headers: { ...once } });
    expect(replay.status).toBe(401);
    expect(((await replay.json()) as { message: string }).message).toMatch(/replayed request/);

    // Too old.
    const old = signRequest({ key, method: "POST", url: `${base}/v1/system/whoami`, body, created: Math.floor(Date.now() / 1000) - 301 });
    const stale = await fetch(`${base}/v1/system/whoami`, { method: "POST", body, headers: { ...old } });
    expect(stale.status).toBe(401);
    expect(((await stale.json()) as { message: string }).message).toMatch(/signature expired/);
  });

  it("verifies the same signature scheme in gRPC metadata", async () => {
    const key = generateActorKey();
    const path = "/deai.system.v1.SystemService/WhoAmI";
    const msg = create(WhoAmIRequestSchema, { note: "grpc" });
    const meta = grpcSignature(key, base + path, WhoAmIRequestSchema, msg);
    const res = await unary(path, WhoAmIRequestSchema, WhoAmIResponseSchema, msg, meta);
    expect(res.actor).toBe(key.id);
    await expect(unary(path, WhoAmIRequestSchema, WhoAmIResponseSchema, msg, meta)).rejects.toMatchObject({
      code: grpc.status.UNAUTHENTICATED,
      details: expect.stringMatching(/replayed/),
    });
    await expect(
      unary(
        path,
        WhoAmIRequestSchema,
        WhoAmIResponseSchema,
        create(WhoAmIRequestSchema, { note: "other" }),
        grpcSignature(key, base + path, WhoAmIRequestSchema, msg),
      ),
    ).rejects.toMatchObject({
      code: grpc.status.UNAUTHENTICATED,
      details: expect.stringMatching(/content-digest/),
    });
    await expect(unary(path, WhoAmIRequestSchema, WhoAmIResponseSchema, msg)).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });
  });

  it("survives a client that resets the connection before sending a byte, or mid-sniff", async () => {
    const { connect } = await import("node:net");
    for (const first of ["", "P"]) {
      await new Promise<void>((resolve) => {
        const s = connect(svc.port, "127.0.0.1", () => {
          if (first) s.write(first);
          setTimeout(() => {
            s.resetAndDestroy();
            resolve();
          }, 50);
        });
      });
    }
    await new Promise((r) => setTimeout(r, 100));
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
  });

  it("maps bad REST input to precise 4xx errors", async () => {
    const notFound = await fetch(`${base}/v1/nothing/here`);
    expect(notFound.status).toBe(404);
    const badQuery = await fetch(`${base}/v1/system/info?bogus=1`);
    expect(badQuery.status).toBe(400);
    expect(((await badQuery.json()) as { message: string }).message).toMatch(/unknown query parameter "bogus"/);
    const tooBig = await signedFetch(`${base}/v1/system/whoami`, generateActorKey(), {
      body: JSON.stringify({ note: "x".repeat(5 * 1024 * 1024) }),
    });
    expect(tooBig.status).toBe(413);
    const wrongVerb = await fetch(`${base}/v1/system/info`, { method: "POST", body: "{}" });
    expect(wrongVerb.status).toBe(405);
    const key = generateActorKey();
    const badJson = await signedFetch(`${base}/v1/system/whoami`, key, { body: "{not json" });
    expect(badJson.status).toBe(400);
    const unknownField = await signedFetch(`${base}/v1/system/whoami`, key, { body: '{"nope":1}' });
    expect(unknownField.status).toBe(400);
    expect(((await unknownField.json()) as { message: string }).message).toMatch(/invalid WhoAmIRequest/);
  });
});
