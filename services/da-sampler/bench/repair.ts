// Repair benchmark (issue 12): repair throughput against a plain download of the same bytes in
// the same run, and bytes read per rebuilt shard.
//
// A fresh Postgres database and NATS prefix, the real ledger process, n + spare in-process S3
// servers (startS3 from @deai/testkit, one per provider, in a helper process of their own) and
// the real da-sampler service (services/da-sampler/dist, in this process). A dataset of
// BENCH_REPAIR_MIB MiB (128; quick 32) of random bytes is erasure-coded here (k = 8, m = 4,
// S = 256 KiB), its slot objects written to the providers and its manifest entered in the
// sampler's catalog directly (no ingestion: what is measured is repair alone). Then, for 1 and
// for m lost slots, `rounds` times each (3; quick 1), interleaved:
//   - download (before and after the repair; the mean is the baseline): plain range GETs of the
//     k data slots' objects, all slots in parallel, one window of DA_REPAIR_PART_BYTES per slot
//     in flight, no verification, no copy: the cheapest way to move the dataset's bytes off the
//     same providers, from the same process;
//   - repair: the lost slots are marked as serving invalid shards (no grace period), the repair
//     loop starts a job and runs it (verified range reads of k slots, rebuild of every lost slot
//     from the same reads with the native codec, leaf check of each rebuilt shard, streamed
//     multipart writes to the new providers, placement statement anchored); repairMiBps =
//     dataset MiB / (job created → completed, from the job row);
//   - the rebuilt objects are read back and compared byte for byte with the originals;
//   - CPU seconds of this process (all threads) and of the S3 helper during each phase.
// The goal is judged on each lost set's median ratio; every run is in the result.
// `runRepairBench(options)` returns the result (make bench-da embeds it); run standalone
// (`node services/da-sampler/bench/dist/repair.js`) it writes bench/results/repair.json.
// BENCH_REPAIR_READ_BYTES / _READ_AHEAD / _HASH_THREADS / _ROUNDS override the service's settings.
import { fork } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { dirname, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

import { Client } from "minio";

import { benchLogger, envInt, loadAverage, machineBlock, round, spawnService, writeResult } from "@deai/bench";
import { startService, type RunningService } from "@deai/kit";
import { ErasureCodec, generateNoteKey, leafHash, rootFromLeafHashes } from "@deai/proofs";
import { createTestEnv, startS3, storageProvidersJson, type TestS3 } from "@deai/testkit";

import type * as ConfigModule from "../dist/config.js";
import type * as DefinitionModule from "../dist/definition.js";
import type { SamplerParts } from "../dist/definition.js";
import type { SampledDataset } from "../dist/app/catalog.js";
import type { DaSamplerDb } from "../dist/store/tables.js";

const here = dirname(fileURLToPath(import.meta.url));
// Compiled to services/da-sampler/bench/dist/: the service build is ../../dist.
const samplerDist = resolve(here, "../../dist");
const ledgerMain = resolve(here, "../../../ledger/dist/main.js");
const repoRoot = resolve(here, "../../../..");
const MiB = 1024 * 1024;

interface ServerInfo {
  readonly endpoint: string;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly region: string;
}

export interface RepairBenchOptions {
  /** Dataset size. @default 128 (32 with quick) */
  readonly sizeMiB?: number;
  readonly k?: number;
  readonly m?: number;
  readonly shardSize?: number;
  /** Bytes per part (and per read window). @default 8 MiB */
  readonly partBytes?: number;
  /** Bytes per range read of a source slot (DA_REPAIR_READ_BYTES). @default the service's */
  readonly readBytes?: number;
  /** Read windows in flight (DA_REPAIR_READ_AHEAD). @default the service's */
  readonly readAhead?: number;
  /** Leaf hash threads (DA_REPAIR_HASH_THREADS). @default the service's */
  readonly hashThreads?: number;
  /** Repairs of each lost set (interleaved; the ratio judged is each set's median). @default 3 (1 with quick) */
  readonly rounds?: number;
  /** BENCH_QUICK: a smaller dataset. */
  readonly quick?: boolean;
  readonly log?: (message: string) => void;
}

export interface RepairRun {
  readonly lostSlots: number[];
  /** Job created → completed (rebuilt, written, checked, anchored, in force). */
  readonly repairSeconds: number;
  /** Dataset MiB repaired per second (the stripes the repair got through), end to end. */
  readonly repairMiBps: number;
  /** Job created → every new object complete and checked (before the ledger append). */
  readonly rebuildSeconds: number;
  readonly rebuildMiBps: number;
  readonly downloadSeconds: number;
  /** Dataset MiB per second by plain range GETs of the k data slots, same run. */
  readonly downloadMiBps: number;
  readonly ratio: number;
  readonly bytesRead: number;
  readonly bytesWritten: number;
  readonly rebuiltShards: number;
  /** Shards read per rebuilt shard (k / lost when every first read verifies). */
  readonly shardsReadPerRebuiltShard: number;
  readonly bytesReadPerRebuiltShard: number;
  readonly byteIdentical: boolean;
  /**
   * CPU seconds spent while it ran, by the bench process (the service: every thread, the
   * codec's thread pool included) and by the S3 helper process: where the work is, on a
   * machine whose cores the two share (download: the mean of the two).
   */
  readonly cpuSeconds: { download: { service: number; s3: number }; repair: { service: number; s3: number } };
}

export interface RepairBenchResult {
  readonly benchmark: "repair";
  readonly at: string;
  readonly machine: ReturnType<typeof machineBlock>;
  readonly config: {
    sizeMiB: number;
    k: number;
    m: number;
    shardSize: number;
    partBytes: number;
    readBytes: number;
    readAhead: number;
    hashThreads: number;
    rounds: number;
    stripes: number;
    codec: string;
  };
  readonly runs: RepairRun[];
  /** Per lost set: the median over its repairs (what the goal is judged on; every run is in `runs`). */
  readonly medians: { lostSlots: number[]; repairs: number; ratio: number; repairMiBps: number; downloadMiBps: number }[];
  readonly goal: string;
  readonly met: boolean;
}

/** Plain range GETs of the k data slots' objects, windows of `window` bytes, slots in parallel. */
async function plainDownload(
  clients: Client[],
  key: (slot: number) => string,
  k: number,
  objectBytes: number,
  window: number,
): Promise<number> {
  const t0 = performance.now();
  let total = 0;
  await Promise.all(
    Array.from({ length: k }, async (_, slot) => {
      for (let at = 0; at < objectBytes; at += window) {
        const len = Math.min(window, objectBytes - at);
        const stream = await clients[slot]!.getPartialObject("shards", key(slot), at, len);
        for await (const chunk of stream as AsyncIterable<Buffer>) total += chunk.length;
      }
    }),
  );
  if (total !== k * objectBytes) throw new Error(`plain download read ${total} bytes, expected ${k * objectBytes}`);
  return (performance.now() - t0) / 1000;
}

export async function runRepairBench(o: RepairBenchOptions = {}): Promise<RepairBenchResult> {
  const log = o.log ?? benchLogger("repair");
  const loadStart = loadAverage();
  const k = o.k ?? 8;
  const m = o.m ?? 4;
  const n = k + m;
  const S = o.shardSize ?? 256 * 1024;
  const sizeMiB = o.sizeMiB ?? (o.quick ? 32 : 128);
  const partBytes = o.partBytes ?? 8 * MiB;
  const stripes = Math.ceil((sizeMiB * MiB) / (k * S));
  const lostSets = [[3], Array.from({ length: m }, (_, i) => i * 2)];
  // Spare providers for the first repairs; later ones move slots back to providers the dataset left.
  const spare = lostSets.reduce((a, l) => a + l.length, 0);
  const { loadDaSamplerConfig } = (await import(pathToFileURL(resolve(samplerDist, "config.js")).href)) as typeof ConfigModule;
  const { daSamplerDefinition } = (await import(pathToFileURL(resolve(samplerDist, "definition.js")).href)) as typeof DefinitionModule;

  const env = await createTestEnv("bench-repair");
  // The S3 servers in a process of their own (this same file, --s3-helper): the service and the
  // download baseline here share no event loop with them, as with real providers.
  const helper = fork(fileURLToPath(import.meta.url), ["--s3-helper", String(n + spare)], { execArgv: ["--openssl-legacy-provider"] });
  const servers = await new Promise<ServerInfo[]>((ok, fail) => {
    helper.once("message", (m: { servers: ServerInfo[] }) => ok(m.servers));
    helper.once("exit", (code) => fail(new Error(`the S3 helper exited with ${code}`)));
  });
  // CPU seconds of this process and of the helper (asked over IPC).
  const cpu = async (): Promise<{ service: number; s3: number }> => {
    const s3 = await new Promise<number>((ok) => {
      helper.once("message", (m: { cpu: number }) => ok(m.cpu));
      helper.send("cpu");
    });
    const u = process.cpuUsage();
    return { service: (u.user + u.system) / 1e6, s3 };
  };
  const spent = (a: { service: number; s3: number }, b: { service: number; s3: number }) => ({
    service: b.service - a.service,
    s3: b.s3 - a.s3,
  });
  const clients = servers.map(
    (s) =>
      new Client({
        endPoint: "127.0.0.1",
        port: Number(new URL(s.endpoint).port),
        useSSL: false,
        accessKey: s.accessKey,
        secretKey: s.secretKey,
      }),
  );
  const keys = generateNoteKey("ledger.bench-repair/log");
  const ledger = await spawnService(
    ledgerMain,
    env.vars({ LEDGER_ORIGIN: "ledger.bench-repair/log", LEDGER_SIGNING_KEY: keys.signerKey, LEDGER_CHECKPOINT_INTERVAL_MS: "100" }),
    { timeoutMs: 90_000 },
  );
  let svc: RunningService<DaSamplerDb> | undefined;
  try {
    // The dataset: random bytes, coded stripe by stripe; slot j's object at provider j.
    log(`coding ${sizeMiB} MiB (k=${k}, m=${m}, S=${S / 1024} KiB, ${stripes} stripes)`);
    const codec = new ErasureCodec(k, m);
    const slotBytes = Array.from({ length: n }, () => Buffer.allocUnsafe(stripes * S));
    const leaves: Uint8Array[] = [];
    const digest = createHash("sha256");
    const size = sizeMiB * MiB;
    for (let s = 0; s < stripes; s++) {
      const data = Array.from({ length: k }, (_, j) => {
        const at = (s * k + j) * S;
        const shard = Buffer.alloc(S);
        if (at < size) randomBytes(Math.min(S, size - at)).copy(shard);
        digest.update(shard.subarray(0, Math.max(0, Math.min(S, size - at))));
        return shard;
      });
      const parity = codec.encode(data);
      [...data, ...parity].forEach((shard, j) => {
        Buffer.from(shard).copy(slotBytes[j]!, s * S);
        leaves.push(leafHash(shard));
      });
    }
    const key = (slot: number): string => `datasets/bench/slot-${String(slot).padStart(3, "0")}`;
    await Promise.all(slotBytes.map((b, j) => clients[j]!.putObject("shards", key(j), b, b.length)));
    const providers = JSON.parse(storageProvidersJson(servers as TestS3[])) as { id: string; endpoint: string }[];

    const config = loadDaSamplerConfig(
      env.vars({
        DA_SAMPLER_KEYS: randomBytes(32).toString("base64url"),
        DA_PROVIDERS: storageProvidersJson(servers as TestS3[]),
        DA_LEDGER_URL: `http://127.0.0.1:${ledger.port}`,
        DA_QUORUM_THRESHOLD: "1",
        DA_REPAIR_GRACE_MS: "0",
        DA_REPAIR_INTERVAL_MS: "100",
        DA_REPAIR_PART_BYTES: String(partBytes),
        ...(o.readBytes ? { DA_REPAIR_READ_BYTES: String(o.readBytes) } : {}),
        ...(o.readAhead ? { DA_REPAIR_READ_AHEAD: String(o.readAhead) } : {}),
        ...(o.hashThreads ? { DA_REPAIR_HASH_THREADS: String(o.hashThreads) } : {}),
        LOG_LEVEL: "info",
      }),
    );
    let parts: SamplerParts | undefined;
    svc = await startService(daSamplerDefinition(config, { built: (p) => (parts = p) }), config);
    const p = parts!;
    const ds: SampledDataset = {
      datasetId: "00000000-0000-4000-8000-000000000b01",
      contentDigest: digest.digest("hex"),
      shardRoot: rootFromLeafHashes(leaves),
      k,
      m,
      shardSize: S,
      stripes,
      placements: Array.from({ length: n }, (_, j) => ({
        slot: j,
        providerId: providers[j]!.id,
        bucket: "shards",
        key: key(j),
        endpoint: providers[j]!.endpoint,
      })),
      leaves: Buffer.concat(leaves),
    };
    await p.ctx.db.transaction().execute((trx) => p.catalog.add(trx, ds, 0n, new Date()));

    const runs: RepairRun[] = [];
    const rounds = o.rounds ?? (o.quick ? 1 : 3);
    for (let r = 0; r < rounds * lostSets.length; r++) {
      const lost = lostSets[r % lostSets.length]!;
      const lastVersion = Math.max(
        1,
        ...(await p.ctx.db.selectFrom("repair_jobs").select("version").where("dataset_id", "=", ds.datasetId).execute()).map(
          (j) => j.version,
        ),
      );
      const current = await p.catalog.get(ds.datasetId);
      const c0 = await cpu();
      const dl1 = await plainDownload(
        current.placements.slice(0, k).map((pl) => clients[Number(pl.providerId.slice(1))]!),
        (slot) => current.placements[slot]!.key,
        k,
        stripes * S,
        partBytes,
      );
      const c1 = await cpu();
      log(`repairing slots ${lost.join(", ")}`);
      // Invalid shards: repaired at once (no grace period), exactly as a quorum's evidence leaves the slot.
      await p.ctx.db
        .updateTable("slot_states")
        .set({ state: "unavailable", last_outcome: "invalid" })
        .where("dataset_id", "=", ds.datasetId)
        .where("slot", "in", lost)
        .execute();
      const job = await (async () => {
        for (;;) {
          const rows = await p.ctx.db.selectFrom("repair_jobs").selectAll().where("state", "in", ["completed", "failed"]).execute();
          const j = rows.find((x) => x.version > lastVersion);
          if (j?.state === "failed") throw new Error(`repair failed: ${j.error}`);
          if (j) return j;
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      const c2 = await cpu();
      const after = await p.catalog.get(ds.datasetId);
      const dl2 = await plainDownload(
        after.placements.slice(0, k).map((pl) => clients[Number(pl.providerId.slice(1))]!),
        (slot) => after.placements[slot]!.key,
        k,
        stripes * S,
        partBytes,
      );
      const c3 = await cpu();
      let identical = true;
      for (const slot of lost) {
        const pl = after.placements[slot]!;
        const chunks: Buffer[] = [];
        for await (const c of await clients[Number(pl.providerId.slice(1))]!.getObject("shards", pl.key)) chunks.push(c as Buffer);
        identical &&= Buffer.concat(chunks).equals(slotBytes[slot]!);
      }
      const repairSeconds = (job.completed_at!.getTime() - job.created_at.getTime()) / 1000;
      const rebuildSeconds = (job.rebuilt_at!.getTime() - job.created_at.getTime()) / 1000;
      const downloadSeconds = (dl1 + dl2) / 2;
      const datasetMiB = (stripes * k * S) / MiB;
      const rebuilt = stripes * lost.length;
      const run: RepairRun = {
        lostSlots: lost,
        repairSeconds: round(repairSeconds, 3),
        repairMiBps: round(datasetMiB / repairSeconds, 1),
        rebuildSeconds: round(rebuildSeconds, 3),
        rebuildMiBps: round(datasetMiB / rebuildSeconds, 1),
        downloadSeconds: round(downloadSeconds, 3),
        downloadMiBps: round(datasetMiB / downloadSeconds, 1),
        ratio: round(downloadSeconds / repairSeconds, 2),
        bytesRead: Number(job.bytes_read),
        bytesWritten: Number(job.bytes_written),
        rebuiltShards: rebuilt,
        shardsReadPerRebuiltShard: round(Number(job.bytes_read) / S / rebuilt, 2),
        bytesReadPerRebuiltShard: Math.round(Number(job.bytes_read) / rebuilt),
        byteIdentical: identical,
        cpuSeconds: {
          download: (() => {
            const a = spent(c0, c1);
            const b = spent(c2, c3);
            return { service: round((a.service + b.service) / 2, 3), s3: round((a.s3 + b.s3) / 2, 3) };
          })(),
          repair: (() => {
            const r = spent(c1, c2);
            return { service: round(r.service, 3), s3: round(r.s3, 3) };
          })(),
        },
      };
      log(JSON.stringify(run));
      runs.push(run);
    }
    const median = (xs: number[]): number => {
      const v = [...xs].sort((a, b) => a - b);
      return v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
    };
    const medians = lostSets.map((lost) => {
      const of = runs.filter((x) => x.lostSlots.join() === lost.join());
      return {
        lostSlots: lost,
        repairs: of.length,
        ratio: round(median(of.map((x) => x.ratio)), 2),
        repairMiBps: round(median(of.map((x) => x.repairMiBps)), 1),
        downloadMiBps: round(median(of.map((x) => x.downloadMiBps)), 1),
      };
    });
    return {
      benchmark: "repair",
      at: new Date().toISOString(),
      machine: machineBlock(loadStart),
      config: {
        sizeMiB,
        k,
        m,
        shardSize: S,
        partBytes,
        readBytes: config.DA_REPAIR_READ_BYTES,
        readAhead: config.DA_REPAIR_READ_AHEAD,
        hashThreads: config.DA_REPAIR_HASH_THREADS,
        rounds,
        stripes,
        codec:
          "StripeCodec (native @ronomon/reed-solomon, @deai/kit); the dataset is coded here with the byte-compatible pure-TS ErasureCodec",
      },
      runs,
      goal: "repair ≥ 0.5 × download speed",
      medians,
      met: medians.every((x) => x.ratio >= 0.5) && runs.every((r) => r.byteIdentical),
    };
  } finally {
    await svc?.stop();
    ledger.kill("SIGKILL");
    await ledger.exited;
    const gone = new Promise((r) => helper.once("exit", r));
    helper.disconnect();
    await gone;
    await env.close();
  }
}

const main = process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (main && process.argv[2] === "--s3-helper") {
  // The S3 helper: n servers, their addresses once listening, destroyed when the bench goes away.
  const servers = await Promise.all(Array.from({ length: Number(process.argv[3]) }, () => startS3({ buckets: ["shards"] })));
  process.on("message", (m) => {
    if (m !== "cpu") return;
    const u = process.cpuUsage();
    process.send?.({ cpu: (u.user + u.system) / 1e6 });
  });
  process.on("disconnect", () => void Promise.all(servers.map((x) => x.destroy())).finally(() => process.exit(0)));
  process.send?.({
    servers: servers.map((x) => ({ endpoint: x.endpoint, accessKey: x.accessKey, secretKey: x.secretKey, region: x.region })),
  });
} else if (main) {
  // Standalone: node services/da-sampler/bench/dist/repair.js (BENCH_QUICK=1, BENCH_REPAIR_MIB).
  const quick = process.env.BENCH_QUICK === "1";
  const sizeMiB = envInt("BENCH_REPAIR_MIB", quick ? 32 : 128);
  const readBytes = envInt("BENCH_REPAIR_READ_BYTES", 0);
  const readAhead = envInt("BENCH_REPAIR_READ_AHEAD", 0);
  const hashThreads = envInt("BENCH_REPAIR_HASH_THREADS", 0);
  const rounds = envInt("BENCH_REPAIR_ROUNDS", 0);
  const result = await runRepairBench({
    quick,
    sizeMiB,
    ...(readBytes ? { readBytes } : {}),
    ...(readAhead ? { readAhead } : {}),
    ...(hashThreads ? { hashThreads } : {}),
    ...(rounds ? { rounds } : {}),
  });
  const out = writeResult(repoRoot, "repair", result);
  process.stdout.write(`${JSON.stringify(result.runs, null, 2)}\nwrote ${out}\n`);
  process.exit(0);
}
