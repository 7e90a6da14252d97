import { fromBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { connect, type NatsConnection } from "nats";
import type { Client } from "minio";

import { DatasetIngestedSchema, ShardInvalidSchema, UploadAbortedSchema } from "@deai/contracts/deai/events/v1/ingestion_pb";
import { IngestionService, UploadChunksRequestSchema } from "@deai/contracts/deai/ingestion/v1/ingestion_pb";
import { generateActorKey, requestSigner, startService, streamName, type RunningService } from "@deai/kit";
import { grpcStreamSignature, natsUrl } from "@deai/testkit";
import { leafHash, parseTlogProof, rootFromLeafHashes, verifyInclusion, verifyTlogProof } from "@deai/proofs";

import { loadIngestionConfig } from "../src/config.js";
import { ingestionDefinition } from "../src/definition.js";
import type { IngestionDb } from "../src/store/tables.js";
import {
  bytesOf,
  call,
  objectNames,
  providerClient,
  type Json,
  putData,
  sha256Hex,
  signManifest,
  startHarness,
  uploadAll,
  type Harness,
} from "./harness.js";

const K = 4;
const M = 2;
const owner = generateActorKey();
let h: Harness;
let svc: RunningService<IngestionDb>;
let base: string;
let nc: NatsConnection;

async function lastEvent<T>(subject: string, decode: (b: Uint8Array) => T): Promise<T | undefined> {
  const jsm = await nc.jetstreamManager();
  const msg = await jsm.streams
    .getMessage(streamName(h.env.natsPrefix, "dataset"), { last_by_subj: `${h.env.natsPrefix}.${subject}` })
    .catch(() => undefined);
  return msg ? decode(msg.data) : undefined;
}

async function eventually<T>(f: () => Promise<T | undefined>, ms = 5000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}

function minio(i: number): Client {
  return providerClient(h.providers[i]!);
}

async function objectsAt(i: number, prefix = "datasets/"): Promise<string[]> {
  return objectNames(h.providers[i]!, prefix);
}

beforeAll(async () => {
  h = await startHarness("ingestion", K + M + 1);
  const config = loadIngestionConfig(
    h.env.vars({
      INGESTION_PROVIDERS: h.providersJson(),
      INGESTION_LEDGER_URL: h.ledgerUrl,
      INGESTION_PART_BYTES: "16384",
      INGESTION_UPLOAD_TTL_S: "3600",
      INGESTION_HEDGE_MS: "200",
    }),
  );
  svc = await startService(ingestionDefinition(config), config);
  base = `http://127.0.0.1:${svc.port}`;
  nc = await connect({ servers: natsUrl });
}, 60_000);

afterAll(async () => {
  await nc?.close();
  await svc?.stop();
  await h?.close();
});

describe("upload, anchor, download", () => {
  const data = bytesOf(300_001, 7);
  let datasetId: string;
  let done: Json;

  beforeAll(async () => {
    ({ done } = await uploadAll(base, owner, data, { license: "CC-BY-4.0", usageTerms: "research only", mediaType: "application/jsonl" }));
    datasetId = done.datasetId;
  }, 60_000);

  it("anchors an owner-signed manifest whose commitments match the bytes, with a receipt that verifies offline", async () => {
    const manifest = done.manifest;
    expect(manifest.contentDigest).toEqual({ algorithm: "sha256", hex: sha256Hex(data) });
    expect(manifest.size).toBe(String(data.length));
    expect([manifest.k, manifest.m, manifest.shardSize]).toEqual([K, M, 4096]);
    expect(Number(manifest.stripes)).toBe(Math.ceil(data.length / (K * 4096)));
    expect(manifest.codec).toBe("rs-cauchy-ronomon-v1");
    expect(manifest.license).toBe("CC-BY-4.0");
    expect(manifest.owner).toBe(owner.id);
    expect(new Set(manifest.placements.map((p: { providerId: string }) => p.providerId)).size).toBe(K + M);
    // The receipt proves the owner's envelope is in the log, against the pinned log key.
    const ds = await call(base, owner, "GET", `/v1/datasets/${datasetId}`);
    expect(ds.status).toBe(200);
    const env = ds.json.dataset.manifestEnvelope;
    const leaf = Buffer.from(
      JSON.stringify({
        payload: env.payload,
        payloadType: env.payloadType,
        signatures: env.signatures.map((s: Json) => ({ keyid: s.keyid, sig: s.sig })),
      }),
    );
    const proof = parseTlogProof(done.receipt.tlogProof);
    const verified = verifyTlogProof(proof, { entry: leaf }, { log: h.verifier });
    expect(verified.index).toBe(Number(done.receipt.index));
    // The leaf table hashes to shardRoot and each shard proof verifies.
    const leaves = Buffer.from(await (await fetch(`${base}/v1/datasets/${datasetId}/leaves`)).arrayBuffer());
    const table = Array.from({ length: leaves.length / 32 }, (_, i) => leaves.subarray(i * 32, i * 32 + 32));
    expect(Buffer.from(rootFromLeafHashes(table)).toString("base64")).toBe(manifest.shardRoot);
    const sp = await call(base, owner, "GET", `/v1/datasets/${datasetId}/shards/1/${K + 1}/proof`);
    expect(sp.status).toBe(200);
    verifyInclusion(
      Number(sp.json.leafIndex),
      Number(sp.json.treeSize),
      Buffer.from(sp.json.leafHash, "base64"),
      sp.json.inclusionProof.map((p: string) => Buffer.from(p, "base64")),
      Buffer.from(manifest.shardRoot, "base64"),
    );
    // The shard itself, range-read from its provider, matches.
    const slot = manifest.placements[K + 1];
    const i = Number(slot.providerId.slice(1));
    const stream = await minio(i).getPartialObject("shards", slot.key, Number(sp.json.objectOffset), 4096);
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(c as Buffer);
    expect(Buffer.from(leafHash(Buffer.concat(chunks))).toString("base64")).toBe(sp.json.leafHash);
  });

  it("publishes deai.dataset.ingested with the manifest and ledger index", async () => {
    const ev = await eventually(() => lastEvent("deai.dataset.ingested", (b) => fromBinary(DatasetIngestedSchema, b)));
    expect(ev.datasetId).toBe(datasetId);
    expect(ev.contentDigest?.hex).toBe(sha256Hex(data));
    expect(ev.ledgerIndex).toBe(BigInt(done.receipt.index));
  });

  it("streams the bytes back over REST, whole and by range", async () => {
    const res = await fetch(`${base}/v1/datasets/${datasetId}/content`);
    expect(res.status).toBe(200);
    expect(res.headers.get("x-deai-content-digest")).toBe(`sha256:${sha256Hex(data)}`);
    expect(Buffer.from(await res.arrayBuffer()).equals(data)).toBe(true);
    const part = await fetch(`${base}/v1/datasets/${datasetId}/content`, { headers: { range: "bytes=16380-70000" } });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe(`bytes 16380-70000/${data.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(data.subarray(16380, 70001))).toBe(true);
    const suffix = await fetch(`${base}/v1/datasets/${datasetId}/content`, { headers: { range: "bytes=-10" } });
    expect(Buffer.from(await suffix.arrayBuffer()).equals(data.subarray(data.length - 10))).toBe(true);
    const bad = await fetch(`${base}/v1/datasets/${datasetId}/content`, { headers: { range: `bytes=${data.length}-` } });
    expect(bad.status).toBe(416);
  });

  it("streams the bytes back over gRPC with content_digest_verified on the last message", async () => {
    const client = createClient(IngestionService, createGrpcTransport({ baseUrl: base }));
    const parts: Buffer[] = [];
    let verified = false;
    for await (const msg of client.downloadDataset({ datasetId })) {
      parts.push(Buffer.from(msg.data));
      verified = msg.contentDigestVerified;
    }
    expect(Buffer.concat(parts).equals(data)).toBe(true);
    expect(verified).toBe(true);
  });

  it("reads back byte-identical with m providers down", async () => {
    const placed = done.manifest.placements.map((p: { providerId: string }) => Number(p.providerId.slice(1)));
    // Stop two data slots' providers: every stripe must be decoded from parity.
    const down = [placed[0], placed[2]];
    await Promise.all(down.map((i: number) => h.providers[i]!.stop()));
    try {
      const res = await fetch(`${base}/v1/datasets/${datasetId}/content`);
      expect(res.status).toBe(200);
      expect(Buffer.from(await res.arrayBuffer()).equals(data)).toBe(true);
    } finally {
      await Promise.all(down.map((i: number) => h.providers[i]!.start()));
    }
  });

  it("survives a corrupted shard and reports it as deai.dataset.shard_invalid naming provider, stripe and slot", async () => {
    const slot = 1;
    const p = done.manifest.placements[slot];
    const i = Number(p.providerId.slice(1));
    const obj = minio(i);
    const chunks: Buffer[] = [];
    for await (const c of await obj.getObject("shards", p.key)) chunks.push(c as Buffer);
    const original = Buffer.concat(chunks);
    const bad = Buffer.from(original);
    bad[2 * 4096 + 5]! ^= 0xff; // stripe 2
    await obj.putObject("shards", p.key, bad);
    try {
      const res = await fetch(`${base}/v1/datasets/${datasetId}/content`);
      expect(Buffer.from(await res.arrayBuffer()).equals(data)).toBe(true);
      const ev = await eventually(() => lastEvent("deai.dataset.shard_invalid", (b) => fromBinary(ShardInvalidSchema, b)));
      expect(ev).toMatchObject({ datasetId, providerId: p.providerId, stripe: 2n, slot });
      expect(Buffer.from(ev.observedLeafHash).equals(Buffer.from(ev.expectedLeafHash))).toBe(false);
    } finally {
      await obj.putObject("shards", p.key, original);
    }
  });

  it("dedupes: the same bytes from the same owner are the existing dataset, declared or not", async () => {
    const again = await uploadAll(base, owner, data);
    expect(again.done.datasetId).toBe(datasetId);
    const declared = await call(base, owner, "POST", "/v1/uploads", {
      spec: { name: "again", contentDigest: { algorithm: "sha256", hex: sha256Hex(data) } },
    });
    expect(declared.json.upload).toMatchObject({ state: "UPLOAD_STATE_COMPLETED", datasetId });
    // The second upload's objects were deleted.
    const objs = (await Promise.all(h.providers.map((_, i) => objectsAt(i, `datasets/${again.uploadId}/`)))).flat();
    expect(objs).toEqual([]);
  });

  it("lists and finds datasets by digest and owner", async () => {
    const byDigest = await call(base, owner, "GET", `/v1/datasets/by-digest/${sha256Hex(data)}`);
    expect(byDigest.json.dataset.datasetId).toBe(datasetId);
    const list = await call(base, owner, "GET", `/v1/datasets?owner=${encodeURIComponent(owner.id)}`);
    expect(list.json.datasets.map((d: { datasetId: string }) => d.datasetId)).toContain(datasetId);
    const trainer = await call(base, owner, "GET", `/v1/datasets/${datasetId}/reader-manifest`);
    expect(trainer.json).toMatchObject({ contentDigest: sha256Hex(data), k: K, m: M, shardSize: 4096 });
    expect(trainer.json.leaves).toHaveLength(Number(done.manifest.stripes) * (K + M));
  });
});

describe("gRPC client-streaming upload", () => {
  it("counts none of a stream that does not match its signed digest, even part groups it made durable", async () => {
    const key = generateActorKey();
    const signed = createClient(IngestionService, createGrpcTransport({ baseUrl: base, interceptors: [requestSigner(key)] }));
    const raw = createClient(IngestionService, createGrpcTransport({ baseUrl: base }));
    const data = bytesOf(120_000, 12);
    const created = await signed.createUpload({ spec: { name: "grpc-bound", k: K, m: M, shardSize: 4096, size: BigInt(data.length) } });
    const uploadId = created.upload!.uploadId;
    const messages = [0, 30_000, 60_000, 90_000].map((at) => ({ uploadId, offset: BigInt(at), data: data.subarray(at, at + 30_000) }));
    // Signed over the first two messages only; the stream carries four (one durable part group and more).
    const headers = grpcStreamSignature(key, `${base}/deai.ingestion.v1.IngestionService/UploadChunks`, UploadChunksRequestSchema, [
      { $typeName: "deai.ingestion.v1.UploadChunksRequest", ...messages[0]! },
      { $typeName: "deai.ingestion.v1.UploadChunksRequest", ...messages[1]! },
    ]);
    async function* all() {
      yield* messages;
    }
    await expect(raw.uploadChunks(all(), { headers })).rejects.toThrow(/does not match its signed content-digest/);
    const after = await signed.getUpload({ uploadId });
    expect(after.upload!.durableOffset).toBe(0n);
  });

  it("uploads in several streams, resumes from received_offset, and yields the same commitments as REST", async () => {
    const key = generateActorKey();
    const client = createClient(IngestionService, createGrpcTransport({ baseUrl: base, interceptors: [requestSigner(key)] }));
    const data = bytesOf(200_000, 11);
    const created = await client.createUpload({ spec: { name: "grpc", k: K, m: M, shardSize: 4096, size: BigInt(data.length) } });
    const uploadId = created.upload!.uploadId;
    async function* stream(from: number, to: number) {
      for (let at = from; at < to; at += 30_000) yield { uploadId, offset: BigInt(at), data: data.subarray(at, Math.min(to, at + 30_000)) };
    }
    const first = await client.uploadChunks(stream(0, 120_000));
    expect(first.receivedOffset).toBe(120_000n);
    expect(first.durableOffset).toBe(65_536n); // one part group (4 stripes × 4 × 4096)
    await expect(client.uploadChunks(stream(100_000, 130_000))).rejects.toThrow(
      /resume from durable_offset 65536 \(or received_offset 120000\)/,
    );
    await client.uploadChunks(stream(120_000, data.length));
    const fin = await client.completeUpload({ uploadId });
    expect(fin.upload!.manifest!.contentDigest!.hex).toBe(sha256Hex(data));
    const envelope = signManifest(Buffer.from(fin.upload!.manifestStatement).toString("base64"), key);
    const done = await client.completeUpload({
      uploadId,
      manifestEnvelope: {
        payloadType: envelope.payloadType,
        payload: Buffer.from(envelope.payload, "base64"),
        signatures: envelope.signatures.map((s) => ({ keyid: s.keyid, sig: Buffer.from(s.sig, "base64") })),
      },
    });
    expect(done.receipt?.tlogProof).toMatch(/^c2sp.org\/tlog-proof@v1/);
    // The same bytes over REST by another owner: identical commitments.
    const rest = await uploadAll(base, generateActorKey(), data);
    expect(rest.done.manifest.shardRoot).toBe(Buffer.from(done.manifest!.shardRoot).toString("base64"));
  }, 60_000);
});

describe("bad input changes nothing", () => {
  async function create(spec: Record<string, unknown> = {}, key = owner) {
    return call(base, key, "POST", "/v1/uploads", { spec: { name: "bad", k: K, m: M, shardSize: 4096, ...spec } });
  }

  it("rejects coding parameters beyond the codec's limits and unknown digests", async () => {
    expect((await create({ k: 30 })).json).toMatchObject({
      code: "invalid_argument",
      message: expect.stringMatching(/k must be an integer from 1 to/),
    });
    expect((await create({ m: 9 })).status).toBe(400);
    expect((await create({ shardSize: 1001 })).json.message).toMatch(/multiple of 8/);
    expect((await create({ contentDigest: { algorithm: "md5", hex: "00" } })).json.message).toMatch(/only sha256/);
    expect((await create({ size: "0" })).json.message).toMatch(/at least one byte/);
    expect((await create({ k: 6, m: 2 })).json).toMatchObject({
      code: "failed_precondition",
      message: expect.stringMatching(/need 8 distinct storage providers; 7 are configured/),
    });
  });

  it("refuses unsigned, replayed, foreign and mis-digested PUTs; progress rolls back", async () => {
    const c = await create({ size: "150000" });
    const id = c.json.upload.uploadId;
    const data = bytesOf(150_000, 3);
    const unsigned = await fetch(`${base}/v1/uploads/${id}/data/0`, { method: "PUT", body: data });
    expect(unsigned.status).toBe(401);
    // A body that is not the signed one: refused after streaming, nothing kept.
    const path = `/v1/uploads/${id}/data/0`;
    const { signRequest } = await import("@deai/kit");
    const sig = signRequest({ key: owner, method: "PUT", url: base + path, body: data });
    const tampered = Buffer.from(data);
    tampered[99_999]! ^= 1;
    const r1 = await fetch(base + path, { method: "PUT", body: tampered, headers: { ...sig } });
    expect(r1.status).toBe(400);
    expect(((await r1.json()) as { message: string }).message).toMatch(
      /does not match its signed Content-Digest; upload .* rolled back to offset 0/,
    );
    expect((await call(base, owner, "GET", `/v1/uploads/${id}`)).json.upload.durableOffset ?? "0").toBe("0");
    // Replaying the same signed request is refused (nonce).
    const r2 = await fetch(base + path, { method: "PUT", body: data, headers: { ...sig } });
    expect(r2.status).toBe(401);
    expect(((await r2.json()) as { message: string }).message).toMatch(/replayed/);
    // Someone else's key.
    expect((await putData(base, generateActorKey(), id, 0, data)).status).toBe(403);
    // Overrunning the declared size.
    const over = await putData(base, owner, id, 0, Buffer.concat([data, Buffer.alloc(10)]));
    expect(over.json.message).toMatch(/overruns the declared size/);
    // Truncated: fewer bytes than declared, then complete: refused, upload stays open.
    expect((await putData(base, owner, id, 0, data.subarray(0, 70_000))).status).toBe(200);
    const early = await call(base, owner, "POST", `/v1/uploads/${id}/complete`, {});
    expect(early.json).toMatchObject({
      code: "failed_precondition",
      message: expect.stringMatching(/has 70000 of its declared 150000 bytes/),
    });
    expect((await call(base, owner, "GET", `/v1/uploads/${id}`)).json.upload.state).toBe("UPLOAD_STATE_OPEN");
    // A gap is refused with where to resume.
    expect((await putData(base, owner, id, 80_000, data.subarray(80_000))).json.message).toMatch(
      /resume from durable_offset 65536 \(or received_offset 70000\)/,
    );
    expect((await putData(base, owner, id, 70_000, data.subarray(70_000))).status).toBe(200);
    const fin = await call(base, owner, "POST", `/v1/uploads/${id}/complete`, {});
    expect(fin.json.upload.state).toBe("UPLOAD_STATE_AWAITING_SIGNATURE");
    // An envelope from another key, or over other bytes, anchors nothing.
    const stranger = await call(base, owner, "POST", `/v1/uploads/${id}/complete`, {
      manifestEnvelope: signManifest(fin.json.upload.manifestStatement, generateActorKey()),
    });
    expect(stranger.json).toMatchObject({ code: "permission_denied" });
    const other = Buffer.from(fin.json.upload.manifestStatement, "base64").toString().replace('"bad"', '"BAD"');
    const forged = await call(base, owner, "POST", `/v1/uploads/${id}/complete`, {
      manifestEnvelope: signManifest(Buffer.from(other).toString("base64"), owner),
    });
    expect(forged.json.message).toMatch(/not the statement this upload produced/);
    expect((await call(base, owner, "GET", `/v1/uploads/${id}`)).json.upload.state).toBe("UPLOAD_STATE_AWAITING_SIGNATURE");
  }, 30_000);

  it("fails a declared digest that does not match and deletes its objects", async () => {
    const data = bytesOf(50_000, 5);
    const c = await create({ size: "50000", contentDigest: { algorithm: "sha256", hex: sha256Hex(Buffer.from("other")) } });
    const id = c.json.upload.uploadId;
    expect((await putData(base, owner, id, 0, data)).status).toBe(200);
    const fin = await call(base, owner, "POST", `/v1/uploads/${id}/complete`, {});
    expect(fin.status).toBe(400);
    expect(fin.json.message).toMatch(/content digest mismatch/);
    expect((await call(base, owner, "GET", `/v1/uploads/${id}`)).json.upload.state).toBe("UPLOAD_STATE_FAILED");
    const objs = (await Promise.all(h.providers.map((_, i) => objectsAt(i, `datasets/${id}/`)))).flat();
    expect(objs).toEqual([]);
  });

  it("a provider down during upload: 503 naming it; the upload resumes from durable_offset once it is back", async () => {
    const data = bytesOf(140_000, 9);
    const c = await create({ size: String(data.length) });
    const id = c.json.upload.uploadId;
    const victim = Number(c.json.upload.placements[3].providerId.slice(1));
    expect((await putData(base, owner, id, 0, data.subarray(0, 65_536))).json.durableOffset).toBe("65536");
    await h.providers[victim]!.stop();
    let r;
    try {
      r = await putData(base, owner, id, 65_536, data.subarray(65_536));
      expect(r.status).toBe(503);
      expect(r.json.message).toMatch(new RegExp(`storage provider p${victim} .*unreachable`));
    } finally {
      await h.providers[victim]!.start();
    }
    expect((await call(base, owner, "GET", `/v1/uploads/${id}`)).json.upload.durableOffset).toBe("65536");
    expect((await putData(base, owner, id, 65_536, data.subarray(65_536))).status).toBe(200);
    const fin = await call(base, owner, "POST", `/v1/uploads/${id}/complete`, {});
    expect(fin.json.upload.manifest.contentDigest.hex).toBe(sha256Hex(data));
  }, 30_000);

  it("placement skips a provider that is down", async () => {
    await h.providers[0]!.stop();
    try {
      const c = await create();
      expect(c.status).toBe(200);
      expect(c.json.upload.placements.map((p: { providerId: string }) => p.providerId)).not.toContain("p0");
    } finally {
      await h.providers[0]!.start();
    }
  });

  it("abort deletes the upload's objects and multipart uploads and publishes upload_aborted", async () => {
    const c = await create();
    const id = c.json.upload.uploadId;
    expect((await putData(base, owner, id, 0, bytesOf(70_000, 2))).status).toBe(200);
    expect((await call(base, generateActorKey(), "POST", `/v1/uploads/${id}/abort`, {})).status).toBe(403);
    const r = await call(base, owner, "POST", `/v1/uploads/${id}/abort`, {});
    expect(r.json.upload.state).toBe("UPLOAD_STATE_ABORTED");
    const objs = (await Promise.all(h.providers.map((_, i) => objectsAt(i, `datasets/${id}/`)))).flat();
    expect(objs).toEqual([]);
    const ev = await eventually(() => lastEvent("deai.dataset.upload_aborted", (b) => fromBinary(UploadAbortedSchema, b)));
    expect(ev).toMatchObject({ uploadId: id, expired: false });
    expect((await putData(base, owner, id, 70_000, bytesOf(10, 1))).json.message).toMatch(/is aborted, not open/);
  });
});
