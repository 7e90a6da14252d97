// Ingestion benchmark (`make bench-ingest`; BENCH_QUICK=1 for a ~1 minute run), issue 4.
//
// A fresh Postgres database and NATS prefix, the real ledger and ingestion services (dist/main.js)
// as child processes, n = k + m = 12 S3 servers (startS3 from @deai/testkit: s3rver, one per
// provider) and a generated dataset file:
//   0. dataset: BENCH_SIZE_MIB MiB (1024; quick 128) written to a temp file: a 16 MiB pool of
//      random bytes, every 4 KiB stamped with (block, offset) counters, so no 4 KiB repeats and
//      nothing compresses; its SHA-256 and each segment's Content-Digest are taken as it is
//      written (not timed);
//   1. encode (this process, before anything else runs): StripeCodec + encodeStripe from
//      services/ingestion/dist, as src/bench/encode-throughput.ts does (shared-memory stripes,
//      4 in flight), over as many bytes as the dataset, cycling a pool of its first stripes;
//      baseline: node:crypto SHA-256 of the same bytes, interleaved rounds, medians. Then, for
//      context, the upload pipeline alone (UploadSession fed 64 KiB chunks, no network);
//   2. baseline S3 PUT (run before and after the ingest; the mean is the baseline): the same file
//      split into 12 contiguous slices, one multipart object per S3 server, with the service's
//      own client and calls (minio: initiate, uploadPart, complete), the service's part size
//      (5 MiB) and concurrency (one part in flight per server, all servers in parallel);
//   3. ingest (after an untimed warm-up upload of a 48 MiB prefix): REST create → signed PUT
//      segments (BENCH_SEGMENT_MIB, streamed from the file, RFC 9421 signature over the
//      Content-Digest taken at generation) → complete → sign the manifest statement → complete
//      with the envelope (anchored in the ledger); ingestMiBps = dataset MiB / (create →
//      anchored). Peak RSS of that service process (VmHWM, reset after the warm-up);
//   4. download: GET /v1/datasets/{id}/content in full from a fresh service process, SHA-256
//      checked here too;
//   5. reconstruct: the same with the providers of the m = 4 data slots 0..3 stopped
//      (TestS3.stop()), so every stripe is decoded from parity.
// The S3 servers run in a helper process of their own (s3-helper.ts; BENCH_S3=inprocess puts them
// in this process): the baseline's client (this process) and the service then both talk to
// servers that share no event loop with them, as real providers would not.
// Each phase runs its own service process (same database), so each gets its own RSS and profile.
// CPU time of every process (service, its main thread, S3 servers, ledger, Postgres, this
// client, everything else on the machine) is recorded per phase from /proc: on a shared machine
// it says where the time went when throughput alone is noisy.
// BENCH_PROFILE=1 runs the service under `node --cpu-prof` and adds a summary of each phase's
// profile, samples inside the timed window only (writes bench/results/ingest-profile.json
// instead of ingest.json). Other knobs: BENCH_SIZE_MIB, BENCH_SEGMENT_MIB (64), BENCH_PART_BYTES,
// BENCH_ENCODE_ROUNDS (3), BENCH_WARM_MIB (48), BENCH_TMPDIR (/dev/shm: dataset and S3 objects,
// about 6 × the dataset at peak), BENCH_SERVICE_NODE_OPTIONS, BENCH_INGESTION_DIST (another build
// of the service, e.g. a candidate change, for A/B runs).
// Writes bench/results/ingest.json (repository root) and prints a summary.
import { execSync, fork } from "node:child_process";
import { createHash, randomBytes, sign } from "node:crypto";
import { createReadStream, existsSync, mkdtempSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { Agent, request, type IncomingHttpHeaders } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { Client } from "minio";

import { generateActorKey, signRequest, type ActorKey } from "@deai/kit";
import {
  benchLogger,
  envInt,
  loadAverage,
  machineBlock,
  machineLine,
  median,
  round as roundTo,
  spawnService,
  startPhase,
  statusMiB,
  stopService,
  writeResult,
  type CpuUse,
  type Pids,
  type ServiceProcess,
} from "@deai/bench";
import { generateNoteKey, IN_TOTO_PAYLOAD_TYPE, pae } from "@deai/proofs";
import { createTestEnv, startS3, type TestEnv, type TestS3 } from "@deai/testkit";

import type * as RsModule from "../dist/coding/reed-solomon.js";
import type * as EncoderModule from "../dist/coding/stripe-encoder.js";
import type * as SessionModule from "../dist/app/session.js";
import { summarizeDir, type ProfileSummary, type Window } from "./profile.js";
import type { HelperReply, HelperRequest, ServerInfo } from "./s3-helper.js";

const here = dirname(fileURLToPath(import.meta.url));
// Compiled to services/ingestion/bench/dist/: the service build is ../../dist.
// BENCH_INGESTION_DIST: another build of the service (e.g. a candidate change) to compare against.
const ingestionDist = process.env.BENCH_INGESTION_DIST ? resolve(process.env.BENCH_INGESTION_DIST) : resolve(here, "../../dist");
const ingestionMain = resolve(ingestionDist, "main.js");
const ledgerMain = resolve(here, "../../../ledger/dist/main.js");
const repoRoot = resolve(here, "../../../..");
const { StripeCodec } = (await import(`${ingestionDist}/coding/reed-solomon.js`)) as typeof RsModule;
const { allocParity, allocStripe, closeStripeEncoder, encodeStripe, leafHashWorkers, releaseStripeBuffer } = (await import(
  `${ingestionDist}/coding/stripe-encoder.js`
)) as typeof EncoderModule;

const QUICK = process.env.BENCH_QUICK === "1";
const PROFILE = process.env.BENCH_PROFILE === "1";
const int = envInt;
const MiB = 2 ** 20;
const K = 8;
const M = 4;
const N = K + M;
const S = 256 * 1024;
const STRIPE = K * S;
const SIZE = int("BENCH_SIZE_MIB", QUICK ? 128 : 1024) * MiB;
const SEGMENT = int("BENCH_SEGMENT_MIB", 64) * MiB;
/** The service's multipart part size per slot (INGESTION_PART_BYTES, its default): also the baseline's. */
const PART_BYTES = int("BENCH_PART_BYTES", 5 * MiB);
const ENCODE_ROUNDS = int("BENCH_ENCODE_ROUNDS", 3);
const ENCODE_IN_FLIGHT = 4;
/** Warm-up upload (and S3 PUT) before the timed ones: a prefix of the dataset, one segment. */
const WARM_BYTES = Math.min(SEGMENT, int("BENCH_WARM_MIB", 48) * MiB);
/** Warm-up ranged read before each timed download. */
const WARM_READ_BYTES = 8 * MiB;
/** "helper": the S3 servers in a process of their own (default); "inprocess": in this process. */
const S3_MODE = process.env.BENCH_S3 === "inprocess" ? "inprocess" : "helper";
const WORK_DIR = process.env.BENCH_TMPDIR ?? (existsSync("/dev/shm") ? "/dev/shm" : tmpdir());
const ORIGIN = "bench.ledger.deai.dev/log";
const GOAL_ENCODE = 0.8;
const GOAL_INGEST = 0.8;
const GOAL_RSS_MIB = 300;
const GOAL_RECONSTRUCT = 0.5;

const round = (n: number, d = 1): number => roundTo(n, d);
const mibps = (bytes: number, ms: number): number => bytes / MiB / (ms / 1000);
const t0Bench = performance.now();
const log = benchLogger("ingest");

// ---- the dataset ----

interface Dataset {
  file: string;
  size: number;
  sha256: string;
  /** Content-Digest (RFC 9530) of each SEGMENT-byte segment. */
  segmentDigests: string[];
  ms: number;
}

async function generate(file: string, size: number, segment: number): Promise<Dataset> {
  const t0 = performance.now();
  const BLOCK = MiB;
  if (segment % BLOCK !== 0) throw new Error("BENCH_SEGMENT_MIB must be a whole number of MiB");
  const pool = randomBytes(16 * MiB);
  const fh = await open(file, "w");
  const whole = createHash("sha256");
  let seg = createHash("sha256");
  const segmentDigests: string[] = [];
  const buf = Buffer.allocUnsafe(8 * MiB);
  try {
    for (let at = 0; at < size;) {
      const n = Math.min(buf.length, size - at);
      for (let off = 0; off < n; off += BLOCK) {
        const len = Math.min(BLOCK, n - off);
        const b = (at + off) / BLOCK;
        const src = ((b * 7) % 16) * BLOCK;
        pool.copy(buf, off, src, src + len);
        for (let j = 0; j + 8 <= len; j += 4096) {
          buf.writeUInt32LE(b, off + j);
          buf.writeUInt32LE(j, off + j + 4);
        }
        const block = buf.subarray(off, off + len);
        whole.update(block);
        seg.update(block);
        const end = at + off + len;
        if (end % segment === 0 || end === size) {
          segmentDigests.push(`sha-256=:${seg.digest("base64")}:`);
          seg = createHash("sha256");
        }
      }
      await fh.write(buf, 0, n, at);
      at += n;
    }
  } finally {
    await fh.close();
  }
  return { file, size, sha256: whole.digest("hex"), segmentDigests, ms: performance.now() - t0 };
}

/** The first `bytes` of the dataset as a dataset of its own (one segment): the warm-up upload. */
async function prefixOf(ds: Dataset, bytes: number): Promise<Dataset> {
  const size = Math.min(bytes, ds.size, SEGMENT);
  const buf = Buffer.allocUnsafe(size);
  const fh = await open(ds.file, "r");
  try {
    await fh.read(buf, 0, size, 0);
  } finally {
    await fh.close();
  }
  const h = createHash("sha256").update(buf).digest();
  return { file: ds.file, size, sha256: h.toString("hex"), segmentDigests: [`sha-256=:${h.toString("base64")}:`], ms: 0 };
}

/** Resets a process's VmHWM to its current RSS (Linux ≥ 4.0; best effort). */
function resetPeakRss(pid: number | undefined): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

// ---- 1. encode vs SHA-256 ----

interface EncodeResult {
  encodeMiBps: number;
  encodeOneInFlightMiBps: number;
  baselineSha256MiBps: number;
  rounds: { sha256: number[]; encode: number[]; encodeOneInFlight: number[] };
  bytesPerRound: number;
  poolStripes: number;
  hashWorkers: number;
}

async function encodeBench(ds: Dataset): Promise<EncodeResult> {
  const codec = new StripeCodec(K, M, S);
  const stripes = Math.ceil(ds.size / STRIPE);
  const total = stripes * STRIPE;
  // The dataset's first stripes, in the buffers the upload path encodes from (allocStripe).
  const poolStripes = Math.min(32, stripes);
  const pool: Buffer[] = [];
  const fh = await open(ds.file, "r");
  try {
    for (let i = 0; i < poolStripes; i++) {
      const b = allocStripe(codec);
      const { bytesRead } = await fh.read(b, 0, STRIPE, i * STRIPE);
      b.fill(0, bytesRead);
      pool.push(b);
    }
  } finally {
    await fh.close();
  }
  const sha = (): number => {
    const t0 = performance.now();
    const h = createHash("sha256");
    for (let i = 0; i < stripes; i++) h.update(pool[i % pool.length]!);
    h.digest();
    return mibps(total, performance.now() - t0);
  };
  const encode = async (inFlight: number): Promise<number> => {
    const t0 = performance.now();
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < stripes) {
        const i = next++;
        const parity = allocParity(codec);
        await encodeStripe(codec, pool[i % pool.length]!, parity);
        releaseStripeBuffer(parity);
      }
    };
    await Promise.all(Array.from({ length: inFlight }, lane));
    return mibps(total, performance.now() - t0);
  };
  await encode(2); // warm up (workers, JIT)
  sha();
  const rounds = { sha256: [] as number[], encode: [] as number[], encodeOneInFlight: [] as number[] };
  for (let r = 0; r < ENCODE_ROUNDS; r++) {
    rounds.sha256.push(round(sha()));
    rounds.encode.push(round(await encode(ENCODE_IN_FLIGHT)));
    rounds.encodeOneInFlight.push(round(await encode(1)));
  }
  const hashWorkers = leafHashWorkers();
  await closeStripeEncoder();
  for (const b of pool) releaseStripeBuffer(b);
  return {
    encodeMiBps: round(median(rounds.encode)),
    encodeOneInFlightMiBps: round(median(rounds.encodeOneInFlight)),
    baselineSha256MiBps: round(median(rounds.sha256)),
    rounds,
    bytesPerRound: total,
    poolStripes,
    hashWorkers,
  };
}

/**
 * The upload pipeline alone (src/app/session.ts UploadSession: stripe buffer → encodeStripe → part
 * buffers, contentDigest), fed the dataset in 64 KiB chunks as an HTTP body arrives, with a store
 * that drops the parts: what the service spends per MiB before any network or database.
 */
async function sessionBench(ds: Dataset): Promise<{ MiBps: number; cpuMsPerMiB: number; bytes: number } | { error: string }> {
  try {
    const { UploadSession } = (await import(`${ingestionDist}/app/session.js`)) as typeof SessionModule;
    const codec = new StripeCodec(K, M, S);
    const bytes = Math.min(ds.size, 256 * MiB);
    const chunks: Buffer[] = [];
    const fh = await open(ds.file, "r");
    try {
      for (let at = 0; at < Math.min(bytes, 16 * MiB); at += 64 * 1024) {
        const b = Buffer.allocUnsafe(64 * 1024);
        await fh.read(b, 0, b.length, at);
        chunks.push(b);
      }
    } finally {
      await fh.close();
    }
    const run = async (size: number): Promise<{ ms: number; cpu: number }> => {
      const store = { commitGroup: () => new Promise<void>((r) => setImmediate(r)) };
      const session = new UploadSession("bench", codec, Math.ceil(PART_BYTES / S), store, { durableOffset: 0, hashValid: true });
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      for (let at = 0, i = 0; at < size; at += 64 * 1024, i++) await session.write(chunks[i % chunks.length]!);
      await session.finish();
      const c = process.cpuUsage(c0);
      return { ms: performance.now() - t0, cpu: (c.user + c.system) / 1000 };
    };
    await run(Math.min(bytes, 48 * MiB)); // warm up
    const r = await run(bytes);
    await closeStripeEncoder();
    return { MiBps: round(mibps(bytes, r.ms)), cpuMsPerMiB: round(r.cpu / (bytes / MiB), 2), bytes };
  } catch (e) {
    return { error: String(e) };
  }
}

// ---- the S3 servers ----

interface Fleet {
  readonly mode: string;
  readonly servers: ServerInfo[];
  /** The process serving them (this one in "inprocess" mode). */
  readonly pid: number | undefined;
  stop(i: number): Promise<void>;
  start(i: number): Promise<void>;
  destroy(): Promise<void>;
}

async function inProcessFleet(n: number): Promise<Fleet> {
  const servers: TestS3[] = await Promise.all(Array.from({ length: n }, () => startS3({ buckets: ["shards"] })));
  return {
    mode: "inprocess",
    servers: servers.map((s) => ({ endpoint: s.endpoint, accessKey: s.accessKey, secretKey: s.secretKey, region: s.region })),
    pid: process.pid,
    stop: (i) => servers[i]!.stop(),
    start: (i) => servers[i]!.start(),
    destroy: async () => void (await Promise.all(servers.map((s) => s.destroy()))),
  };
}

async function helperFleet(n: number, dir: string): Promise<Fleet> {
  const child = fork(resolve(here, "s3-helper.js"), [String(n)], {
    execArgv: ["--openssl-legacy-provider"],
    env: { ...process.env, TMPDIR: dir },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const waiting = new Map<number, { ok: () => void; fail: (e: Error) => void }>();
  let nextId = 0;
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const servers = await new Promise<ServerInfo[]>((ok, fail) => {
    child.once("exit", (code) => {
      fail(new Error(`the S3 helper exited with ${code}`));
      for (const w of waiting.values()) w.fail(new Error(`the S3 helper exited with ${code}`));
    });
    child.on("message", (m: HelperReply) => {
      if (m.type === "ready") return ok(m.servers);
      const w = waiting.get(m.id);
      waiting.delete(m.id);
      if (m.error) w?.fail(new Error(m.error));
      else w?.ok();
    });
  });
  const call = (req: HelperRequest): Promise<void> =>
    new Promise((ok, fail) => {
      waiting.set(req.id, { ok, fail });
      child.send(req);
    });
  return {
    mode: "helper",
    servers,
    pid: child.pid,
    stop: (index) => call({ id: nextId++, op: "stop", index }),
    start: (index) => call({ id: nextId++, op: "start", index }),
    destroy: async () => {
      if (child.exitCode === null && child.connected) await call({ id: nextId++, op: "destroy" }).catch(() => undefined);
      await exited;
    },
  };
}

function minioClient(s: ServerInfo): Client {
  const u = new URL(s.endpoint);
  return new Client({
    endPoint: u.hostname,
    port: Number(u.port),
    useSSL: false,
    accessKey: s.accessKey,
    secretKey: s.secretKey,
    region: s.region,
    pathStyle: true,
  });
}

// ---- 2. baseline: raw multipart PUTs ----

interface PutResult {
  ms: number;
  MiBps: number;
  cpu: CpuUse;
}

async function baselinePut(fleet: Fleet, ds: Dataset, tag: string, pids: Pids, size = ds.size): Promise<PutResult> {
  const slice = Math.ceil(size / fleet.servers.length);
  const clients = fleet.servers.map(minioClient);
  const key = (i: number): string => `baseline/${tag}/slice-${String(i).padStart(3, "0")}`;
  const phase = startPhase(pids);
  await Promise.all(
    clients.map(async (c, i) => {
      const start = i * slice;
      const end = Math.min(size, start + slice);
      if (start >= end) return;
      const uploadId = await c.initiateNewMultipartUpload("shards", key(i), { "Content-Type": "application/octet-stream" });
      const fh = await open(ds.file, "r");
      const buf = Buffer.allocUnsafe(PART_BYTES);
      const etags: { part: number; etag: string }[] = [];
      try {
        for (let at = start, part = 1; at < end; at += PART_BYTES, part++) {
          const len = Math.min(PART_BYTES, end - at);
          await fh.read(buf, 0, len, at);
          const r = await c.uploadPart(
            { bucketName: "shards", objectName: key(i), uploadID: uploadId, partNumber: part, headers: { "Content-Length": len } },
            buf.subarray(0, len),
          );
          etags.push({ part, etag: r.etag });
        }
      } finally {
        await fh.close();
      }
      await c.completeMultipartUpload("shards", key(i), uploadId, etags);
    }),
  );
  const { ms, cpu } = phase.end();
  await Promise.all(clients.map((c, i) => c.removeObject("shards", key(i))));
  return { ms: round(ms), MiBps: round(mibps(size, ms)), cpu };
}

// ---- HTTP to the service ----

let agent = new Agent({ keepAlive: true, maxSockets: 4 });

interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

function http(port: number, method: string, path: string, headers: Record<string, string>, body?: Buffer): Promise<HttpResult> {
  return new Promise((ok, fail) => {
    const req = request({ host: "127.0.0.1", port, method, path, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => ok({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", fail);
    });
    req.on("error", fail);
    req.end(body);
  });
}

/** A parsed JSON response body (as test/harness.ts). */
type Json = ReturnType<typeof JSON.parse>;

/** A JSON call; mutating ones are RFC 9421 signed by `key`. */
async function call(port: number, key: ActorKey, method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> {
  const bytes = body === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(body));
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (method !== "GET")
    Object.assign(headers, signRequest({ key, method, authority: `127.0.0.1:${port}`, path, body: bytes }), {
      "content-length": String(bytes.length),
    });
  const r = await http(port, method, path, headers, method === "GET" ? undefined : bytes);
  const text = r.body.toString("utf8");
  let json: Json = text;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: r.status, json };
}

/** PUTs [offset, offset + length) of the file, streamed, with a signed Content-Digest. */
function putSegment(port: number, path: string, headers: Record<string, string>, file: string, offset: number, length: number) {
  return new Promise<{ status: number; text: string }>((ok, fail) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        method: "PUT",
        path,
        agent,
        headers: { ...headers, "content-type": "application/octet-stream", "content-length": String(length) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => ok({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", fail);
      },
    );
    req.on("error", fail);
    const body = createReadStream(file, { start: offset, end: offset + length - 1, highWaterMark: MiB });
    body.on("error", (e) => req.destroy(e));
    body.pipe(req);
  });
}

/** DSSE envelope (proto JSON form) over the statement (base64), signed by `key` (as test/harness.ts). */
function signManifest(statementB64: string, key: ActorKey) {
  const payload = Buffer.from(statementB64, "base64");
  return {
    payloadType: IN_TOTO_PAYLOAD_TYPE,
    payload: statementB64,
    signatures: [{ keyid: key.id, sig: sign(null, pae(IN_TOTO_PAYLOAD_TYPE, payload), key.privateKey).toString("base64") }],
  };
}

// ---- the services ----

let profileRoot = "";

function startIngestion(env: TestEnv, fleet: Fleet, ledgerUrl: string, serviceKey: string, phase: string): Promise<ServiceProcess> {
  // e.g. BENCH_SERVICE_NODE_OPTIONS="--max-old-space-size=256" (NODE_OPTIONS of the service process).
  const nodeOptions = process.env.BENCH_SERVICE_NODE_OPTIONS ?? "";
  return spawnService(
    ingestionMain,
    env.vars({
      INGESTION_PROVIDERS: JSON.stringify(
        fleet.servers.map((s, i) => ({
          id: `p${i}`,
          endpoint: s.endpoint,
          bucket: "shards",
          accessKey: s.accessKey,
          secretKey: s.secretKey,
          region: s.region,
        })),
      ),
      INGESTION_LEDGER_URL: ledgerUrl,
      INGESTION_SERVICE_KEY: serviceKey,
      INGESTION_PART_BYTES: String(PART_BYTES),
      ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}),
      LOG_LEVEL: "info",
    }),
    // --cpu-prof is not allowed in NODE_OPTIONS: profiling flags go on the command line.
    { timeoutMs: 60_000, execArgv: PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${join(profileRoot, phase)}`] : [] },
  );
}

/** Stops a service, with fresh client sockets for the next one. */
async function stopPhaseService(svc: ServiceProcess): Promise<void> {
  agent.destroy();
  agent = new Agent({ keepAlive: true, maxSockets: 4 });
  await stopService(svc);
}

// ---- 3. ingest ----

interface IngestResult {
  ms: number;
  MiBps: number;
  datasetId: string;
  placements: { slot: number; providerId: string }[];
  phasesMs: { create: number; upload: number; finish: number; anchor: number };
  segments: number;
  putMs: { min: number; median: number; max: number };
  rss: { vmHwmMiB: number; sampledPeakMiB: number };
  cpu: CpuUse;
}

async function ingest(port: number, key: ActorKey, ds: Dataset, pids: Pids): Promise<IngestResult> {
  const phase = startPhase(pids, { rssOf: pids.service });
  const t0 = phase.t0;
  const created = await call(port, key, "POST", "/v1/uploads", {
    spec: { name: "bench-ingest", k: K, m: M, shardSize: S, size: String(ds.size), mediaType: "application/octet-stream" },
  });
  if (created.status !== 200) throw new Error(`create: ${created.status} ${JSON.stringify(created.json)}`);
  const uploadId = created.json.upload.uploadId as string;
  const tCreated = performance.now();
  const puts: number[] = [];
  for (let i = 0, at = 0; at < ds.size; i++, at += SEGMENT) {
    const len = Math.min(SEGMENT, ds.size - at);
    const path = `/v1/uploads/${uploadId}/data/${at}`;
    const s = performance.now();
    const r = await putSegment(
      port,
      path,
      { ...signRequest({ key, method: "PUT", authority: `127.0.0.1:${port}`, path, digest: ds.segmentDigests[i]! }) },
      ds.file,
      at,
      len,
    );
    if (r.status !== 200) throw new Error(`PUT at ${at}: ${r.status} ${r.text.slice(0, 500)}`);
    puts.push(performance.now() - s);
  }
  const tUploaded = performance.now();
  const fin = await call(port, key, "POST", `/v1/uploads/${uploadId}/complete`, {});
  if (fin.status !== 200) throw new Error(`complete: ${fin.status} ${JSON.stringify(fin.json)}`);
  const tFinished = performance.now();
  const envelope = signManifest(fin.json.upload.manifestStatement as string, key);
  const done = await call(port, key, "POST", `/v1/uploads/${uploadId}/complete`, { manifestEnvelope: envelope });
  const { ms, cpu, rss: r } = phase.end();
  if (done.status !== 200) throw new Error(`anchor: ${done.status} ${JSON.stringify(done.json)}`);
  if (done.json.upload?.state !== "UPLOAD_STATE_COMPLETED") throw new Error(`not anchored: ${JSON.stringify(done.json).slice(0, 500)}`);
  const digest = done.json.manifest?.contentDigest?.hex as string | undefined;
  if (digest !== ds.sha256) throw new Error(`manifest contentDigest ${digest} is not the dataset's ${ds.sha256}`);
  const sorted = [...puts].sort((a, b) => a - b);
  return {
    ms: round(ms),
    MiBps: round(mibps(ds.size, ms)),
    datasetId: done.json.datasetId as string,
    placements: (done.json.manifest.placements as { slot?: number; providerId: string }[]).map((p) => ({
      slot: p.slot ?? 0,
      providerId: p.providerId,
    })),
    phasesMs: {
      create: round(tCreated - t0),
      upload: round(tUploaded - tCreated),
      finish: round(tFinished - tUploaded),
      anchor: round(t0 + ms - tFinished),
    },
    segments: puts.length,
    putMs: { min: round(sorted[0]!), median: round(median(sorted)), max: round(sorted[sorted.length - 1]!) },
    rss: r!,
    cpu,
  };
}

// ---- 4./5. download ----

interface DownloadResult {
  ms: number;
  MiBps: number;
  firstByteMs: number;
  rss: { vmHwmMiB: number; sampledPeakMiB: number };
  cpu: CpuUse;
}

async function download(port: number, ds: Dataset, datasetId: string, pids: Pids): Promise<DownloadResult> {
  const phase = startPhase(pids, { rssOf: pids.service });
  const t0 = phase.t0;
  let firstByte = 0;
  const got = await new Promise<{ status: number; bytes: number; sha256: string; headerDigest: string; text: string }>((ok, fail) => {
    const req = request({ host: "127.0.0.1", port, method: "GET", path: `/v1/datasets/${datasetId}/content`, agent }, (res) => {
      const hash = createHash("sha256");
      let bytes = 0;
      const head: Buffer[] = [];
      res.on("data", (c: Buffer) => {
        if (bytes === 0) firstByte = performance.now();
        if (res.statusCode !== 200 && bytes < 4096) head.push(c);
        hash.update(c);
        bytes += c.length;
      });
      res.on("end", () =>
        ok({
          status: res.statusCode ?? 0,
          bytes,
          sha256: hash.digest("hex"),
          headerDigest: String(res.headers["x-deai-content-digest"] ?? ""),
          text: Buffer.concat(head).toString("utf8"),
        }),
      );
      // A failed verification cuts the connection: the response errors instead of ending.
      res.on("error", fail);
      res.on("aborted", () => fail(new Error("download cut by the service (verification failed?)")));
    });
    req.on("error", fail);
    req.end();
  });
  const { ms, cpu, rss: r } = phase.end();
  if (got.status !== 200) throw new Error(`download: ${got.status} ${got.text.slice(0, 500)}`);
  if (got.bytes !== ds.size || got.sha256 !== ds.sha256 || got.headerDigest !== `sha256:${ds.sha256}`) {
    throw new Error(
      `download: got ${got.bytes} bytes hashing to ${got.sha256} (header ${got.headerDigest}), expected ${ds.size} / ${ds.sha256}`,
    );
  }
  return { ms: round(ms), MiBps: round(mibps(ds.size, ms)), firstByteMs: round(firstByte - t0), rss: r!, cpu };
}

/** A ranged read of the first `bytes` (not timed): warms a fresh service process and its leaf-table cache. */
async function warmRead(port: number, datasetId: string, bytes: number): Promise<void> {
  const r = await http(port, "GET", `/v1/datasets/${datasetId}/content`, { range: `bytes=0-${bytes - 1}` });
  if (r.status !== 206 || r.body.length !== bytes) throw new Error(`warm-up read: ${r.status}, ${r.body.length} bytes`);
}

// ---- main ----

/** Monotonic clock in µs (the clock of V8's profile timestamps). */
const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);
/** The timed window of each profiled phase. */
const windows = new Map<string, Window>();

function profileSummary(phase: string): { main?: ProfileSummary; workers: { file: string; busyMs: number }[] } | undefined {
  if (!PROFILE) return undefined;
  const all = summarizeDir(join(profileRoot, phase), 25, windows.get(phase));
  return { main: all[0], workers: all.slice(1).map((w) => ({ file: w.file, busyMs: w.busyMs })) };
}

function gitRevision(): string {
  try {
    return execSync("git rev-parse --short HEAD", { cwd: repoRoot, stdio: ["ignore", "pipe", "ignore"] })
      .toString()
      .trim();
  } catch {
    return "unknown";
  }
}

async function main(): Promise<void> {
  const loadStart = loadAverage();
  const startedAt = new Date();
  log(
    `${QUICK ? "QUICK" : "FULL"} run: ${SIZE / MiB} MiB, k=${K} m=${M} S=${S / 1024} KiB, ${N} S3 servers (${S3_MODE}), segments of ${SEGMENT / MiB} MiB, work dir ${WORK_DIR}; load ${loadStart.map((l) => l.toFixed(2)).join(" ")}`,
  );
  const free = statfsSync(WORK_DIR);
  const need = SIZE * 6;
  if (free.bavail * free.bsize < need)
    log(`warning: ${WORK_DIR} has ${Math.round((free.bavail * free.bsize) / MiB)} MiB free; the run needs about ${need / MiB} MiB`);
  const workDir = mkdtempSync(join(WORK_DIR, "deai-bench-ingest-"));
  log(`dataset and S3 objects in ${workDir} (deleted at the end)`);
  if (PROFILE) profileRoot = mkdtempSync(join(tmpdir(), "deai-bench-ingest-prof-"));
  const owner = generateActorKey();

  const ds = await generate(join(workDir, "dataset.bin"), SIZE, SEGMENT);
  log(`generated ${SIZE / MiB} MiB dataset (sha256 ${ds.sha256.slice(0, 16)}…) in ${Math.round(ds.ms)} ms`);

  const enc = await encodeBench(ds);
  log(
    `encode: ${enc.encodeMiBps} MiB/s (${ENCODE_IN_FLIGHT} stripes in flight; 1 in flight ${enc.encodeOneInFlightMiBps}), SHA-256 ${enc.baselineSha256MiBps} MiB/s → ratio ${(enc.encodeMiBps / enc.baselineSha256MiBps).toFixed(2)}`,
  );

  const pipeline = await sessionBench(ds);
  log(`upload pipeline alone (UploadSession, no network): ${JSON.stringify(pipeline)}`);

  let env: TestEnv | undefined;
  let fleet: Fleet | undefined;
  let ledger: ServiceProcess | undefined;
  let svc: ServiceProcess | undefined;
  try {
    env = await createTestEnv("benchingest");
    fleet = S3_MODE === "helper" ? await helperFleet(N, workDir) : await inProcessFleet(N);
    const { signerKey } = generateNoteKey(ORIGIN);
    ledger = await spawnService(
      ledgerMain,
      env.vars({ LEDGER_ORIGIN: ORIGIN, LEDGER_SIGNING_KEY: signerKey, LEDGER_CHECKPOINT_INTERVAL_MS: "100" }),
      { timeoutMs: 60_000 },
    );
    const ledgerUrl = `http://127.0.0.1:${ledger.port}`;
    const serviceKey = randomBytes(32).toString("base64url");
    const basePids = { service: undefined as number | undefined, s3Servers: fleet.pid, ledger: ledger.proc.pid };
    log(`ledger on ${ledger.port}; ${N} S3 servers up (${fleet.mode}, pid ${fleet.pid})`);

    // Warm-ups (not timed): the S3 servers' and the service's code paths, with a prefix of the dataset.
    await baselinePut(fleet, ds, "warm", basePids, Math.min(ds.size, WARM_BYTES));
    const put1 = await baselinePut(fleet, ds, "a", basePids);
    log(`baseline S3 PUT #1: ${put1.MiBps} MiB/s (${put1.ms} ms)`);

    svc = await startIngestion(env, fleet, ledgerUrl, serviceKey, "ingest");
    const warm = await ingest(svc.port, owner, await prefixOf(ds, WARM_BYTES), { ...basePids, service: svc.proc.pid });
    const hwmReset = resetPeakRss(svc.proc.pid);
    log(
      `service pid ${svc.proc.pid}: warm-up upload of ${WARM_BYTES / MiB} MiB at ${warm.MiBps} MiB/s, RSS after it ${round(statusMiB(svc.proc.pid, "VmRSS"))} MiB`,
    );
    let from = nowUs();
    const ing = await ingest(svc.port, owner, ds, { ...basePids, service: svc.proc.pid });
    windows.set("ingest", { fromUs: from, toUs: nowUs() });
    await stopPhaseService(svc);
    log(
      `ingest: ${ing.MiBps} MiB/s (${ing.ms} ms: create ${ing.phasesMs.create}, upload ${ing.phasesMs.upload}, finish ${ing.phasesMs.finish}, anchor ${ing.phasesMs.anchor}); peak RSS ${ing.rss.vmHwmMiB} MiB`,
    );

    const put2 = await baselinePut(fleet, ds, "b", basePids);
    log(`baseline S3 PUT #2: ${put2.MiBps} MiB/s (${put2.ms} ms)`);
    const baselineS3PutMiBps = round((put1.MiBps + put2.MiBps) / 2);

    svc = await startIngestion(env, fleet, ledgerUrl, serviceKey, "download");
    await warmRead(svc.port, ing.datasetId, WARM_READ_BYTES);
    from = nowUs();
    const dl = await download(svc.port, ds, ing.datasetId, { ...basePids, service: svc.proc.pid });
    windows.set("download", { fromUs: from, toUs: nowUs() });
    await stopPhaseService(svc);
    log(`download: ${dl.MiBps} MiB/s (${dl.ms} ms), peak RSS ${dl.rss.vmHwmMiB} MiB`);

    // Stop the providers of the data slots 0..m-1: every stripe then needs the parity shards.
    const stoppedSlots = Array.from({ length: M }, (_, i) => i);
    const stopped = stoppedSlots.map((slot) => {
      const p = ing.placements.find((x) => x.slot === slot);
      if (!p) throw new Error(`no placement for slot ${slot}`);
      return Number(p.providerId.slice(1));
    });
    for (const i of stopped) await fleet.stop(i);
    svc = await startIngestion(env, fleet, ledgerUrl, serviceKey, "reconstruct");
    await warmRead(svc.port, ing.datasetId, WARM_READ_BYTES);
    from = nowUs();
    const rc = await download(svc.port, ds, ing.datasetId, { ...basePids, service: svc.proc.pid });
    windows.set("reconstruct", { fromUs: from, toUs: nowUs() });
    await stopPhaseService(svc);
    for (const i of stopped) await fleet.start(i);
    log(
      `reconstruct (slots ${stoppedSlots.join(",")} down: providers ${stopped.map((i) => `p${i}`).join(",")}): ${rc.MiBps} MiB/s (${rc.ms} ms)`,
    );

    const machine = machineBlock(loadStart);
    const ratio = (a: number, b: number): number => round(a / b, 3);
    const goals = {
      encode: {
        goal: `encodeMiBps >= ${GOAL_ENCODE} x baselineSha256MiBps`,
        measured: enc.encodeMiBps,
        baseline: enc.baselineSha256MiBps,
        ratio: ratio(enc.encodeMiBps, enc.baselineSha256MiBps),
        met: enc.encodeMiBps >= GOAL_ENCODE * enc.baselineSha256MiBps,
      },
      ingest: {
        goal: `ingestMiBps >= ${GOAL_INGEST} x baselineS3PutMiBps`,
        measured: ing.MiBps,
        baseline: baselineS3PutMiBps,
        ratio: ratio(ing.MiBps, baselineS3PutMiBps),
        met: ing.MiBps >= GOAL_INGEST * baselineS3PutMiBps,
      },
      peakRss: {
        goal: `peakRssMiB < ${GOAL_RSS_MIB}`,
        measured: ing.rss.vmHwmMiB,
        ratio: ratio(ing.rss.vmHwmMiB, GOAL_RSS_MIB),
        met: ing.rss.vmHwmMiB < GOAL_RSS_MIB,
      },
      reconstruct: {
        goal: `reconstructMiBps >= ${GOAL_RECONSTRUCT} x downloadMiBps`,
        measured: rc.MiBps,
        baseline: dl.MiBps,
        ratio: ratio(rc.MiBps, dl.MiBps),
        met: rc.MiBps >= GOAL_RECONSTRUCT * dl.MiBps,
      },
    };
    const allMet = Object.values(goals).every((g) => g.met);
    const perMiB = (c: CpuUse, bytes: number) =>
      Object.fromEntries(Object.entries(c.ms).map(([k, v]) => [k, Number.isFinite(v) ? round(v / (bytes / MiB), 2) : null]));
    // CPU ms per dataset MiB of the processes doing the work (service + S3 servers + client): a
    // machine shared with other jobs changes throughput far more than it changes this.
    const workCpu = (c: CpuUse): number => ((c.ms.service || 0) + (c.ms.s3Servers || 0) + c.ms.bench) / (ds.size / MiB);
    const baselineCpuPerMiB = (workCpu(put1.cpu) + workCpu(put2.cpu)) / 2;
    const result = {
      benchmark: "ingestion",
      quick: QUICK,
      profiled: PROFILE,
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      durationS: round((performance.now() - t0Bench) / 1000),
      ingestMiBps: ing.MiBps,
      encodeMiBps: enc.encodeMiBps,
      baselineSha256MiBps: enc.baselineSha256MiBps,
      baselineS3PutMiBps,
      peakRssMiB: ing.rss.vmHwmMiB,
      downloadMiBps: dl.MiBps,
      reconstructMiBps: rc.MiBps,
      ratios: {
        encodeOverSha256: goals.encode.ratio,
        ingestOverS3Put: goals.ingest.ratio,
        peakRssOverLimit: goals.peakRss.ratio,
        reconstructOverDownload: goals.reconstruct.ratio,
        // Not goals, context: the same comparisons by CPU cost (baseline CPU/MiB ÷ measured CPU/MiB,
        // service + S3 servers + client), and ingest counted in bytes stored (n/k × dataset bytes).
        ingestOverS3PutByCpu: round(baselineCpuPerMiB / workCpu(ing.cpu), 3),
        reconstructOverDownloadByCpu: round(workCpu(dl.cpu) / workCpu(rc.cpu), 3),
        ingestStoredBytesOverS3Put: round((ing.MiBps * N) / K / baselineS3PutMiBps, 3),
      },
      goals: { ...goals, met: allMet },
      details: {
        encode: {
          method: `StripeCodec + encodeStripe from services/ingestion/dist (as src/bench/encode-throughput.ts): allocStripe buffers holding the dataset's first ${enc.poolStripes} stripes, cycled to ${enc.bytesPerRound / MiB} MiB per round, ${ENCODE_IN_FLIGHT} stripes in flight, parity into allocParity buffers; baseline node:crypto SHA-256 over the same buffers; ${ENCODE_ROUNDS} interleaved rounds, medians`,
          encodeOneInFlightMiBps: enc.encodeOneInFlightMiBps,
          hashWorkers: enc.hashWorkers,
          rounds: enc.rounds,
        },
        sessionPipeline: {
          method:
            "src/app/session.ts UploadSession alone in the bench process: the dataset's first 16 MiB in 64 KiB chunks, cycled, written as an HTTP body would be (stripe buffer → encodeStripe → part buffers, contentDigest), store drops the parts; CPU ms per MiB = this process (all threads)",
          ...pipeline,
        },
        ingest: {
          method:
            "REST: POST /v1/uploads → PUT /v1/uploads/{id}/data/{offset} per segment (sequential, RFC 9421 signed, Content-Digest, body streamed from the dataset file) → POST complete → owner signs the manifest statement → POST complete with the envelope (ledger append, wait for integration); timed from create to the anchored response",
          ms: ing.ms,
          phasesMs: ing.phasesMs,
          segments: ing.segments,
          putMs: ing.putMs,
          storedBytes: Math.ceil(ds.size / STRIPE) * N * S,
          datasetId: ing.datasetId,
          rss: {
            ...ing.rss,
            note: hwmReset
              ? "VmHWM of the service process, reset (clear_refs 5) after the warm-up upload: the peak during the timed ingest; sampledPeakMiB = highest VmRSS seen every 100 ms"
              : "VmHWM of the service process since start (the reset failed), warm-up upload included",
          },
          warmUp: { bytes: warm.segments ? Math.min(ds.size, WARM_BYTES) : 0, MiBps: warm.MiBps },
          cpuMs: ing.cpu.ms,
          cpuMsPerMiB: perMiB(ing.cpu, ds.size),
          workCpuMsPerMiB: round(workCpu(ing.cpu), 2),
          serviceMainThread: ing.cpu.mainThread.service,
          serviceSystemShare: ing.cpu.systemShare.service,
          machineCoresBusy: ing.cpu.machineCores,
        },
        baselineS3Put: {
          method: `the dataset file split into ${N} contiguous slices, one multipart object per S3 server, all servers in parallel, one ${PART_BYTES / MiB} MiB part in flight per server (the service's part size and concurrency), same minio client and calls as the service (initiateNewMultipartUpload, uploadPart, completeMultipartUpload); dataset MiB per second; run before and after the ingest, mean`,
          runs: [put1, put2].map((p) => ({ MiBps: p.MiBps, ms: p.ms, cpuMs: p.cpu.ms, machineCoresBusy: p.cpu.machineCores })),
          cpuMsPerMiB: perMiB(put1.cpu, ds.size),
          workCpuMsPerMiB: round(baselineCpuPerMiB, 2),
          storedBytes: ds.size,
        },
        download: {
          method: `GET /v1/datasets/{id}/content, whole dataset, SHA-256 of the body checked here too; from a freshly started service process, warmed by an untimed ${WARM_READ_BYTES / MiB} MiB ranged read (which also loads its leaf-table cache)`,
          ms: dl.ms,
          firstByteMs: dl.firstByteMs,
          rss: dl.rss,
          cpuMs: dl.cpu.ms,
          cpuMsPerMiB: perMiB(dl.cpu, ds.size),
          workCpuMsPerMiB: round(workCpu(dl.cpu), 2),
          serviceMainThread: dl.cpu.mainThread.service,
          serviceSystemShare: dl.cpu.systemShare.service,
          machineCoresBusy: dl.cpu.machineCores,
        },
        reconstruct: {
          method: `as download, with the S3 servers of data slots ${stoppedSlots.join(", ")} stopped (TestS3.stop()), so every stripe is decoded from the 4 parity shards`,
          stoppedProviders: stopped.map((i) => `p${i}`),
          ms: rc.ms,
          firstByteMs: rc.firstByteMs,
          rss: rc.rss,
          cpuMs: rc.cpu.ms,
          cpuMsPerMiB: perMiB(rc.cpu, ds.size),
          workCpuMsPerMiB: round(workCpu(rc.cpu), 2),
          serviceMainThread: rc.cpu.mainThread.service,
          serviceSystemShare: rc.cpu.systemShare.service,
          machineCoresBusy: rc.cpu.machineCores,
        },
      },
      inputs: {
        datasetMiB: SIZE / MiB,
        dataset: "16 MiB pool of random bytes, every 4 KiB stamped with (1 MiB block index, offset): no repeated 4 KiB, incompressible",
        generateMs: round(ds.ms),
        k: K,
        m: M,
        shardSize: S,
        providers: N,
        partBytes: PART_BYTES,
        segmentMiB: SEGMENT / MiB,
        s3Servers:
          S3_MODE === "helper"
            ? "12 s3rver servers (startS3, @deai/testkit) in one helper process of their own (bench/s3-helper.ts), so the baseline client (this process) and the service each talk to servers that share nothing with them"
            : "12 s3rver servers (startS3) in the bench process",
        s3DataDir: WORK_DIR,
        encodeRounds: ENCODE_ROUNDS,
        encodeStripesInFlight: ENCODE_IN_FLIGHT,
        ledgerCheckpointIntervalMs: 100,
        serviceDbPoolSize: 5,
        transport: "HTTP/1.1 keep-alive (node:http) to the service's REST routes",
        revision: gitRevision(),
        serviceBuild: ingestionDist,
      },
      machine,
      ...(PROFILE
        ? {
            profile: {
              note: "node --cpu-prof on the service process (one process per phase), samples inside the timed window only (no start-up, no warm-up); main = the service's main thread, workers = leaf-hash threads (busy ms); throughput numbers of a profiled run are lower than unprofiled ones",
              dir: profileRoot,
              ingest: profileSummary("ingest"),
              download: profileSummary("download"),
              reconstruct: profileSummary("reconstruct"),
            },
          }
        : {}),
    };
    const out = writeResult(repoRoot, PROFILE ? "ingest-profile" : "ingest", result);
    const yn = (b: boolean): string => (b ? "MET" : "missed");
    process.stdout.write(
      [
        "",
        `ingestion benchmark (${QUICK ? "quick" : "full"}, ${SIZE / MiB} MiB${PROFILE ? ", PROFILED" : ""}) ${machineLine(machine)}`,
        `  encode          ${enc.encodeMiBps} MiB/s  vs SHA-256 ${enc.baselineSha256MiBps} MiB/s   ratio ${goals.encode.ratio} (goal ≥ ${GOAL_ENCODE}) ${yn(goals.encode.met)}`,
        `  ingest          ${ing.MiBps} MiB/s  vs raw S3 PUT ${baselineS3PutMiBps} MiB/s (${put1.MiBps}, ${put2.MiBps})   ratio ${goals.ingest.ratio} (goal ≥ ${GOAL_INGEST}) ${yn(goals.ingest.met)}`,
        `    phases        create ${ing.phasesMs.create} ms, upload ${ing.phasesMs.upload} ms, finish ${ing.phasesMs.finish} ms, anchor ${ing.phasesMs.anchor} ms`,
        `    CPU ms/MiB    ${JSON.stringify(perMiB(ing.cpu, ds.size))}; service main thread ${Math.round(ing.cpu.mainThread.service!.busy * 100)}% busy, ${Math.round(ing.cpu.systemShare.service! * 100)}% of service CPU in the kernel`,
        `    by CPU        ingest ${round(workCpu(ing.cpu), 1)} vs raw S3 PUT ${round(baselineCpuPerMiB, 1)} ms/MiB (service + S3 servers + client): ratio ${round(baselineCpuPerMiB / workCpu(ing.cpu), 2)}`,
        `  peak RSS        ${ing.rss.vmHwmMiB} MiB (goal < ${GOAL_RSS_MIB}) ${yn(goals.peakRss.met)}`,
        `  download        ${dl.MiBps} MiB/s`,
        `  reconstruct     ${rc.MiBps} MiB/s   ratio ${goals.reconstruct.ratio} (goal ≥ ${GOAL_RECONSTRUCT}) ${yn(goals.reconstruct.met)}`,
        `  wrote ${out}${PROFILE ? `; profiles in ${profileRoot}` : ""}`,
        "",
      ].join("\n"),
    );
  } finally {
    agent.destroy();
    if (svc) await stopService(svc).catch(() => undefined);
    if (ledger && ledger.proc.exitCode === null && ledger.proc.signalCode === null) {
      ledger.kill("SIGTERM");
      await ledger.exited;
    }
    await fleet?.destroy().catch(() => undefined);
    await env?.close().catch(() => undefined);
    try {
      rmSync(workDir, { recursive: true, force: true, maxRetries: 5 });
    } catch (e) {
      log(`warning: could not delete ${workDir} (${(e as Error).message}): delete it by hand`);
    }
  }
}

await main();
