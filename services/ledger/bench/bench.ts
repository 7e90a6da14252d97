// Ledger benchmark (`make bench-ledger`; BENCH_QUICK=1 for a ~1 minute run).
//
// A fresh Postgres database and NATS prefix, the real ledger service (dist/main.js) as a child
// process, then:
//   1. preload: entries up to the target tree size (BENCH_TREE_SIZE) through the service's own
//      append path (verifyEnvelope + sequenceEntries, batches of 5,000) in this process, and
//      the service's integrator checkpoints them; not timed, reported as "preloaded";
//   2. single appends: BENCH_ENTRIES signed DSSE envelopes (generated up front) POSTed to
//      /v1/ledger/entries, each an RFC 9421 signed request, BENCH_CONCURRENCY in flight over
//      keep-alive HTTP/1.1; singleAppendsPerSec = entries / (first request → the first signed
//      checkpoint covering the last entry);
//   2b. batched appends: BENCH_BATCH_ENTRIES more envelopes POSTed to /v1/ledger/entries:batch,
//      BENCH_BATCH_SIZE per signed request, BENCH_BATCH_CONCURRENCY requests in flight; timed
//      the same way (entries, not requests, per second). appendsPerSec (the goal's metric,
//      entries durably sequenced and integrated per second) is this rate;
//   3. proofs: sequential inclusion (random indexes) and consistency proofs against the service,
//      a sample verified against the checkpoint root;
//   4. baseline: single-row INSERTs of comparable rows into a scratch table, same concurrency.
// Writes bench/results/ledger.json (repository root) and prints a summary.
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from "node:crypto";
import { Agent, request } from "node:http";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import pg from "pg";

import { openDatabase, schemaOf, signRequest, type ActorKey } from "@deai/kit";
import {
  benchLogger,
  cpuSince,
  cpuSnapshot,
  envInt as int,
  loadAverage,
  machineBlock,
  machineLine,
  percentile as pct,
  round,
  spawnService,
  stopService,
  waitFor,
  writeResult,
} from "@deai/bench";
import {
  generateNoteKey,
  IN_TOTO_PAYLOAD_TYPE as IN_TOTO,
  pae,
  PredicateTypes,
  statementBytes,
  statementOf,
  verifyConsistency,
  verifyInclusion,
} from "@deai/proofs";
import { createTestEnv } from "@deai/testkit";

import type * as EntriesModule from "../dist/store/entries.js";
import type * as EnvelopeModule from "../dist/domain/envelope.js";
import type * as TreeModule from "../dist/store/tree.js";
import type { LedgerDb } from "../dist/store/tables.js";

const here = dirname(fileURLToPath(import.meta.url));
// Compiled to services/ledger/bench/dist/: the service build is ../../dist.
const ledgerDist = resolve(here, "../../dist");
const repoRoot = resolve(here, "../../../..");
const { entryByIndex, sequenceEntries } = (await import(`${ledgerDist}/store/entries.js`)) as typeof EntriesModule;
const { allCheckpoints } = (await import(`${ledgerDist}/store/tree.js`)) as typeof TreeModule;
const { verifyEnvelope } = (await import(`${ledgerDist}/domain/envelope.js`)) as typeof EnvelopeModule;

const QUICK = process.env.BENCH_QUICK === "1";
const ENTRIES = int("BENCH_ENTRIES", QUICK ? 20_000 : 100_000);
const BATCH_ENTRIES = int("BENCH_BATCH_ENTRIES", QUICK ? 60_000 : 200_000);
const BATCH_SIZE = int("BENCH_BATCH_SIZE", 200);
const BATCH_CONCURRENCY = int("BENCH_BATCH_CONCURRENCY", 8);
const TREE_SIZE = Math.max(ENTRIES + BATCH_ENTRIES, int("BENCH_TREE_SIZE", QUICK ? 100_000 : 1_000_000));
const CONCURRENCY = int("BENCH_CONCURRENCY", 128);
const PROOFS = int("BENCH_PROOFS", QUICK ? 1_000 : 5_000);
const BASELINE_ROWS = int("BENCH_BASELINE_ROWS", QUICK ? 20_000 : 100_000);
const DB_POOL_SIZE = int("BENCH_DB_POOL_SIZE", 20);
const CLIENT_KEYS = Math.min(CONCURRENCY, 64);
const PREDICATE = PredicateTypes.slsaProvenance;
const GOAL_APPENDS = 10_000;
const GOAL_P99_MS = 5;
const GOAL_SIZE = 1_000_000;

interface Key {
  readonly actor: ActorKey;
  readonly privateKey: KeyObject;
}

function newKey(): Key {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const actor: ActorKey = { id: String(publicKey.export({ format: "jwk" }).x), privateKey, publicKey };
  return { actor, privateKey };
}

/** A provenance statement of realistic size (~1 KiB leaf): one subject, two materials. */
function statementPayload(run: string, i: number): Buffer {
  const h = (s: string): string => createHash("sha256").update(s).digest("hex");
  const statement = statementOf(PREDICATE, [{ name: `checkpoint-${i}`, digest: { sha256: h(`${run}/subject/${i}`) } }], {
    buildDefinition: {
      buildType: "https://deai.dev/train/v1",
      externalParameters: { run, step: i },
      resolvedDependencies: [
        { uri: `dataset-${i % 97}`, digest: { sha256: h(`${run}/dataset/${i % 97}`) } },
        { uri: `base-${i % 13}`, digest: { sha256: h(`${run}/base/${i % 13}`) } },
      ],
    },
    runDetails: { builder: { id: "https://deai.dev/trainer" }, metadata: { invocationId: `${run}-${i}` } },
  });
  return Buffer.from(statementBytes(statement));
}

/** The envelope in the contract's JSON form (base64 payload/sig). */
function envelopeJson(key: Key, payload: Buffer): { payloadType: string; payload: string; signatures: { keyid: string; sig: string }[] } {
  return {
    payloadType: IN_TOTO,
    payload: payload.toString("base64"),
    signatures: [{ keyid: key.actor.id, sig: sign(null, pae(IN_TOTO, payload), key.privateKey).toString("base64") }],
  };
}

const log = benchLogger("ledger");

// ---- HTTP client over keep-alive sockets ----
let agent: Agent;
let port = 0;

async function http(
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: Buffer,
): Promise<{ status: number; body: string }> {
  // Reads are retried once on a socket the server closed while idle; appends retry themselves.
  if (method === "GET") return httpOnce(method, path, headers, body).catch(() => httpOnce(method, path, headers, body));
  return httpOnce(method, path, headers, body);
}

function httpOnce(method: string, path: string, headers: Record<string, string>, body?: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolvePromise, reject) => {
    const req = request({ host: "127.0.0.1", port, method, path, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolvePromise({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

async function getJson<T>(path: string): Promise<T> {
  const r = await http("GET", path, {});
  if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${r.body.slice(0, 300)}`);
  return JSON.parse(r.body) as T;
}

interface CheckpointJson {
  checkpoint: { size: string; rootHash: string };
}

async function latestSize(): Promise<{ size: number; root: Buffer }> {
  const res = await http("GET", "/v1/ledger/checkpoint", {});
  // 400 failed_precondition until the service signed its first (empty-tree) checkpoint.
  if (res.status === 400 && res.body.includes("failed_precondition")) return { size: -1, root: Buffer.alloc(0) };
  if (res.status !== 200) throw new Error(`GET /v1/ledger/checkpoint: ${res.status} ${res.body.slice(0, 300)}`);
  const r = JSON.parse(res.body) as CheckpointJson;
  return { size: Number(r.checkpoint.size), root: Buffer.from(r.checkpoint.rootHash, "base64") };
}

async function waitForCheckpoint(size: number, timeoutMs: number, pollMs = 10): Promise<number> {
  return waitFor(
    `a checkpoint covering ${size} entries`,
    async () => ((await latestSize()).size >= size ? performance.now() : undefined),
    timeoutMs,
    pollMs,
  );
}

// ---- phases ----
async function preload(url: string, count: number, run: string): Promise<{ ms: number; preloaded: number }> {
  if (count <= 0) return { ms: 0, preloaded: 0 };
  const database = openDatabase<LedgerDb>({ url, schema: schemaOf("ledger"), poolSize: 2 });
  const keys = Array.from({ length: 16 }, newKey);
  const t0 = performance.now();
  try {
    const BATCH = 5_000;
    for (let done = 0; done < count;) {
      const n = Math.min(BATCH, count - done);
      const batch = [];
      for (let j = 0; j < n; j++) {
        const i = done + j;
        const key = keys[i % keys.length]!;
        const payload = statementPayload(`${run}-pre`, i);
        const v = verifyEnvelope({
          payloadType: IN_TOTO,
          payload,
          signatures: [{ keyid: key.actor.id, sig: sign(null, pae(IN_TOTO, payload), key.privateKey) }],
        });
        batch.push({
          leafHash: v.leafHash,
          leaf: v.leaf,
          predicateType: v.statement.predicateType,
          signers: v.signers,
          subjects: v.statement.subjects.map((d) => `${d.algorithm}:${d.hex}`),
          materials: v.statement.materials.map((d) => `${d.algorithm}:${d.hex}`),
        });
      }
      await sequenceEntries(database.db, batch);
      done += n;
      if (done % 100_000 === 0 || done === count) log(`preloaded ${done}/${count}`);
    }
  } finally {
    await database.close();
  }
  await waitForCheckpoint(count, 600_000, 200);
  return { ms: performance.now() - t0, preloaded: count };
}

interface Req {
  path: string;
  body: Buffer;
  /** Envelopes in the body. */
  entries: number;
  key: Key;
  headers: Record<string, string>;
  created: number;
}

function signAppend(r: Req): void {
  const sig = signRequest({
    key: r.key.actor,
    method: "POST",
    authority: `127.0.0.1:${port}`,
    path: r.path,
    body: r.body,
    nonce: randomBytes(12).toString("base64url"),
  });
  r.created = Date.now();
  r.headers = { "content-type": "application/json", "content-length": String(r.body.length), ...sig };
}

interface AppendStats {
  wallMs: number;
  sequencedMs: number;
  errors: number;
  firstError?: string;
  latP50: number;
  latP99: number;
  prepMs: number;
  retries: number;
  cpuMs: { service: number; client: number; postgres: number };
}

/** Signed requests for `entries` envelopes: single appends, or batches of `batch` (0 = single). */
function appendRequests(run: string, entries: number, batch: number): Req[] {
  const keys = Array.from({ length: CLIENT_KEYS }, newKey);
  const reqs: Req[] = [];
  for (let i = 0; i < entries;) {
    const key = keys[reqs.length % keys.length]!;
    const n = batch === 0 ? 1 : Math.min(batch, entries - i);
    const envs = Array.from({ length: n }, (_, j) => envelopeJson(keys[(i + j) % keys.length]!, statementPayload(run, i + j)));
    const r: Req =
      batch === 0
        ? { path: "/v1/ledger/entries", body: Buffer.from(JSON.stringify({ envelope: envs[0] })), entries: 1, key, headers: {}, created: 0 }
        : {
            path: "/v1/ledger/entries:batch",
            body: Buffer.from(JSON.stringify({ envelopes: envs })),
            entries: n,
            key,
            headers: {},
            created: 0,
          };
    signAppend(r);
    reqs.push(r);
    i += n;
  }
  return reqs;
}

async function appends(
  base: number,
  run: string,
  servicePid: number,
  entries: number,
  batch: number,
  concurrency: number,
): Promise<AppendStats> {
  const t0 = performance.now();
  const reqs = appendRequests(run, entries, batch);
  const prepMs = performance.now() - t0;
  log(`prepared ${entries} signed envelopes in ${reqs.length} signed requests in ${Math.round(prepMs)} ms`);
  // Fresh sockets for the timed phase: idle keep-alive sockets may be closed by the server.
  agent.destroy();
  agent = new Agent({ keepAlive: true, maxSockets: concurrency + 4 });
  let next = 0;
  let errors = 0;
  let retries = 0;
  let firstError: string | undefined;
  let maxIndex = -1;
  const lat: number[] = [];
  const cpu0 = cpuSnapshot({ service: servicePid });
  const start = performance.now();
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= reqs.length) return;
      const r = reqs[i]!;
      // Signatures are valid for 5 minutes: re-sign the rest of a long run at send time.
      if (Date.now() - r.created > 240_000) signAppend(r);
      const s = performance.now();
      let res: { status: number; body: string };
      try {
        res = await http("POST", r.path, r.headers, r.body);
      } catch {
        // A keep-alive socket the server closed as we reused it: resend once, re-signed (fresh
        // nonce); an append is idempotent (a logged envelope comes back as a duplicate).
        retries++;
        signAppend(r);
        res = await http("POST", r.path, r.headers, r.body);
      }
      lat.push(performance.now() - s);
      if (res.status !== 200) {
        errors += r.entries;
        firstError ??= `${res.status} ${res.body.slice(0, 300)}`;
        continue;
      }
      const json = JSON.parse(res.body) as { index?: string; results?: { index?: string }[] };
      for (const x of json.results ?? [json]) {
        const idx = Number(x.index ?? 0);
        if (idx > maxIndex) maxIndex = idx;
      }
      reqs[i] = undefined as unknown as Req;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const sequencedMs = performance.now() - start;
  const end = await waitForCheckpoint(Math.max(base + entries - errors, maxIndex + 1), 120_000, 5);
  const cpu = cpuSince(cpu0);
  const cpuMs = { service: cpu.ms.service!, client: cpu.ms.bench, postgres: cpu.ms.postgres };
  lat.sort((a, b) => a - b);
  return {
    wallMs: end - start,
    sequencedMs,
    errors,
    ...(firstError ? { firstError } : {}),
    latP50: pct(lat, 50),
    latP99: pct(lat, 99),
    prepMs,
    retries,
    cpuMs,
  };
}

interface ProofJson {
  inclusionProof?: string[];
  consistencyProof?: string[];
  treeSize?: string;
}

async function proofs(
  size: number,
): Promise<{ incP50: number; incP99: number; incMax: number; conP50: number; conP99: number; verified: number }> {
  const { root, size: cpSize } = await latestSize();
  if (cpSize !== size) log(`note: latest checkpoint is ${cpSize}, expected ${size}`);
  const database = openDatabase<LedgerDb>({ url: dbUrl, schema: schemaOf("ledger"), poolSize: 1 });
  const inc: number[] = [];
  const con: number[] = [];
  let verified = 0;
  try {
    // Warm-up (connection, JIT), not measured.
    for (let i = 0; i < 50; i++) await getJson(`/v1/ledger/proofs/inclusion?leafIndex=${i}&treeSize=${cpSize}`);
    for (let i = 0; i < PROOFS; i++) {
      const idx = Math.floor(Math.random() * cpSize);
      const s = performance.now();
      const r = await getJson<ProofJson>(`/v1/ledger/proofs/inclusion?leafIndex=${idx}&treeSize=${cpSize}`);
      inc.push(performance.now() - s);
      if (i % 50 === 0) {
        const row = await entryByIndex(database.db, idx);
        if (!row) throw new Error(`entry ${idx} is missing`);
        verifyInclusion(
          idx,
          cpSize,
          row.leaf_hash,
          (r.inclusionProof ?? []).map((p) => Buffer.from(p, "base64")),
          root,
        );
        verified++;
      }
    }
    // Consistency proofs against the latest checkpoint from random earlier sizes.
    for (let i = 0; i < PROOFS; i++) {
      const first = 1 + Math.floor(Math.random() * cpSize);
      const s = performance.now();
      await getJson<ProofJson>(`/v1/ledger/proofs/consistency?first=${first}&second=${cpSize}`);
      con.push(performance.now() - s);
    }
    // One checked consistency proof between two real checkpoints.
    const cps = (await allCheckpoints(database.db)).filter((c) => c.tree_size > 0);
    const older = cps[Math.floor(cps.length / 2)];
    if (older && older.tree_size < cpSize) {
      const r = await getJson<ProofJson>(`/v1/ledger/proofs/consistency?first=${older.tree_size}&second=${cpSize}`);
      verifyConsistency(
        older.tree_size,
        cpSize,
        (r.consistencyProof ?? []).map((p) => Buffer.from(p, "base64")),
        older.root_hash,
        root,
      );
      verified++;
    }
  } finally {
    await database.close();
  }
  inc.sort((a, b) => a - b);
  con.sort((a, b) => a - b);
  return { incP50: pct(inc, 50), incP99: pct(inc, 99), incMax: inc[inc.length - 1]!, conP50: pct(con, 50), conP99: pct(con, 99), verified };
}

async function baseline(url: string): Promise<{ perSec: number; poolSize: number; rows: number }> {
  const poolSize = Math.min(CONCURRENCY, 64);
  const pool = new pg.Pool({ connectionString: url, max: poolSize });
  try {
    await pool.query(`create table bench_baseline (
      idx bigint primary key, leaf_hash bytea not null unique, leaf bytea not null, predicate_type text not null,
      signers jsonb not null, subjects jsonb not null, materials jsonb not null, sequenced_at timestamptz not null default now())`);
    const key = newKey();
    const rows = Array.from({ length: BASELINE_ROWS }, (_, i) => {
      const leaf = Buffer.from(JSON.stringify(envelopeJson(key, statementPayload("baseline", i))));
      return {
        leaf,
        hash: createHash("sha256")
          .update(Buffer.from([0]))
          .update(leaf)
          .digest(),
        signers: JSON.stringify([key.actor.id]),
        subjects: JSON.stringify([`sha256:${createHash("sha256").update(`s${i}`).digest("hex")}`]),
        materials: JSON.stringify([`sha256:${createHash("sha256").update(`m${i}`).digest("hex")}`]),
      };
    });
    // Open the pool's connections before timing.
    await Promise.all(Array.from({ length: poolSize }, () => pool.query("select 1")));
    let next = 0;
    const start = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        for (;;) {
          const i = next++;
          if (i >= rows.length) return;
          const r = rows[i]!;
          await pool.query(
            "insert into bench_baseline (idx, leaf_hash, leaf, predicate_type, signers, subjects, materials) values ($1, $2, $3, $4, $5, $6, $7)",
            [i, r.hash, r.leaf, PREDICATE, r.signers, r.subjects, r.materials],
          );
        }
      }),
    );
    const ms = performance.now() - start;
    await pool.query("drop table bench_baseline");
    return { perSec: (rows.length / ms) * 1000, poolSize, rows: rows.length };
  } finally {
    await pool.end();
  }
}

// ---- main ----
let dbUrl = "";

async function main(): Promise<void> {
  const loadStart = loadAverage();
  const startedAt = new Date();
  const run = randomBytes(4).toString("hex");
  log(
    `${QUICK ? "QUICK" : "FULL"} run: ${ENTRIES} timed single appends + ${BATCH_ENTRIES} batched (${BATCH_SIZE}/request, ${BATCH_CONCURRENCY} in flight), tree size ${TREE_SIZE}, concurrency ${CONCURRENCY}; load ${loadStart.map((l) => l.toFixed(2)).join(" ")}`,
  );
  const env = await createTestEnv("benchledger");
  dbUrl = env.database.url;
  const origin = "bench.ledger.deai.dev/log";
  const { signerKey } = generateNoteKey(origin);
  const svc = await spawnService(
    resolve(ledgerDist, "main.js"),
    env.vars({
      LEDGER_ORIGIN: origin,
      LEDGER_SIGNING_KEY: signerKey,
      DB_POOL_SIZE: String(DB_POOL_SIZE),
      // Service settings to try, passed through when set.
      ...Object.fromEntries(
        ["LEDGER_VERIFY_THREADS", "LEDGER_CHECKPOINT_INTERVAL_MS"].flatMap((k) => {
          const v = process.env[k];
          return v ? [[k, v]] : [];
        }),
      ),
      // e.g. BENCH_SERVICE_NODE_OPTIONS="--import ./profile-hook.mjs" (--cpu-prof is not allowed in NODE_OPTIONS).
      ...(process.env.BENCH_SERVICE_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_SERVICE_NODE_OPTIONS } : {}),
    }),
    { timeoutMs: 60_000 },
  );
  port = svc.port;
  agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY + 4 });
  try {
    await waitForCheckpoint(0, 30_000);
    const toPreload = TREE_SIZE - ENTRIES - BATCH_ENTRIES;
    log(
      `preloading ${toPreload} entries via verifyEnvelope + sequenceEntries (the service's append path, batches of 5000), integrated by the service`,
    );
    const pre = await preload(env.database.url, toPreload, run);
    if (pre.preloaded) log(`preloaded and integrated ${pre.preloaded} entries in ${Math.round(pre.ms)} ms`);

    const rates = (a: AppendStats, entries: number): { integrated: number; acknowledged: number } => ({
      integrated: (entries - a.errors) / (a.wallMs / 1000),
      acknowledged: (entries - a.errors) / (a.sequencedMs / 1000),
    });
    const a = await appends(pre.preloaded, run, svc.proc.pid ?? 0, ENTRIES, 0, CONCURRENCY);
    const single = rates(a, ENTRIES);
    log(
      `single appends: ${Math.round(single.integrated)}/s integrated (${Math.round(single.acknowledged)}/s acknowledged), errors ${a.errors}${a.firstError ? ` (${a.firstError})` : ""}`,
    );
    const ab =
      BATCH_ENTRIES > 0
        ? await appends(pre.preloaded + ENTRIES, `${run}-batch`, svc.proc.pid ?? 0, BATCH_ENTRIES, BATCH_SIZE, BATCH_CONCURRENCY)
        : undefined;
    const batched = ab ? rates(ab, BATCH_ENTRIES) : undefined;
    if (ab && batched)
      log(
        `batched appends: ${Math.round(batched.integrated)}/s integrated (${Math.round(batched.acknowledged)}/s acknowledged), errors ${ab.errors}${ab.firstError ? ` (${ab.firstError})` : ""}`,
      );
    // The goal counts entries: the headline rate is the batched one when measured.
    const appendsPerSec = batched?.integrated ?? single.integrated;
    const sequencedPerSec = batched?.acknowledged ?? single.acknowledged;

    const size = (await latestSize()).size;
    const p = await proofs(size);
    log(
      `proofs at size ${size}: inclusion p50 ${p.incP50.toFixed(2)} ms p99 ${p.incP99.toFixed(2)} ms; consistency p99 ${p.conP99.toFixed(2)} ms`,
    );

    await stopService(svc);
    const b = await baseline(env.database.url);
    log(`baseline: ${Math.round(b.perSec)} single-row INSERTs/s (pool ${b.poolSize}, ${CONCURRENCY} in flight)`);

    const machine = machineBlock(loadStart);
    const appendsGoal = appendsPerSec >= GOAL_APPENDS;
    const proofGoal = p.incP99 < GOAL_P99_MS && p.conP99 < GOAL_P99_MS;
    const sizeGoal = size >= GOAL_SIZE;
    const mode = (
      x: AppendStats,
      r: { integrated: number; acknowledged: number },
      entries: number,
      batch: number,
      concurrency: number,
    ) => ({
      appendsPerSec: round(r.integrated, 1),
      sequencedPerSec: round(r.acknowledged, 1),
      entries,
      envelopesPerRequest: batch === 0 ? 1 : batch,
      requestsInFlight: concurrency,
      errors: x.errors,
      retries: x.retries,
      wallMs: round(x.wallMs, 1),
      ackMs: round(x.sequencedMs, 1),
      // Latency of one request (a batch counts once).
      requestLatencyP50Ms: round(x.latP50),
      requestLatencyP99Ms: round(x.latP99),
      // CPU time per entry (ms), over the append window: with a shared, loaded machine this
      // is steadier than throughput. Postgres = all server processes on the host.
      cpuMsPerAppend: {
        service: round(x.cpuMs.service / entries, 4),
        benchClient: round(x.cpuMs.client / entries, 4),
        postgres: round(x.cpuMs.postgres / entries, 4),
      },
      overBaselineInsertsPerSec: round(r.integrated / b.perSec, 3),
    });
    const result = {
      benchmark: "ledger",
      quick: QUICK,
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      // Entries durably sequenced and integrated per second: batched appends when measured
      // (BENCH_BATCH_ENTRIES > 0), else single appends. Both modes are under appendModes.
      appendsPerSec: round(appendsPerSec, 1),
      appendsPerSecMode: batched ? `batched (${BATCH_SIZE} envelopes per signed request)` : "single (one envelope per signed request)",
      sequencedPerSec: round(sequencedPerSec, 1),
      singleAppendsPerSec: round(single.integrated, 1),
      batchedAppendsPerSec: batched ? round(batched.integrated, 1) : null,
      appendModes: {
        single: mode(a, single, ENTRIES, 0, CONCURRENCY),
        ...(ab && batched ? { batched: mode(ab, batched, BATCH_ENTRIES, BATCH_SIZE, BATCH_CONCURRENCY) } : {}),
      },
      entries: ENTRIES + (ab ? BATCH_ENTRIES : 0),
      appendErrors: a.errors + (ab?.errors ?? 0),
      appendRetries: a.retries + (ab?.retries ?? 0),
      treeSize: size,
      preloadedEntries: pre.preloaded,
      preload:
        pre.preloaded > 0
          ? `entries preloaded via the service's append path in-process (verifyEnvelope + sequenceEntries from services/ledger/dist, batches of 5000, no HTTP and no request signatures), integrated and checkpointed by the running service; ${pre.preloaded} entries in ${Math.round(pre.ms)} ms`
          : "none",
      inclusionProofP50Ms: round(p.incP50, 3),
      inclusionProofP99Ms: round(p.incP99, 3),
      inclusionProofMaxMs: round(p.incMax, 3),
      consistencyProofP50Ms: round(p.conP50, 3),
      consistencyProofP99Ms: round(p.conP99, 3),
      proofsVerified: p.verified,
      baselineInsertsPerSec: round(b.perSec, 1),
      ratios: {
        appendsPerSecOverBaselineInsertsPerSec: round(appendsPerSec / b.perSec, 3),
        sequencedPerSecOverBaselineInsertsPerSec: round(sequencedPerSec / b.perSec, 3),
        singleAppendsPerSecOverBaselineInsertsPerSec: round(single.integrated / b.perSec, 3),
      },
      inputs: {
        entries: ENTRIES,
        batchEntries: BATCH_ENTRIES,
        batchSize: BATCH_SIZE,
        batchConcurrency: BATCH_CONCURRENCY,
        treeSize: TREE_SIZE,
        concurrency: CONCURRENCY,
        clientKeys: CLIENT_KEYS,
        proofs: PROOFS,
        baselineRows: b.rows,
        baselinePoolSize: b.poolSize,
        serviceDbPoolSize: DB_POOL_SIZE,
        transport: "REST JSON over keep-alive HTTP/1.1 (node:http Agent), RFC 9421 signed, wait_for_integration=false",
        checkpointIntervalMs: 1000,
      },
      machine,
      goals: {
        appendsPerSec: {
          goal: `>= ${GOAL_APPENDS} appends/s sustained`,
          measured: round(appendsPerSec, 1),
          mode: batched ? "batched" : "single",
          met: appendsGoal,
        },
        proofP99: {
          goal: `< ${GOAL_P99_MS} ms p99 (inclusion and consistency)`,
          measured: { inclusion: round(p.incP99, 3), consistency: round(p.conP99, 3) },
          met: proofGoal,
        },
        treeSize: { goal: `>= ${GOAL_SIZE} entries`, measured: size, met: sizeGoal },
        met: appendsGoal && proofGoal && sizeGoal,
      },
    };
    const out = writeResult(repoRoot, "ledger", result);
    const yn = (b: boolean): string => (b ? "MET" : "missed");
    process.stdout.write(
      [
        "",
        `ledger benchmark (${QUICK ? "quick" : "full"}) ${machineLine(machine)}`,
        `  single appends (HTTP, ${CONCURRENCY} in flight)  ${Math.round(single.integrated)} /s integrated, ${Math.round(single.acknowledged)} /s acknowledged (${ENTRIES} entries, ${a.errors} errors)`,
        `    request latency            p50 ${a.latP50.toFixed(1)} ms, p99 ${a.latP99.toFixed(1)} ms`,
        `    CPU per append             service ${(a.cpuMs.service / ENTRIES).toFixed(3)} ms, postgres ${(a.cpuMs.postgres / ENTRIES).toFixed(3)} ms, bench client ${(a.cpuMs.client / ENTRIES).toFixed(3)} ms`,
        ...(ab && batched
          ? [
              `  batched appends (${BATCH_SIZE}/request, ${BATCH_CONCURRENCY} in flight)  ${Math.round(batched.integrated)} /s integrated, ${Math.round(batched.acknowledged)} /s acknowledged (${BATCH_ENTRIES} entries, ${ab.errors} errors)`,
              `    request latency            p50 ${ab.latP50.toFixed(1)} ms, p99 ${ab.latP99.toFixed(1)} ms`,
              `    CPU per append             service ${(ab.cpuMs.service / BATCH_ENTRIES).toFixed(3)} ms, postgres ${(ab.cpuMs.postgres / BATCH_ENTRIES).toFixed(3)} ms, bench client ${(ab.cpuMs.client / BATCH_ENTRIES).toFixed(3)} ms`,
            ]
          : []),
        `  baseline pg INSERTs          ${Math.round(b.perSec)} /s  → ratio single ${(single.integrated / b.perSec).toFixed(2)}${batched ? `, batched ${(batched.integrated / b.perSec).toFixed(2)}` : ""}`,
        `  tree size                    ${size} (${pre.preloaded} preloaded)`,
        `  inclusion proof              p50 ${p.incP50.toFixed(2)} ms, p99 ${p.incP99.toFixed(2)} ms`,
        `  consistency proof            p50 ${p.conP50.toFixed(2)} ms, p99 ${p.conP99.toFixed(2)} ms  (${p.verified} proofs verified)`,
        `  goals: ≥${GOAL_APPENDS}/s ${yn(appendsGoal)}; p99 <${GOAL_P99_MS} ms ${yn(proofGoal)}; ≥${GOAL_SIZE} entries ${yn(sizeGoal)}`,
        `  wrote ${out}`,
        "",
      ].join("\n"),
    );
  } finally {
    agent.destroy();
    if (svc.proc.exitCode === null && svc.proc.signalCode === null) {
      svc.kill("SIGTERM");
      await svc.exited;
    }
    await env.close();
  }
}

await main();
