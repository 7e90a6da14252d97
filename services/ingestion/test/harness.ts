// Test harness: real Postgres and NATS (test env), n in-process S3 servers as storage
// providers, and the real ledger process the manifests are anchored in.
import { createHash, randomBytes, sign } from "node:crypto";

import type { Client } from "minio";

import { generateActorKey, s3Client, signRequest, type ActorKey } from "@deai/kit";
import { createTestEnv, spawnService, startS3, storageProvidersJson, type ServiceProcess, type TestEnv, type TestS3 } from "@deai/testkit";
import { generateNoteKey, IN_TOTO_PAYLOAD_TYPE, pae, parseVerifierKey, type NoteVerifier } from "@deai/proofs";

/** A parsed JSON response body. */
export type Json = ReturnType<typeof JSON.parse>;

export const ORIGIN = "ledger.ingestion-test/log";
const ledgerMain = new URL("../../ledger/dist/main.js", import.meta.url).pathname;
export const ingestionMain = new URL("../dist/main.js", import.meta.url).pathname;

export interface Harness {
  readonly env: TestEnv;
  readonly providers: TestS3[];
  readonly ledger: ServiceProcess;
  readonly ledgerUrl: string;
  readonly verifier: NoteVerifier;
  /** The ledger's verifier key (note format), as a pinned log key is configured. */
  readonly verifierKey: string;
  /** INGESTION_PROVIDERS for these servers (ids p0, p1, ...). */
  providersJson(): string;
  close(): Promise<void>;
}

export async function startHarness(label: string, providerCount: number): Promise<Harness> {
  const env = await createTestEnv(label);
  const providers = await Promise.all(Array.from({ length: providerCount }, () => startS3({ buckets: ["shards"] })));
  const keys = generateNoteKey(ORIGIN);
  const ledger = await spawnService(
    ledgerMain,
    env.vars({ LEDGER_ORIGIN: ORIGIN, LEDGER_SIGNING_KEY: keys.signerKey, LEDGER_CHECKPOINT_INTERVAL_MS: "100" }),
    // The machine is shared: a loaded one can take well over 20 s to start a process.
    { timeoutMs: 90_000 },
  );
  return {
    env,
    providers,
    ledger,
    ledgerUrl: `http://127.0.0.1:${ledger.port}`,
    verifier: parseVerifierKey(keys.verifierKey),
    verifierKey: keys.verifierKey,
    providersJson: () => storageProvidersJson(providers),
    close: async () => {
      ledger.kill("SIGKILL");
      await ledger.exited;
      await Promise.all(providers.map((p) => p.destroy()));
      await env.close();
    },
  };
}

/** A minio client of one of the harness's S3 servers. */
export function providerClient(p: TestS3): Client {
  return s3Client({ endpoint: p.endpoint, accessKey: p.accessKey, secretKey: p.secretKey, region: p.region });
}

/** Object names under `prefix` in the shards bucket of one S3 server. */
export async function objectNames(p: TestS3, prefix: string): Promise<string[]> {
  const names: string[] = [];
  for await (const o of providerClient(p).listObjectsV2("shards", prefix, true)) names.push((o as { name: string }).name);
  return names;
}

/** Deterministic pseudo-random bytes. */
export function bytesOf(size: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(size);
  let block = createHash("sha256").update(`seed-${seed}`).digest();
  for (let at = 0; at < size; at += 32) {
    block.copy(out, at, 0, Math.min(32, size - at));
    block = createHash("sha256").update(block).digest();
  }
  return out;
}

export const randomData = (n: number): Buffer => randomBytes(n);

export function sha256Hex(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

/** A signed JSON POST (or other method) to the service. */
export async function call(
  base: string,
  key: ActorKey,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: Json }> {
  const bytes = body === undefined ? new Uint8Array() : Buffer.from(JSON.stringify(body));
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (method !== "GET") Object.assign(headers, signRequest({ key, method, url: base + path, body: bytes }));
  const res = await fetch(base + path, { method, headers, ...(method === "GET" ? {} : { body: bytes }) });
  const text = await res.text();
  let json: Json;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json };
}

/** PUTs bytes at `offset` (signed, Content-Digest over the body). */
export async function putData(
  base: string,
  key: ActorKey,
  uploadId: string,
  offset: number,
  data: Uint8Array,
  headers: Record<string, string> = {},
) {
  const path = `/v1/uploads/${uploadId}/data/${offset}`;
  const sig = signRequest({ key, method: "PUT", url: base + path, body: data });
  const res = await fetch(base + path, {
    method: "PUT",
    body: data,
    headers: { "content-type": "application/octet-stream", ...sig, ...headers },
  });
  const text = await res.text();
  return { status: res.status, json: JSON.parse(text) };
}

/** DSSE envelope (proto JSON form) over the statement bytes (base64), signed by `key`. */
export function signManifest(
  statementB64: string,
  key: ActorKey,
): { payloadType: string; payload: string; signatures: { keyid: string; sig: string }[] } {
  const payload = Buffer.from(statementB64, "base64");
  return {
    payloadType: IN_TOTO_PAYLOAD_TYPE,
    payload: statementB64,
    signatures: [{ keyid: key.id, sig: sign(null, pae(IN_TOTO_PAYLOAD_TYPE, payload), key.privateKey).toString("base64") }],
  };
}

/** create → PUT in segments → finish → sign → anchor. Returns the final response JSON. */
export async function uploadAll(
  base: string,
  key: ActorKey,
  data: Buffer,
  spec: Record<string, unknown> = {},
  segment = 100_000,
): Promise<{ uploadId: string; done: Json }> {
  const created = await call(base, key, "POST", "/v1/uploads", {
    spec: { name: "test", k: 4, m: 2, shardSize: 4096, size: String(data.length), ...spec },
  });
  if (created.status !== 200) throw new Error(`create: ${created.status} ${JSON.stringify(created.json)}`);
  const uploadId = created.json.upload.uploadId as string;
  if (created.json.upload.state === "UPLOAD_STATE_COMPLETED") return { uploadId, done: created.json };
  for (let at = 0; at < data.length; at += segment) {
    const r = await putData(base, key, uploadId, at, data.subarray(at, at + segment));
    if (r.status !== 200) throw new Error(`put at ${at}: ${r.status} ${JSON.stringify(r.json)}`);
  }
  const fin = await call(base, key, "POST", `/v1/uploads/${uploadId}/complete`, {});
  if (fin.status !== 200) throw new Error(`finish: ${fin.status} ${JSON.stringify(fin.json)}`);
  if (fin.json.upload.state === "UPLOAD_STATE_COMPLETED") return { uploadId, done: fin.json };
  const envelope = signManifest(fin.json.upload.manifestStatement, key);
  const done = await call(base, key, "POST", `/v1/uploads/${uploadId}/complete`, { manifestEnvelope: envelope });
  if (done.status !== 200) throw new Error(`anchor: ${done.status} ${JSON.stringify(done.json)}`);
  return { uploadId, done: done.json };
}

export { generateActorKey };
