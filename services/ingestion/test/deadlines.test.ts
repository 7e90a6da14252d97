// Deadlines on every provider call (issue 9, defect 4) and cached probes (defect 8b), with
// every provider behind a proxy that can stall (accept, then move no bytes).
import { generateActorKey, startService, type RunningService } from "@deai/kit";

import { loadIngestionConfig } from "../src/config.js";
import { ingestionDefinition } from "../src/definition.js";
import type { IngestionDb } from "../src/store/tables.js";
import { bytesOf, call, objectNames, putData, sha256Hex, startHarness, uploadAll, type Harness } from "./harness.js";
import { startStallProxy, type StallProxy } from "./stall-proxy.js";

const K = 4;
const M = 2;
const owner = generateActorKey();
let h: Harness;
let proxies: StallProxy[];
let svc: RunningService<IngestionDb>;
let base: string;
const data = bytesOf(8 * 1024 * 1024 + 1234, 21);
let datasetId: string;

/** The proxy of the provider holding `slot` of the dataset. */
function proxyOf(placements: { providerId: string }[], slot: number): StallProxy {
  return proxies[Number(placements[slot]!.providerId.slice(1))]!;
}

beforeAll(async () => {
  h = await startHarness("ingestion-deadlines", K + M);
  proxies = await Promise.all(h.providers.map((p) => startStallProxy(p.endpoint)));
  const providers = (JSON.parse(h.providersJson()) as { endpoint: string }[]).map((p, i) => ({ ...p, endpoint: proxies[i]!.endpoint }));
  const config = loadIngestionConfig(
    h.env.vars({
      INGESTION_PROVIDERS: JSON.stringify(providers),
      INGESTION_LEDGER_URL: h.ledgerUrl,
      INGESTION_PART_BYTES: "16384",
      INGESTION_HEDGE_MS: "200",
      INGESTION_READ_STRIPES: "1",
      INGESTION_PROVIDER_READ_TIMEOUT_MS: "1000",
      INGESTION_PROVIDER_PART_IDLE_MS: "1000",
      // Whole calls (CompleteMultipartUpload of the setup upload) get room on a loaded machine;
      // the deadlines under test are the read, part-idle and probe ones.
      INGESTION_PROVIDER_CALL_TIMEOUT_MS: "6000",
      INGESTION_PROVIDER_PROBE_TIMEOUT_MS: "500",
      INGESTION_PROVIDER_PROBE_TTL_MS: "60000",
    }),
  );
  svc = await startService(ingestionDefinition(config), config);
  base = `http://127.0.0.1:${svc.port}`;
  ({ uploadId: datasetId } = await uploadAll(base, owner, data, {}, 4 * 1024 * 1024));
}, 120_000);

afterAll(async () => {
  await svc?.stop();
  await Promise.all((proxies ?? []).map((p) => p.close()));
  await h?.close();
});

afterEach(() => proxies.forEach((p) => p.resume()));

async function placements(): Promise<{ providerId: string }[]> {
  return (await call(base, owner, "GET", `/v1/datasets/${datasetId}`)).json.dataset.manifest.placements;
}

it("with more than m providers stalled, a download answers an error status promptly, not 200 and silence", async () => {
  const p = await placements();
  for (const slot of [0, 1, 2]) proxyOf(p, slot).stall();
  const t0 = Date.now();
  const res = await fetch(`${base}/v1/datasets/${datasetId}/content`);
  const body = (await res.json()) as { code: string; message: string };
  expect(res.status).toBe(503);
  expect(body.message).toMatch(/only \d of the 4 shards needed could be read and verified .*did not answer within 1000 ms/);
  expect(Date.now() - t0).toBeLessThan(5000);
}, 20_000);

it("with m providers stalled, the hedge replaces them and the bytes arrive whole", async () => {
  const p = await placements();
  for (const slot of [0, 3]) proxyOf(p, slot).stall();
  const res = await fetch(`${base}/v1/datasets/${datasetId}/content`);
  expect(res.status).toBe(200);
  expect(sha256Hex(Buffer.from(await res.arrayBuffer()))).toBe(sha256Hex(data));
}, 60_000);

it("a stall mid-body ends the response with an error promptly", async () => {
  const p = await placements();
  const res = await fetch(`${base}/v1/datasets/${datasetId}/content`);
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  let got = (await reader.read()).value!.length;
  for (const slot of [0, 1, 2]) proxyOf(p, slot).stall();
  const t0 = Date.now();
  let error: unknown;
  try {
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      got += r.value.length;
    }
  } catch (e) {
    error = e;
  }
  expect(error).toBeDefined();
  expect(got).toBeLessThan(data.length);
  expect(Date.now() - t0).toBeLessThan(6000);
}, 30_000);

it("while a provider holds a part PUT open, the upload answers 503 within the part deadline", async () => {
  const size = 400_000;
  const c = await call(base, owner, "POST", "/v1/uploads", { spec: { name: "stall", k: K, m: M, shardSize: 4096, size: String(size) } });
  const id = c.json.upload.uploadId;
  expect((await putData(base, owner, id, 0, bytesOf(65_536, 3))).json.durableOffset).toBe("65536");
  const stalled = proxyOf(c.json.upload.placements, 5);
  stalled.stall();
  const t0 = Date.now();
  const r = await putData(base, owner, id, 65_536, bytesOf(size - 65_536, 4));
  expect(r.status).toBe(503);
  expect(r.json.message).toMatch(/did not answer within 1000 ms: could not upload part/);
  expect(Date.now() - t0).toBeLessThan(5000);
  stalled.resume();
}, 30_000);

it("abort while a provider holds a part PUT open: abort wins, no objects or parts left, no 5xx, others unaffected", async () => {
  const size = 400_000;
  const c = await call(base, owner, "POST", "/v1/uploads", { spec: { name: "held", k: K, m: M, shardSize: 4096, size: String(size) } });
  const id = c.json.upload.uploadId as string;
  expect((await putData(base, owner, id, 0, bytesOf(65_536, 5))).json.durableOffset).toBe("65536");
  const held = proxyOf(c.json.upload.placements, 5);
  // The next group's part PUTs open; the provider of slot 5 takes some bytes, then holds its PUT open.
  const put = putData(base, owner, id, 65_536, bytesOf(size - 65_536, 6));
  await new Promise((r) => setTimeout(r, 150));
  held.holdOpen();
  await new Promise((r) => setTimeout(r, 200));
  const t0 = Date.now();
  const abort = await call(base, owner, "POST", `/v1/uploads/${id}/abort`, {});
  expect(abort.status).toBe(200);
  expect(abort.json.upload.state).toBe("UPLOAD_STATE_ABORTED");
  expect(Date.now() - t0).toBeLessThan(3000);
  const r = await put;
  expect(r.json.message).toMatch(/ended \(aborted/);
  expect(r.status).toBeGreaterThanOrEqual(400);
  expect(r.status).toBeLessThan(500);
  held.resume();
  // Nothing of the upload stays at any provider: no object, no multipart upload, no part.
  await new Promise((r) => setTimeout(r, 300));
  for (const p of h.providers) {
    expect(await objectNames(p, `datasets/${id}/`)).toEqual([]);
    expect(await p.multipartUploads("shards", `datasets/${id}/`)).toEqual([]);
  }
  // The providers still serve everyone else.
  const res = await fetch(`${base}/v1/datasets/${datasetId}/content`);
  expect(res.status).toBe(200);
  expect(sha256Hex(Buffer.from(await res.arrayBuffer()))).toBe(sha256Hex(data));
  const other = await uploadAll(base, owner, bytesOf(50_000, 7), { name: "after-abort" });
  expect(other.done.upload.state).toBe("UPLOAD_STATE_COMPLETED");
}, 30_000);

it("listing storage providers (unauthenticated) probes each provider at most once per TTL", async () => {
  const before = proxies.map((p) => p.heads);
  await Promise.all(Array.from({ length: 20 }, () => fetch(`${base}/v1/storage-providers`).then((r) => r.json())));
  for (let i = 0; i < 10; i++) expect((await fetch(`${base}/v1/storage-providers`)).status).toBe(200);
  const probes = proxies.map((p, i) => p.heads - before[i]!);
  expect(Math.max(...probes)).toBeLessThanOrEqual(1);
});
