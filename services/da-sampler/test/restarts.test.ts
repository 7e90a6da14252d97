// Restarts: the built sampler binary (two identities, quorum 2 of 2) killed with SIGKILL in the
// middle of rounds resumes without doubling a round; a private NATS server killed and started
// again while a provider loses a slot delays the evidence but neither loses nor doubles it.
import { openDatabase, type ActorKey, type Database } from "@deai/kit";
import {
  spawnService,
  startPrivateNats,
  type PrivateNats,
  type ServiceProcess,
  type TestDatabase,
  startDelayProxy,
  type DelayProxy,
} from "@deai/testkit";
import { generateActorKey } from "@deai/kit";
import { parseSamplingAttestation } from "@deai/proofs";
import type { Kysely } from "kysely";

import type { DaSamplerDb } from "../src/store/tables.js";
import { bytesOf, newSampler, providerClient, samplerMain, startDaHarness, uploadAll, type DaHarness } from "./harness.js";

type Json = ReturnType<typeof JSON.parse>;
const b1 = newSampler();
const b2 = newSampler();
const owner: ActorKey = generateActorKey();
let nats: PrivateNats;
let d: DaHarness;
let db: TestDatabase;
let store: Database<DaSamplerDb>;
let q: Kysely<DaSamplerDb>;
let vars: Record<string, string>;
let sampler: ServiceProcess;
const proxies: DelayProxy[] = [];

async function eventually<T>(f: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 200));
  }
}

const roundCount = async (): Promise<number> =>
  Number(
    (
      await q
        .selectFrom("rounds")
        .select((eb) => eb.fn.countAll<string>().as("n"))
        .executeTakeFirstOrThrow()
    ).n,
  );

beforeAll(async () => {
  nats = await startPrivateNats();
  d = await startDaHarness("da-restart", 6, { natsUrl: nats.url });
  const up = await uploadAll(d.ingestionUrl, owner, bytesOf(200_000, 5), { k: 4, m: 2, shardSize: 4096 });
  expect(up.done.datasetId).toBeDefined();
  const providers = JSON.parse(d.h.providersJson()) as Json[];
  for (const p of providers) proxies.push(await startDelayProxy(p.endpoint));
  // Reads take ~0.4 s: a kill lands in the middle of rounds.
  for (const p of proxies) p.delayMs = 100;
  db = await d.database();
  vars = d.samplerVars(db, [b1, b2], [b1, b2], {
    DA_PROVIDERS: JSON.stringify(providers.map((p, i) => ({ ...p, endpoint: proxies[i]!.endpoint }))),
    DA_SUMMARY_ROUNDS: "2",
    DA_QUORUM_THRESHOLD: "2",
  });
  sampler = await spawnService(samplerMain, vars, { timeoutMs: 90_000 });
  store = openDatabase<DaSamplerDb>({ url: db.url, schema: "da_sampler", poolSize: 2 });
  q = store.db;
}, 240_000);

afterAll(async () => {
  sampler?.kill("SIGKILL");
  await sampler?.exited;
  await store?.close();
  for (const p of proxies) await p.close();
  await d?.close();
  await nats?.close();
}, 60_000);

it("killed with SIGKILL mid-round, resumes without doubling or losing a round", async () => {
  await eventually(async () => ((await roundCount()) >= 12 ? true : undefined), 60_000);
  sampler.kill("SIGKILL");
  await sampler.exited;
  const killedAt = new Date();
  const before = await roundCount();
  sampler = await spawnService(samplerMain, vars, { timeoutMs: 90_000 });
  await eventually(async () => ((await roundCount()) >= before + 24 ? true : undefined), 60_000);
  const rounds = await q.selectFrom("rounds").selectAll().execute();
  expect(rounds.some((r) => r.started_at > killedAt)).toBe(true);
  // Each round's samples were written with it, in one transaction: none orphaned, none twice.
  const samples = await q
    .selectFrom("samples")
    .select(["sampler_id", "dataset_id", "slot", "sampled_at"])
    .where("purpose", "=", "round")
    .execute();
  expect(samples.length).toBe(rounds.reduce((n, r) => n + r.samples, 0));
  // A round is in at most one `rounds` attestation, and every attestation names rounds that exist.
  const atts = await q.selectFrom("attestations").selectAll().where("kind", "=", "rounds").execute();
  const seen = new Set<string>();
  const known = new Set(rounds.map((r) => `${r.sampler_id}/${r.slot}/${r.round}`));
  for (const a of atts) {
    const p = parseSamplingAttestation(a.payload);
    for (const r of p.rounds!) {
      const k = `${p.sampler}/${p.slot}/${r.round}`;
      expect(seen.has(k)).toBe(false);
      expect(known.has(k)).toBe(true);
      seen.add(k);
    }
  }
  expect(atts.length).toBeGreaterThan(0);
}, 180_000);

it("a NATS restart delays the quorum's evidence but neither loses nor doubles it", async () => {
  const placement = ((await q.selectFrom("datasets").select("placements").executeTakeFirstOrThrow()).placements as unknown as Json[])[1];
  await nats.stop();
  const index = Number(String(placement.providerId).slice(1));
  await providerClient(d.h.providers[index]!).removeObject(placement.bucket, placement.key);
  // Rounds fail and a re-check is requested while NATS is down (it waits in the outbox).
  await eventually(
    async () => ((await q.selectFrom("rechecks").selectAll().where("slot", "=", 1).execute()).length > 0 ? true : undefined),
    60_000,
  );
  await new Promise((r) => setTimeout(r, 2000));
  await nats.start();
  const evidence = await eventually(async () => {
    const rows = await q.selectFrom("attestations").selectAll().where("evidence", "=", true).where("slot", "=", 1).execute();
    return rows.length > 0 && rows.every((r) => r.ledger_index !== null) ? rows : undefined;
  }, 90_000);
  await new Promise((r) => setTimeout(r, 3000));
  expect(await q.selectFrom("attestations").selectAll().where("evidence", "=", true).where("slot", "=", 1).execute()).toHaveLength(1);
  expect(evidence[0]!.provider_id).toBe(placement.providerId);
  expect((await fetch(`http://127.0.0.1:${sampler.port}/readyz`)).status).toBe(200);
}, 180_000);
