/** W3C trace context through HTTP, gRPC and NATS, and trace ids in every log line. */
import { randomBytes, randomUUID } from "node:crypto";
import { Writable } from "node:stream";

import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { SpanKind, SpanStatusCode, context, trace } from "@opentelemetry/api";

import { GetInfoRequestSchema, GetInfoResponseSchema, WhoAmIRequestSchema } from "@deai/contracts/deai/system/v1/system_pb";
import {
  EventBus,
  InMemorySpanExporter,
  OutboxRelay,
  createLogger,
  enqueueEvent,
  migrate,
  openDatabase,
  startService,
  startTelemetry,
  tracer,
  type RunningService,
  type Telemetry,
} from "@deai/kit";
import { createTestEnv, grpcUnary, type TestEnv } from "@deai/testkit";

const exporter = new InMemorySpanExporter();
let telemetry: Telemetry;
let env: TestEnv;
let svc: RunningService<unknown>;
const logger = createLogger({ service: "trace-test", level: "silent" });

beforeAll(async () => {
  telemetry = startTelemetry({ service: "trace-test", memoryExporter: exporter });
  env = await createTestEnv("trace");
  svc = await startService({ name: "trace-demo", version: "0", migrations: {}, create: async () => ({ bindings: [] }) }, env.config(), {
    logger,
  });
});
afterAll(async () => {
  await svc?.stop();
  await env?.close();
  await telemetry?.shutdown();
});

const traceparent = () => {
  const traceId = randomBytes(16).toString("hex");
  const spanId = randomBytes(8).toString("hex");
  return { traceId, spanId, header: `00-${traceId}-${spanId}-01` };
};
const spansOf = (traceId: string) => exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
const parentOf = (s: ReturnType<InMemorySpanExporter["getFinishedSpans"]>[number]) => s.parentSpanContext?.spanId;

it("continues a REST caller's traceparent in the server span", async () => {
  const tp = traceparent();
  const res = await fetch(`http://127.0.0.1:${svc.port}/v1/system/info`, { headers: { traceparent: tp.header } });
  expect(res.status).toBe(200);
  const [span] = spansOf(tp.traceId);
  expect(span?.name).toBe("GET /v1/system/info");
  expect(parentOf(span!)).toBe(tp.spanId);
});

it("continues a gRPC caller's traceparent (metadata) in the server span", async () => {
  const tp = traceparent();
  const client = new grpc.Client(`127.0.0.1:${svc.port}`, grpc.credentials.createInsecure());
  try {
    await grpcUnary(
      client,
      "/deai.system.v1.SystemService/GetInfo",
      GetInfoRequestSchema,
      GetInfoResponseSchema,
      create(GetInfoRequestSchema),
      {
        traceparent: tp.header,
      },
    );
  } finally {
    client.close();
  }
  const [span] = spansOf(tp.traceId);
  expect(span?.name).toBe("deai.system.v1.SystemService/GetInfo");
  expect(parentOf(span!)).toBe(tp.spanId);
});

it("carries the trace through NATS, published directly and through the outbox", async () => {
  const bus = await EventBus.connect({ url: "nats://127.0.0.1:4222", prefix: env.natsPrefix, name: "trace", logger });
  const database = openDatabase<unknown>({ url: env.database.url, schema: "trace_outbox" });
  await migrate(database, {});
  const relay = new OutboxRelay(database.db, bus, logger);
  const seen = new Map<string, string>();
  let resolve!: () => void;
  const done = new Promise<void>((r) => (resolve = r));
  await bus.consume({
    domain: "system",
    durable: "trace-test",
    subject: "deai.system.traced",
    schema: WhoAmIRequestSchema,
    handler: async (e) => {
      seen.set(e.note, trace.getActiveSpan()?.spanContext().traceId ?? "");
      if (seen.size === 2) resolve();
    },
  });
  const direct = tracer().startSpan("direct");
  await context.with(trace.setSpan(context.active(), direct), () =>
    bus.publish("deai.system.traced", WhoAmIRequestSchema, create(WhoAmIRequestSchema, { note: "direct" }), randomUUID()),
  );
  direct.end();
  const viaOutbox = tracer().startSpan("outboxed");
  await context.with(trace.setSpan(context.active(), viaOutbox), () =>
    database.db
      .transaction()
      .execute((trx) =>
        enqueueEvent(trx, "deai.system.traced", WhoAmIRequestSchema, create(WhoAmIRequestSchema, { note: "outbox" }), randomUUID()),
      ),
  );
  viaOutbox.end();
  await relay.flush();
  await done;
  expect(seen.get("direct")).toBe(direct.spanContext().traceId);
  expect(seen.get("outbox")).toBe(viaOutbox.spanContext().traceId);
  await bus.close();
  await database.close();
});

it("puts trace_id and span_id on log lines written inside a span", () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  const log = createLogger({ service: "t", destination: sink });
  const span = tracer().startSpan("logging");
  context.with(trace.setSpan(context.active(), span), () => log.info("inside"));
  span.end();
  log.info("outside");
  const [inside, outside] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(inside).toMatchObject({ msg: "inside", trace_id: span.spanContext().traceId, span_id: span.spanContext().spanId });
  expect(outside?.trace_id).toBeUndefined();
});

it("a kit service client signs calls and carries the caller's trace to the server", async () => {
  const { serviceClient, generateActorKey } = await import("@deai/kit");
  const { SystemService } = await import("@deai/contracts/deai/system/v1/system_pb");
  const key = generateActorKey();
  const client = serviceClient(SystemService, { baseUrl: `http://127.0.0.1:${svc.port}`, key });
  const caller = tracer().startSpan("caller");
  const res = await context.with(trace.setSpan(context.active(), caller), () => client.whoAmI({ note: "s2s" }));
  caller.end();
  expect(res).toMatchObject({ actor: key.id, note: "s2s" });
  const spans = spansOf(caller.spanContext().traceId).filter((s) => s.name === "deai.system.v1.SystemService/WhoAmI");
  const clientSpan = spans.find((s) => s.kind === SpanKind.CLIENT);
  const server = spans.find((s) => s.kind === SpanKind.SERVER);
  // caller → client span (traceparent injected) → server span.
  expect(clientSpan && parentOf(clientSpan)).toBe(caller.spanContext().spanId);
  expect(server && parentOf(server)).toBe(clientSpan?.spanContext().spanId);
  expect(clientSpan?.attributes).toMatchObject({ "rpc.system": "grpc", "rpc.method": "WhoAmI", "rpc.grpc.status_code": 0 });
  // Unsigned, the same call is refused.
  const anonymous = serviceClient(SystemService, { baseUrl: `http://127.0.0.1:${svc.port}` });
  await expect(anonymous.whoAmI({ note: "x" })).rejects.toThrow(/not signed/);
});

describe("semantic conventions of server spans", () => {
  const serverSpan = (traceId: string) => spansOf(traceId).find((s) => s.kind === SpanKind.SERVER);

  it("REST: an HTTP span with http.route, and a 4xx is not an error of the server span", async () => {
    const ok = traceparent();
    expect((await fetch(`http://127.0.0.1:${svc.port}/v1/system/info`, { headers: { traceparent: ok.header } })).status).toBe(200);
    expect(serverSpan(ok.traceId)?.attributes).toMatchObject({
      "http.request.method": "GET",
      "http.route": "/v1/system/info",
      "http.response.status_code": 200,
      "rpc.system": "http_json",
      "rpc.service": "deai.system.v1.SystemService",
      "rpc.method": "GetInfo",
      "rpc.grpc.status_code": 0,
    });
    const bad = traceparent();
    const res = await fetch(`http://127.0.0.1:${svc.port}/v1/system/info?nope=1`, { headers: { traceparent: bad.header } });
    expect(res.status).toBe(400);
    const span = serverSpan(bad.traceId);
    expect(span?.attributes).toMatchObject({ "http.response.status_code": 400, "rpc.grpc.status_code": 3 });
    expect(span?.status.code).toBe(SpanStatusCode.UNSET);
  });

  it("Connect calls say connect_rpc, gRPC calls grpc; the status code is always set", async () => {
    const tp = traceparent();
    const res = await fetch(`http://127.0.0.1:${svc.port}/deai.system.v1.SystemService/GetInfo`, {
      method: "POST",
      headers: { "content-type": "application/json", traceparent: tp.header },
      body: "{}",
    });
    expect(res.status).toBe(200);
    expect(serverSpan(tp.traceId)?.attributes).toMatchObject({ "rpc.system": "connect_rpc", "rpc.grpc.status_code": 0 });
    const refused = traceparent();
    const unsigned = await fetch(`http://127.0.0.1:${svc.port}/deai.system.v1.SystemService/WhoAmI`, {
      method: "POST",
      headers: { "content-type": "application/json", traceparent: refused.header },
      body: "{}",
    });
    expect(unsigned.status).toBe(401);
    const span = serverSpan(refused.traceId);
    expect(span?.attributes).toMatchObject({
      "rpc.system": "connect_rpc",
      "rpc.grpc.status_code": 16,
      "rpc.connect_rpc.error_code": "unauthenticated",
    });
    expect(span?.status.code).toBe(SpanStatusCode.UNSET);
    const grpcCall = traceparent();
    const client = new grpc.Client(`127.0.0.1:${svc.port}`, grpc.credentials.createInsecure());
    try {
      await grpcUnary(
        client,
        "/deai.system.v1.SystemService/GetInfo",
        GetInfoRequestSchema,
        GetInfoResponseSchema,
        create(GetInfoRequestSchema),
        {
          traceparent: grpcCall.header,
        },
      );
    } finally {
      client.close();
    }
    expect(serverSpan(grpcCall.traceId)?.attributes).toMatchObject({ "rpc.system": "grpc", "rpc.grpc.status_code": 0 });
  });

  it("does not trace health checks", async () => {
    const tp = traceparent();
    await fetch(`http://127.0.0.1:${svc.port}/healthz`, { headers: { traceparent: tp.header } });
    await fetch(`http://127.0.0.1:${svc.port}/readyz`, { headers: { traceparent: tp.header } });
    const health = await fetch(`http://127.0.0.1:${svc.port}/grpc.health.v1.Health/Check`, {
      method: "POST",
      headers: { "content-type": "application/json", traceparent: tp.header },
      body: "{}",
    });
    expect(health.status).toBe(200);
    expect(spansOf(tp.traceId)).toEqual([]);
  });
});
