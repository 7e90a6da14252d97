// kill -9 mid-upload, restart, resume: the same commitments as an uninterrupted upload,
// nothing half-registered in the ledger; and abandoned uploads expire without orphans.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import { IngestionService, UploadState } from "@deai/contracts/deai/ingestion/v1/ingestion_pb";
import { generateActorKey, requestSigner, signRequest } from "@deai/kit";
import { spawnService, type ServiceProcess } from "@deai/testkit";

import {
  bytesOf,
  call,
  objectNames,
  ingestionMain,
  putData,
  sha256Hex,
  signManifest,
  startHarness,
  uploadAll,
  type Harness,
} from "./harness.js";

const K = 4;
const M = 2;
const GROUP = 4 * K * 4096; // INGESTION_PART_BYTES 16384 → 4 stripes per part group
let h: Harness;
let svc: ServiceProcess;
let base: string;

async function start(extra: Record<string, string> = {}): Promise<void> {
  svc = await spawnService(
    ingestionMain,
    h.env.vars({
      INGESTION_PROVIDERS: h.providersJson(),
      INGESTION_LEDGER_URL: h.ledgerUrl,
      INGESTION_PART_BYTES: "16384",
      INGESTION_SWEEP_INTERVAL_MS: "200",
      ...extra,
    }),
  );
  base = `http://127.0.0.1:${svc.port}`;
}

async function kill9(): Promise<void> {
  svc.kill("SIGKILL");
  await svc.exited;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function ledgerEntriesFor(hex: string): Promise<number> {
  const r = await fetch(`${h.ledgerUrl}/v1/ledger/subjects/sha256/${hex}/entries`);
  const j = (await r.json()) as { entries?: unknown[] };
  return (j.entries ?? []).length;
}

async function objectsOf(uploadId: string): Promise<string[]> {
  return (await Promise.all(h.providers.map((p) => objectNames(p, `datasets/${uploadId}/`)))).flat();
}

beforeAll(async () => {
  h = await startHarness("ingestion-recovery", K + M);
  await start();
}, 60_000);

afterAll(async () => {
  svc?.kill("SIGKILL");
  await svc?.exited;
  await h?.close();
});

it("kill -9 during a gRPC upload stream: the unverified stream rolls back to where it started; resume from durable_offset, same shardRoot and contentDigest; nothing in the ledger before", async () => {
  const data = bytesOf(10 * GROUP + 12_345, 21);
  const reference = await uploadAll(base, generateActorKey(), data, {}, 1 << 20);
  const key = generateActorKey();
  const client = () => createClient(IngestionService, createGrpcTransport({ baseUrl: base, interceptors: [requestSigner(key)] }));
  const created = await client().createUpload({ spec: { name: "test", k: K, m: M, shardSize: 4096, size: BigInt(data.length) } });
  const uploadId = created.upload!.uploadId;
  // A slow stream: the service is killed while it is in the middle of it.
  async function* slow(from: number) {
    for (let at = from; at < data.length; at += 16_384) {
      yield { uploadId, offset: BigInt(at), data: data.subarray(at, Math.min(data.length, at + 16_384)) };
      await sleep(15);
    }
  }
  const streaming = client()
    .uploadChunks(slow(0))
    .catch((e: unknown) => e);
  let durable = 0n;
  for (let i = 0; i < 200 && durable < BigInt(3 * GROUP); i++) {
    await sleep(25);
    durable = (await client().getUpload({ uploadId })).upload!.durableOffset;
  }
  expect(durable).toBeGreaterThanOrEqual(BigInt(3 * GROUP));
  await kill9();
  expect(await streaming).toBeInstanceOf(Error);
  await start();
  const after = (await client().getUpload({ uploadId })).upload!;
  // The stream never ended, so its signed digest was never checked: none of it counts, not even
  // the part groups it had made durable (as for a REST body; clients stream in segments).
  expect(after.durableOffset).toBe(0n);
  expect(after.state).toBe(UploadState.OPEN);
  // Nothing about these bytes is in the ledger yet.
  expect(await ledgerEntriesFor(sha256Hex(data))).toBe(1); // the reference upload only
  async function* rest(from: number) {
    for (let at = from; at < data.length; at += 60_000)
      yield { uploadId, offset: BigInt(at), data: data.subarray(at, Math.min(data.length, at + 60_000)) };
  }
  await client().uploadChunks(rest(Number(after.durableOffset)));
  const fin = await client().completeUpload({ uploadId });
  const manifest = fin.upload!.manifest!;
  expect(manifest.contentDigest!.hex).toBe(sha256Hex(data));
  expect(Buffer.from(manifest.shardRoot).toString("base64")).toBe(reference.done.manifest.shardRoot);
  const envelope = signManifest(Buffer.from(fin.upload!.manifestStatement).toString("base64"), key);
  const done = await call(base, key, "POST", `/v1/uploads/${uploadId}/complete`, { manifestEnvelope: envelope });
  expect(done.status).toBe(200);
  expect(await ledgerEntriesFor(sha256Hex(data))).toBe(2);
  const back = Buffer.from(await (await fetch(`${base}/v1/datasets/${done.json.datasetId}/content`)).arrayBuffer());
  expect(back.equals(data)).toBe(true);
}, 90_000);

it("kill -9 during a REST request: its unverified bytes roll back to where it started; the upload completes after resuming", async () => {
  const key = generateActorKey();
  const data = bytesOf(6 * GROUP, 22);
  const created = await call(base, key, "POST", "/v1/uploads", {
    spec: { name: "rest", k: K, m: M, shardSize: 4096, size: String(data.length) },
  });
  const uploadId = created.json.upload.uploadId as string;
  expect((await putData(base, key, uploadId, 0, data.subarray(0, GROUP))).json.durableOffset).toBe(String(GROUP));
  // The second request's body trickles in; the service dies after it committed groups from it.
  const body = data.subarray(GROUP);
  const path = `/v1/uploads/${uploadId}/data/${GROUP}`;
  const sig = signRequest({ key, method: "PUT", url: base + path, body });
  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    async pull(ctl) {
      if (sent >= body.length) return ctl.close();
      const piece = body.subarray(sent, sent + 8192);
      sent += piece.length;
      await sleep(5);
      ctl.enqueue(piece);
    },
  });
  const inflight = fetch(base + path, { method: "PUT", body: stream, headers: { ...sig }, duplex: "half" }).catch((e: unknown) => e);
  // Wait until groups from this request are durable, so the rollback has something to undo.
  let durable = GROUP;
  for (let i = 0; i < 400 && durable <= GROUP; i++) {
    await sleep(20);
    durable = Number((await call(base, key, "GET", `/v1/uploads/${uploadId}`)).json.upload.durableOffset);
  }
  expect(durable).toBeGreaterThan(GROUP);
  await kill9();
  await inflight;
  await start();
  const after = await call(base, key, "GET", `/v1/uploads/${uploadId}`);
  expect(after.json.upload.durableOffset).toBe(String(GROUP));
  expect((await putData(base, key, uploadId, GROUP, body)).status).toBe(200);
  const fin = await call(base, key, "POST", `/v1/uploads/${uploadId}/complete`, {});
  expect(fin.json.upload.manifest.contentDigest.hex).toBe(sha256Hex(data));
}, 90_000);

it("an abandoned upload expires: its objects and multipart uploads are deleted", async () => {
  await kill9();
  await start({ INGESTION_UPLOAD_TTL_S: "1" });
  const key = generateActorKey();
  const created = await call(base, key, "POST", "/v1/uploads", { spec: { name: "left", k: K, m: M, shardSize: 4096 } });
  const uploadId = created.json.upload.uploadId as string;
  expect((await putData(base, key, uploadId, 0, bytesOf(GROUP + 100, 3))).status).toBe(200);
  // Finish the stream (the slot objects now exist) but never sign.
  expect((await call(base, key, "POST", `/v1/uploads/${uploadId}/complete`, {})).json.upload.state).toBe("UPLOAD_STATE_AWAITING_SIGNATURE");
  expect((await objectsOf(uploadId)).length).toBe(K + M);
  let state = "";
  for (let i = 0; i < 100 && state !== "UPLOAD_STATE_EXPIRED"; i++) {
    await sleep(100);
    state = (await call(base, key, "GET", `/v1/uploads/${uploadId}`)).json.upload.state;
  }
  expect(state).toBe("UPLOAD_STATE_EXPIRED");
  // The row is claimed as expired before its objects are deleted (an anchor racing the sweep
  // must see it ended first), so the deletes follow the state by a moment.
  let left = await objectsOf(uploadId);
  for (let i = 0; i < 50 && left.length > 0; i++) {
    await sleep(100);
    left = await objectsOf(uploadId);
  }
  expect(left).toEqual([]);
}, 60_000);

it("a provider down when the stream is finished, then a restart: resend the tail from durable_offset and complete", async () => {
  // The test before left a service with a 1 s upload TTL; this upload must outlive restarts.
  await kill9();
  await start();
  const key = generateActorKey();
  const data = bytesOf(2 * GROUP + 5_000, 23);
  const created = await call(base, key, "POST", "/v1/uploads", {
    spec: { name: "late", k: K, m: M, shardSize: 4096, size: String(data.length) },
  });
  const uploadId = created.json.upload.uploadId as string;
  expect((await putData(base, key, uploadId, 0, data)).status).toBe(200);
  // Finishing writes the last (partial) group: one provider is down, so it fails and nothing of it counts.
  const victim = Number((created.json.upload.placements as { providerId: string }[])[0]!.providerId.slice(1));
  await h.providers[victim]!.stop();
  try {
    const failed = await call(base, key, "POST", `/v1/uploads/${uploadId}/complete`, {});
    expect(failed.status).toBe(503);
    expect(failed.json.message).toMatch(new RegExp(`storage provider p${victim}`));
    await kill9();
  } finally {
    await h.providers[victim]!.start();
  }
  await start();
  const after = (await call(base, key, "GET", `/v1/uploads/${uploadId}`)).json.upload;
  expect(after.state).toBe("UPLOAD_STATE_OPEN");
  expect(after.durableOffset).toBe(String(2 * GROUP));
  expect((await putData(base, key, uploadId, 2 * GROUP, data.subarray(2 * GROUP))).status).toBe(200);
  const fin = await call(base, key, "POST", `/v1/uploads/${uploadId}/complete`, {});
  expect(fin.status).toBe(200);
  // The hash state was lost with the process: contentDigest comes from the stored, leaf-checked shards.
  expect(fin.json.upload.manifest.contentDigest.hex).toBe(sha256Hex(data));
  expect(fin.json.upload.state).toBe("UPLOAD_STATE_AWAITING_SIGNATURE");
}, 60_000);
