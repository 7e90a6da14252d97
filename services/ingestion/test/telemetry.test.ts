// Issue 11, "done when": a dataset upload, sent by a traced client to the real ledger and
// ingestion processes, arrives at an OTLP/HTTP receiver as ONE trace spanning the client,
// ingestion, the ledger, Postgres, S3 and NATS, with every parent present; and `/metrics`
// serves the request metrics under their exact names, and they move.
import { context, trace } from "@opentelemetry/api";

import { injectContext, signRequest, startTelemetry, tracer, type Telemetry } from "@deai/kit";
import {
  createTestEnv,
  spawnService,
  startOtlpReceiver,
  startS3,
  stopService,
  storageProvidersJson,
  type OtlpReceiver,
  type ReceivedSpan,
  type ServiceProcess,
  type TestEnv,
  type TestS3,
} from "@deai/testkit";
import { generateNoteKey } from "@deai/proofs";

import { bytesOf, generateActorKey, ingestionMain, signManifest, type Json } from "./harness.js";

const ledgerMain = new URL("../../ledger/dist/main.js", import.meta.url).pathname;
const ORIGIN = "ledger.telemetry-test/log";
const owner = generateActorKey();

let receiver: OtlpReceiver;
let client: Telemetry;
let env: TestEnv;
let providers: TestS3[];
let ledger: ServiceProcess;
let ingestion: ServiceProcess;
let base: string;

const k8s = (pod: string) => `k8s.pod.name=${pod},k8s.namespace.name=deai-test,k8s.node.name=node-a`;

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  client = startTelemetry({ service: "upload-client", otlpEndpoint: receiver.url, prometheus: false });
  env = await createTestEnv("telemetry");
  providers = await Promise.all(Array.from({ length: 6 }, () => startS3({ buckets: ["shards"] })));
  const keys = generateNoteKey(ORIGIN);
  const otel = (pod: string) => ({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_RESOURCE_ATTRIBUTES: k8s(pod) });
  ledger = await spawnService(
    ledgerMain,
    env.vars({ LEDGER_ORIGIN: ORIGIN, LEDGER_SIGNING_KEY: keys.signerKey, LEDGER_CHECKPOINT_INTERVAL_MS: "100", ...otel("ledger-0") }),
    { timeoutMs: 90_000 },
  );
  ingestion = await spawnService(
    ingestionMain,
    env.vars({
      INGESTION_PROVIDERS: storageProvidersJson(providers),
      INGESTION_LEDGER_URL: `http://127.0.0.1:${ledger.port}`,
      INGESTION_PART_BYTES: "16384",
      ...otel("ingestion-0"),
    }),
    { timeoutMs: 90_000 },
  );
  base = `http://127.0.0.1:${ingestion.port}`;
}, 180_000);

afterAll(async () => {
  for (const p of [ingestion, ledger]) if (p) await stopService(p);
  await client?.shutdown();
  await Promise.all((providers ?? []).map((p) => p.destroy()));
  await env?.close();
  await receiver?.close();
});

/** A signed request carrying the active trace context. */
async function send(method: string, path: string, body?: unknown, raw?: Uint8Array): Promise<{ status: number; json: Json }> {
  const bytes = raw ?? (body === undefined ? new Uint8Array() : Buffer.from(JSON.stringify(body)));
  const headers = new Headers({ "content-type": raw ? "application/octet-stream" : "application/json" });
  if (method !== "GET")
    for (const [k, v] of Object.entries(signRequest({ key: owner, method, url: base + path, body: bytes }))) headers.set(k, v);
  injectContext(headers);
  const res = await fetch(base + path, { method, headers, ...(method === "GET" ? {} : { body: bytes }) });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

/** One series' value in a Prometheus text exposition (labels given must all match); 0 when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? "").matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) total += Number(m[3]);
  }
  return total;
}

const scrape = async (port: number): Promise<string> => {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.text();
};

it("serves /metrics with the names of METRICS.md, and the request metrics move", async () => {
  const rpc = {
    rpc_system: "http_json",
    rpc_service: "deai.ledger.v1.LedgerService",
    rpc_method: "GetLatestCheckpoint",
    rpc_grpc_status_code: "0",
  };
  const before = await scrape(ledger.port);
  for (let i = 0; i < 3; i++) expect((await fetch(`http://127.0.0.1:${ledger.port}/v1/ledger/checkpoint`)).status).toBe(200);
  // An unknown entry: a 4xx counts under its own status code.
  expect((await fetch(`http://127.0.0.1:${ledger.port}/v1/ledger/entries/999999`)).status).toBe(404);
  const after = await scrape(ledger.port);
  expect(sample(after, "rpc_server_call_duration_seconds_count", rpc) - sample(before, "rpc_server_call_duration_seconds_count", rpc)).toBe(
    3,
  );
  expect(sample(after, "rpc_server_call_duration_seconds_sum", rpc)).toBeGreaterThan(
    sample(before, "rpc_server_call_duration_seconds_sum", rpc),
  );
  expect(sample(after, "rpc_server_call_duration_seconds_bucket", { ...rpc, le: "+Inf" })).toBe(
    sample(after, "rpc_server_call_duration_seconds_count", rpc),
  );
  expect(sample(after, "rpc_server_call_duration_seconds_count", { rpc_method: "GetEntry", rpc_grpc_status_code: "5" })).toBe(
    sample(before, "rpc_server_call_duration_seconds_count", { rpc_method: "GetEntry", rpc_grpc_status_code: "5" }) + 1,
  );
  expect(sample(after, "db_client_operation_duration_seconds_count", { db_system_name: "postgresql" })).toBeGreaterThan(
    sample(before, "db_client_operation_duration_seconds_count", { db_system_name: "postgresql" }),
  );
  // Health checks are not traced and not counted.
  await fetch(`http://127.0.0.1:${ledger.port}/readyz`);
  for (const name of [
    "db_client_connection_count",
    "db_client_connection_pending_requests",
    "deai_outbox_backlog",
    "deai_schedule_runs_total",
    "deai_schedule_duration_seconds_count",
    "deai_ledger_tree_size",
    "deai_ledger_integration_lag_seconds",
    "deai_ledger_checkpoint_age_seconds",
  ])
    expect(after).toMatch(new RegExp(`^${name}[{ ]`, "m"));
  expect(
    sample(after, "db_client_connection_count", { db_client_connection_state: "idle", db_client_connection_pool_name: "ledger" }),
  ).toBeGreaterThanOrEqual(0);
  expect(after).toContain('k8s_pod_name="ledger-0"');
  expect(sample(after, "deai_ledger_checkpoint_age_seconds")).toBeGreaterThanOrEqual(0);
}, 60_000);

it("traces a dataset upload as one trace: client, ingestion, ledger, Postgres, S3 and NATS, every parent present", async () => {
  const data = bytesOf(100_000, 11);
  const root = tracer().startSpan("upload dataset");
  let done!: Json;
  await context.with(trace.setSpan(context.active(), root), async () => {
    const created = await send("POST", "/v1/uploads", { spec: { name: "traced", k: 4, m: 2, shardSize: 4096, size: String(data.length) } });
    expect(created.status).toBe(200);
    const uploadId = created.json.upload.uploadId as string;
    const put = await send("PUT", `/v1/uploads/${uploadId}/data/0`, undefined, data);
    expect(put.status).toBe(200);
    const fin = await send("POST", `/v1/uploads/${uploadId}/complete`, {});
    expect(fin.status).toBe(200);
    const envelope = signManifest(fin.json.upload.manifestStatement as string, owner);
    const anchored = await send("POST", `/v1/uploads/${uploadId}/complete`, { manifestEnvelope: envelope });
    expect(anchored.status).toBe(200);
    done = anchored.json;
    // The streamed read route, in the same trace.
    const headers = new Headers();
    injectContext(headers);
    const content = await fetch(`${base}/v1/datasets/${done.datasetId as string}/content`, { headers });
    expect(Buffer.from(await content.arrayBuffer()).equals(data)).toBe(true);
  });
  root.end();
  expect(done.upload.state).toBe("UPLOAD_STATE_COMPLETED");
  const ingestionMetrics = await scrape(ingestion.port);
  expect(
    sample(ingestionMetrics, "http_server_request_duration_seconds_count", {
      http_route: "/v1/uploads/{upload_id}/data/{offset}",
      http_response_status_code: "200",
    }),
  ).toBe(1);
  // Stopping the services flushes their span exporters (the outbox relays what is queued first).
  expect(await stopService(ingestion)).toBe(0);
  expect(await stopService(ledger)).toBe(0);
  await client.shutdown();
  expect(receiver.undecoded).toEqual([]);

  const traceId = root.spanContext().traceId;
  const spans = receiver.spans.filter((s) => s.traceId === traceId);
  const ids = new Set(spans.map((s) => s.spanId));
  const roots = spans.filter((s) => s.parentSpanId === undefined);
  expect(roots.map((s) => s.name)).toEqual(["upload dataset"]);
  const orphans = spans.filter((s) => s.parentSpanId !== undefined && !ids.has(s.parentSpanId));
  expect(orphans.map((s) => `${String(s.resource["service.name"])}: ${s.name}`)).toEqual([]);

  const of = (service: string) => spans.filter((s) => s.resource["service.name"] === service);
  const parent = (s: ReceivedSpan) => spans.find((p) => p.spanId === s.parentSpanId);
  const ing = of("ingestion");
  const led = of("ledger");
  expect(ing.length).toBeGreaterThan(0);
  expect(led.length).toBeGreaterThan(0);
  // Kubernetes attributes from OTEL_RESOURCE_ATTRIBUTES are merged into the resource.
  expect(led[0]!.resource).toMatchObject({ "k8s.pod.name": "ledger-0", "k8s.namespace.name": "deai-test", "k8s.node.name": "node-a" });
  expect(ing[0]!.resource).toMatchObject({ "k8s.pod.name": "ingestion-0", "service.name": "ingestion" });

  // REST: an HTTP server span with its route, the RPC it maps to, and its status codes.
  const create = ing.find((s) => s.name === "POST /v1/uploads");
  expect(create).toMatchObject({ kind: 2, statusCode: 0 });
  expect(create!.attributes).toMatchObject({
    "http.route": "/v1/uploads",
    "http.response.status_code": 200,
    "rpc.system": "http_json",
    "rpc.grpc.status_code": 0,
  });
  // The streamed data route.
  const dataPut = ing.find((s) => s.attributes["http.route"] === "/v1/uploads/{upload_id}/data/{offset}");
  expect(dataPut).toMatchObject({ kind: 2, name: "PUT /v1/uploads/{upload_id}/data/{offset}" });
  expect(dataPut!.attributes["http.response.status_code"]).toBe(200);
  // ingestion → ledger: a client span, the ledger's server span its child.
  const append = ing.find((s) => s.kind === 3 && s.attributes["rpc.method"] === "Append");
  expect(append?.attributes).toMatchObject({
    "rpc.system": "grpc",
    "rpc.service": "deai.ledger.v1.LedgerService",
    "rpc.grpc.status_code": 0,
  });
  const served = led.find((s) => s.kind === 2 && s.parentSpanId === append!.spanId);
  expect(served?.attributes).toMatchObject({ "rpc.system": "grpc", "rpc.method": "Append", "rpc.grpc.status_code": 0 });
  // Postgres, in both services, under their requests.
  for (const svc of [ing, led]) {
    const db = svc.filter((s) => s.attributes["db.system.name"] === "postgresql");
    expect(db.length).toBeGreaterThan(0);
    for (const s of db) {
      expect(s.kind).toBe(3);
      expect(typeof s.attributes["db.operation.name"]).toBe("string");
      expect(String(s.attributes["db.query.text"])).not.toMatch(/'[^']+'/);
    }
  }
  // S3: the shard writes.
  const s3 = ing.filter((s) => s.attributes["rpc.system"] === "aws-api");
  expect(s3.map((s) => s.attributes["rpc.method"])).toEqual(
    expect.arrayContaining(["CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"]),
  );
  for (const s of s3) expect(s.kind).toBe(3);
  // S3 calls are not retried by the client; a step that failed (a part PUT past its deadline on
  // a loaded machine) is retried whole by the upload, so an error span is allowed only for a
  // method that then succeeded in the same trace. Seen once in a full `make test` run.
  const succeeded = new Set(s3.filter((s) => s.statusCode !== 2).map((s) => s.attributes["rpc.method"]));
  for (const s of s3.filter((x) => x.statusCode === 2))
    expect({ failed: s.attributes["rpc.method"], retried: succeeded.has(s.attributes["rpc.method"]) }).toMatchObject({ retried: true });
  for (const m of ["CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"]) expect(succeeded).toContain(m);
  // NATS: the outboxed dataset event, published by the relay within the request's trace.
  const produced = ing.filter((s) => s.kind === 4 && s.attributes["messaging.system"] === "nats");
  expect(produced.length).toBeGreaterThan(0);
  expect(produced.some((s) => String(s.attributes["messaging.destination.name"]).endsWith("deai.dataset.ingested"))).toBe(true);
  for (const s of produced) expect(parent(s)).toBeDefined();
  const read = ing.find((s) => s.attributes["http.route"] === "/v1/datasets/{dataset_id}/content");
  expect(read).toMatchObject({ kind: 2, name: "GET /v1/datasets/{dataset_id}/content", statusCode: 0 });
  expect(read!.attributes["http.response.status_code"]).toBe(200);
  expect(s3.some((s) => s.attributes["rpc.method"] === "GetObject" && parent(s) !== undefined)).toBe(true);
  // The ledger's scheduled checkpoints: each publish continues the integrator run that signed it.
  const checkpointEvents = receiver.spans.filter(
    (s) => s.kind === 4 && String(s.attributes["messaging.destination.name"]).endsWith("deai.ledger.checkpoint_published"),
  );
  expect(checkpointEvents.length).toBeGreaterThan(0);
  for (const e of checkpointEvents)
    expect(receiver.spans.find((p) => p.spanId === e.parentSpanId)?.name).toBe("schedule ledger.integrator");
  // Health checks never appear.
  expect(receiver.spans.filter((s) => /healthz|readyz|metrics|grpc\.health/.test(s.name))).toEqual([]);
}, 120_000);
