// Repair end to end: a real ledger, a real ingestion process and upload (k = 4, m = 2) over
// 9 in-process S3 providers (3 spare), one sampler process (in-process, then spawned for the
// kill -9) with two identities, quorum 2 of 2.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Kysely } from "kysely";

import { ProviderJailedSchema } from "@deai/contracts/deai/events/v1/slashing_pb";
import { createLogger, EventBus, generateActorKey, openDatabase, schemaOf, startService, type RunningService } from "@deai/kit";
import { natsUrl, spawnService, type ServiceProcess, type TestDatabase } from "@deai/testkit";
import { dsseFromJson, leafHash, parseTlogProof, verifyPlacement, verifyTlogProof } from "@deai/proofs";

import { createHash } from "node:crypto";

import { repairStory } from "../../../tools/demo/src/repair-story.js";
import { loadDaSamplerConfig } from "../src/config.js";
import { daSamplerDefinition, type SamplerParts } from "../src/definition.js";
import type { DaSamplerDb } from "../src/store/tables.js";
import { bytesOf, newSampler, providerClient, samplerMain, startDaHarness, uploadAll, type DaHarness } from "./harness.js";

const a1 = newSampler();
const a2 = newSampler();
const all = [a1, a2];
const owner = generateActorKey();
const data = bytesOf(200_000, 11);
const K = 4;
const S = 4096;
const GRACE_MS = 12_000;
let d: DaHarness;
let dbA: TestDatabase;
let svc: RunningService<DaSamplerDb> | undefined;
let parts: SamplerParts;
let datasetId: string;
let db: Kysely<DaSamplerDb>;
let closeDb: (() => Promise<void>) | undefined;

type Json = ReturnType<typeof JSON.parse>;

async function eventually<T>(f: () => Promise<T | undefined>, ms = 45_000, what = "condition"): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`${what} not met in time`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const vars = (overrides: Record<string, string> = {}) =>
  d.samplerVars(dbA, [a1, a2], all, {
    DA_REPAIR_GRACE_MS: String(GRACE_MS),
    DA_REPAIR_INTERVAL_MS: "300",
    DA_REPAIR_PART_BYTES: String(4 * S),
    DA_RECHECK_TIMEOUT_MS: "10000",
    ...overrides,
  });

const providerIndex = (id: string) => Number(id.slice(1));
const placementsOf = async () => (await parts.catalog.get(datasetId)).placements;
const jobs = () => db.selectFrom("repair_jobs").selectAll().orderBy("created_at").execute();
/** The completed job that moved `slot` for `reason` (versions are not assumed: another repair may come between). */
const completed = (slot: number, reason: string) =>
  eventually(
    async () => {
      for (const j of await jobs()) {
        const s = j.slots[0]!;
        if (s.slot !== slot || s.reason !== reason) continue;
        if (j.state === "failed") throw new Error(`repair failed: ${j.error}`);
        if (j.state === "completed") return j;
      }
      return undefined;
    },
    90_000,
    `repair of slot ${slot} (${reason})`,
  );

/** The placements of a version (1 = the manifest's). */
async function placementsAt(version: number): Promise<Json[]> {
  if (version === 1) return (await manifest()).placements;
  const r = await db
    .selectFrom("placement_versions")
    .selectAll()
    .where("dataset_id", "=", datasetId)
    .where("version", "=", version)
    .executeTakeFirstOrThrow();
  return r.placements;
}

async function download(): Promise<Buffer> {
  const r = await fetch(`${d.ingestionUrl}/v1/datasets/${datasetId}/content`);
  if (r.status !== 200) throw new Error(`download: ${r.status} ${await r.text()}`);
  return Buffer.from(await r.arrayBuffer());
}

async function manifest(): Promise<Json> {
  return ((await (await fetch(`${d.ingestionUrl}/v1/datasets/${datasetId}`)).json()) as Json).dataset.manifest;
}

/** The ledger's entry of a job's statement, checked offline: receipt under the log key, entry bytes, placement against the manifest. */
async function checkAnchored(job: { ledger_index: bigint | null; receipt: unknown; version: number; base_version: number }) {
  const previous = await placementsAt(job.base_version);
  const receipt = job.receipt as Json;
  const proof = parseTlogProof(receipt.tlogProof);
  const index = verifyTlogProof(proof, { leafHash: Buffer.from(receipt.leafHash, "base64") }, { log: d.h.verifier }).index;
  expect(BigInt(index)).toBe(job.ledger_index);
  const entry = ((await (await fetch(`${d.h.ledgerUrl}/v1/ledger/entries/${index}`)).json()) as Json).entry;
  expect(Buffer.from(leafHash(Buffer.from(entry.leaf, "base64"))).toString("base64")).toBe(receipt.leafHash);
  const m = await manifest();
  const v = verifyPlacement(dsseFromJson(entry.envelope), {
    datasetId,
    contentDigest: m.contentDigest.hex,
    shardRoot: Buffer.from(m.shardRoot, "base64").toString("hex"),
    k: m.k,
    m: m.m,
    stripes: Number(m.stripes),
    previous: { version: job.base_version, placements: previous },
    signers: [a1.id],
  });
  return v.predicate;
}

beforeAll(async () => {
  d = await startDaHarness("repair", 9);
  const up = await uploadAll(d.ingestionUrl, owner, data, { k: K, m: 2, shardSize: S });
  datasetId = up.done.datasetId as string;
  dbA = await d.database();
  const config = loadDaSamplerConfig(vars());
  svc = await startService(daSamplerDefinition(config, { built: (p) => (parts = p) }), config);
  const database = openDatabase<DaSamplerDb>({ url: dbA.url, schema: schemaOf("da-sampler"), poolSize: 2 });
  db = database.db;
  closeDb = () => database.close();
  await eventually(
    async () => ((await db.selectFrom("rounds").select("round").limit(1).execute()).length ? true : undefined),
    150_000,
    "a first round",
  );
}, 240_000);

afterAll(async () => {
  await svc?.stop();
  await closeDb?.();
  await d?.close();
}, 60_000);

it("does not repair a short outage", async () => {
  const p = (await placementsOf())[0]!;
  const server = d.h.providers[providerIndex(p.providerId)]!;
  await server.stop();
  // The quorum proves the slot unavailable; the provider comes back well within the grace period.
  await eventually(async () => {
    const s = await db.selectFrom("slot_states").selectAll().where("dataset_id", "=", datasetId).where("slot", "=", 0).executeTakeFirst();
    return s?.state === "unavailable" ? true : undefined;
  });
  const watched = await db.selectFrom("repair_watch").selectAll().where("slot", "=", 0).execute();
  await server.start();
  await eventually(async () => {
    const s = await db.selectFrom("slot_states").selectAll().where("dataset_id", "=", datasetId).where("slot", "=", 0).executeTakeFirst();
    return s?.state === "available" ? true : undefined;
  });
  await new Promise((r) => setTimeout(r, GRACE_MS + 1000));
  expect(await jobs()).toEqual([]);
  // It was watched while unavailable, and forgotten once available.
  expect(watched.length + (await db.selectFrom("repair_watch").selectAll().where("slot", "=", 0).execute()).length).toBeLessThanOrEqual(1);
  expect(await db.selectFrom("repair_watch").selectAll().where("slot", "=", 0).execute()).toEqual([]);
}, 120_000);

it("rebuilds a slot a provider dropped, places it anew, anchors the placement, and downloads follow it", async () => {
  const before = await placementsOf();
  const victim = before[1]!;
  await providerClient(d.h.providers[providerIndex(victim.providerId)]!).removeObject(victim.bucket, victim.key);
  const job = await completed(1, "unavailable");
  const slot = job.slots[0]!;
  expect(slot).toMatchObject({ slot: 1, from: victim.providerId, reason: "unavailable" });
  expect(before.map((p) => p.providerId)).not.toContain(slot.to);
  // The evidence came first, then the grace period.
  const evidence = await db.selectFrom("attestations").selectAll().where("evidence", "=", true).where("slot", "=", 1).execute();
  expect(evidence.length).toBeGreaterThan(0);
  expect(job.created_at.getTime() - evidence[0]!.issued_at.getTime()).toBeGreaterThanOrEqual(GRACE_MS - 1500);
  // Each stripe read once, from k slots: k shards read per rebuilt shard.
  const stripes = Math.ceil(data.length / (K * S));
  expect(Number(job.bytes_read)).toBe(K * stripes * S);
  expect(Number(job.bytes_written)).toBe(stripes * S);
  // Anchored, verifiable offline; the dataset's digest and root unchanged.
  const p = await checkAnchored(job);
  expect(p.moved).toEqual([{ slot: 1, from: victim.providerId, to: slot.to, reason: "unavailable" }]);
  expect(p.version).toBe(job.version);
  // One object at the new provider, no multipart upload left.
  const server = d.h.providers[providerIndex(slot.to)]!;
  const names: string[] = [];
  for await (const o of providerClient(server).listObjectsV2("shards", `datasets/${datasetId}/`, true))
    names.push((o as { name: string }).name);
  expect(names).toEqual([slot.key]);
  expect(await server.multipartUploads("shards")).toEqual([]);
  // Ingestion follows at once: with the old slot gone and two more providers down, only the new placement leaves k slots.
  await eventually(async () => {
    const r = (await (await fetch(`${d.ingestionUrl}/v1/datasets/${datasetId}/shards/0/1/proof`)).json()) as Json;
    return r.placement?.providerId === slot.to ? true : undefined;
  }, 20_000);
  const down = [before[0]!, before[2]!].map((x) => d.h.providers[providerIndex(x.providerId)]!);
  await Promise.all(down.map((s) => s.stop()));
  try {
    expect((await download()).equals(data)).toBe(true);
  } finally {
    await Promise.all(down.map((s) => s.start()));
  }
  // The sampler samples the new provider, and it passes.
  await eventually(async () => {
    const s = await db
      .selectFrom("samples")
      .selectAll()
      .where("dataset_id", "=", datasetId)
      .where("slot", "=", 1)
      .where("provider_id", "=", slot.to)
      .where("outcome", "=", "ok")
      .executeTakeFirst();
    return s ? true : undefined;
  });
  const state = await db
    .selectFrom("slot_states")
    .selectAll()
    .where("dataset_id", "=", datasetId)
    .where("slot", "=", 1)
    .executeTakeFirstOrThrow();
  expect(state.provider_id).toBe(slot.to);
  // The demo's hook tells the same story from outside: ingestion, the ledger, offline checks.
  const lines: string[] = [];
  const story = await repairStory({
    ingestionUrl: d.ingestionUrl,
    ledgerUrl: d.h.ledgerUrl,
    logVerifierKey: d.h.verifierKey,
    datasetId,
    slot: 1,
    contentDigest: createHash("sha256").update(data).digest("hex"),
    samplers: [a1.id],
    say: (l) => void lines.push(l),
    timeoutMs: 20_000,
  });
  expect({ story, lines }).toMatchObject({ story: true });
  expect(lines.join("\n")).toMatch(/receipt verified offline/);
}, 150_000);

it("repairs the slots of a provider slashing jailed, with no grace period", async () => {
  const before = await placementsOf();
  const jailed = before[3]!;
  const bus = await EventBus.connect({
    url: natsUrl,
    prefix: d.h.env.natsPrefix,
    name: "t",
    logger: createLogger({ service: "t", level: "silent" }),
  });
  const eventId = `slashing/jailed/${jailed.providerId}/s1`;
  await bus.publish(
    "deai.slashing.provider_jailed",
    ProviderJailedSchema,
    create(ProviderJailedSchema, {
      eventId,
      occurredAt: timestampFromDate(new Date()),
      providerId: jailed.providerId,
      jailedUntil: timestampFromDate(new Date(Date.now() + 3_600_000)),
      slashId: "s1",
    }),
    eventId,
  );
  await bus.close();
  const t0 = Date.now();
  const job = await completed(3, "jailed");
  expect(Date.now() - t0).toBeLessThan(GRACE_MS);
  const slot = job.slots[0]!;
  expect(slot).toMatchObject({ slot: 3, from: jailed.providerId, reason: "jailed" });
  expect(before.map((p) => p.providerId)).not.toContain(slot.to);
  const p = await checkAnchored(job);
  expect(p.supersedes.version).toBe(job.version - 1);
  expect((await download()).equals(data)).toBe(true);
}, 120_000);

it("a repair killed with -9 resumes where it stopped and places no shard twice", async () => {
  await svc!.stop();
  svc = undefined;
  // One stripe per part, reads capped at ~1 stripe per second: the job takes about 13 s.
  const env = vars({ DA_REPAIR_PART_BYTES: String(S), DA_REPAIR_MAX_READ_BYTES_PER_S: String(K * S) });
  let proc: ServiceProcess = await spawnService(samplerMain, env, { timeoutMs: 90_000 });
  try {
    const before = await eventually(async () => {
      const ds = await db.selectFrom("datasets").select("placements").where("dataset_id", "=", datasetId).executeTakeFirstOrThrow();
      return ds.placements;
    });
    const victim = before[5]!;
    await providerClient(d.h.providers[providerIndex(victim.providerId)]!).putObject(
      victim.bucket,
      victim.key,
      Buffer.alloc(Math.ceil(data.length / (K * S)) * S, 7),
    );
    // Wrong bytes: invalid shards are repaired without a grace period.
    const mid = await eventually(
      async () => {
        const j = (await jobs()).find((x) => x.slots[0]!.slot === 5);
        return j && Number(j.stripes_done) >= 3 ? j : undefined;
      },
      60_000,
      "the repair under way",
    );
    proc.kill("SIGKILL");
    await proc.exited;
    const killed = await db.selectFrom("repair_jobs").selectAll().where("job_id", "=", mid.job_id).executeTakeFirstOrThrow();
    expect(killed.state).toBe("rebuilding");
    expect(mid.slots[0]).toMatchObject({ slot: 5, from: victim.providerId, reason: "invalid" });
    proc = await spawnService(samplerMain, env, { timeoutMs: 90_000 });
    // Resumed from the recorded part group, never from the start.
    let lowest = Number(killed.stripes_done);
    const job = await eventually(
      async () => {
        const j = await db.selectFrom("repair_jobs").selectAll().where("job_id", "=", mid.job_id).executeTakeFirstOrThrow();
        lowest = Math.min(lowest, Number(j.stripes_done));
        if (j.state === "failed") throw new Error(j.error ?? "failed");
        return j.state === "completed" ? j : undefined;
      },
      90_000,
      "the resumed repair",
    );
    expect(lowest).toBe(Number(killed.stripes_done));
    expect(job.runs).toBe(2);
    const stripes = Math.ceil(data.length / (K * S));
    expect(job.parts_sent).toBe(stripes);
    expect(Number(job.bytes_written)).toBe(stripes * S);
    const slot = job.slots[0]!;
    expect(slot).toEqual({ ...killed.slots[0], uploadId: slot.uploadId });
    expect(slot.uploadId).toBe(killed.slots[0]!.uploadId);
    // Exactly one object for the slot at the new provider, no upload left behind, one placement version.
    const server = d.h.providers[providerIndex(slot.to)]!;
    const names: string[] = [];
    for await (const o of providerClient(server).listObjectsV2("shards", `datasets/${datasetId}/`, true))
      names.push((o as { name: string }).name);
    expect(names).toEqual([slot.key]);
    expect(await server.multipartUploads("shards")).toEqual([]);
    expect((await db.selectFrom("placement_versions").select("version").where("version", "=", job.version).execute()).length).toBe(1);
    await checkAnchored(job);
    await eventually(async () => {
      const r = (await (await fetch(`${d.ingestionUrl}/v1/datasets/${datasetId}/shards/0/5/proof`)).json()) as Json;
      return r.placement?.providerId === slot.to ? true : undefined;
    }, 20_000);
    expect((await download()).equals(data)).toBe(true);
  } finally {
    proc.kill("SIGKILL");
    await proc.exited;
  }
}, 240_000);
