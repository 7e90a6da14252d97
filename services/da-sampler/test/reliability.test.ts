// Reliability and bad input, end to end: a real ledger, ingestion upload over 6 in-process S3
// providers, each reached by the sampler through a delay proxy; one in-process sampler process
// with two identities (quorum 2 of 2). Rounds are driven directly (the hourly schedule keeps out
// of the way), so each case names its own slot and round.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { AttestationIssuedSchema, ProviderAvailabilityChangedSchema, RecheckRequestedSchema } from "@deai/contracts/deai/events/v1/da_pb";
import { createLogger, EventBus, generateActorKey, startService, type RunningService } from "@deai/kit";
import { natsUrl, startDelayProxy, type DelayProxy } from "@deai/testkit";
import { dsseSign, ed25519DsseSigner, IN_TOTO_PAYLOAD_TYPE } from "@deai/proofs";
import pg from "pg";

import { envelopeToProto } from "../src/app/envelopes.js";
import { leafOf } from "../src/app/catalog.js";
import { loadDaSamplerConfig } from "../src/config.js";
import { daSamplerDefinition, type SamplerParts } from "../src/definition.js";
import type { DaSamplerDb } from "../src/store/tables.js";
import { bytesOf, newSampler, providerClient, startDaHarness, uploadAll, type DaHarness } from "./harness.js";

type Json = ReturnType<typeof JSON.parse>;
const a1 = newSampler();
const a2 = newSampler();
const all = [a1, a2];
const HOUR = 3_600_000;
let d: DaHarness;
let svc: RunningService<DaSamplerDb>;
let parts: SamplerParts;
let dbUrl: string;
let datasetId: string;
const proxies = new Map<string, DelayProxy>();
let bus: EventBus;
const flips: { provider: string; state: number; previous: number; attestation: string }[] = [];
/** Distinct round start times, an hour apart, far from the scheduled rounds. */
let nextRound = Math.floor(Date.now() / HOUR + 48) * HOUR;
const roundAt = (): Date => new Date((nextRound += HOUR));

async function eventually<T>(f: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 200));
  }
}

const identity = (s: { id: string }) => parts.ctx.identities.find((i) => i.id === s.id)!;

async function providerOfSlot(slot: number): Promise<{ id: string; index: number; key: string; bucket: string }> {
  const p = (await parts.catalog.get(datasetId)).placements[slot]!;
  return { id: p.providerId, index: Number(p.providerId.slice(1)), key: p.key, bucket: p.bucket };
}

async function evidenceFor(slot: number) {
  return parts.ctx.db.selectFrom("attestations").selectAll().where("evidence", "=", true).where("slot", "=", slot).execute();
}

beforeAll(async () => {
  d = await startDaHarness("da-rel", 6);
  const up = await uploadAll(d.ingestionUrl, generateActorKey(), bytesOf(200_000, 11), { k: 4, m: 2, shardSize: 4096 });
  datasetId = up.done.datasetId as string;
  const providers = JSON.parse(d.h.providersJson()) as Json[];
  for (const p of providers) proxies.set(p.id, await startDelayProxy(p.endpoint));
  const viaProxies = JSON.stringify(providers.map((p) => ({ ...p, endpoint: proxies.get(p.id)!.endpoint })));
  const db = await d.database();
  dbUrl = db.url;
  const config = loadDaSamplerConfig(
    d.samplerVars(db, all, all, {
      DA_PROVIDERS: viaProxies,
      DA_WINDOW_MS: String(24 * HOUR),
      DA_ROUND_INTERVAL_MS: String(HOUR),
      DA_SAMPLE_DEADLINE_MS: "1000",
      DA_SAMPLE_TIMEOUT_MS: "3000",
      DA_SUMMARY_ROUNDS: "1000",
      DA_QUORUM_THRESHOLD: "2",
    }),
  );
  svc = await startService(daSamplerDefinition(config, { built: (p) => (parts = p) }), config);
  await eventually(() => parts.catalog.get(datasetId), 60_000);
  bus = await EventBus.connect({
    url: natsUrl,
    prefix: d.h.env.natsPrefix,
    name: "t",
    logger: createLogger({ service: "t", level: "silent" }),
  });
  await bus.consume({
    domain: "da",
    durable: "t-flips",
    subject: "deai.da.provider_availability_changed",
    schema: ProviderAvailabilityChangedSchema,
    handler: async (e) =>
      void flips.push({ provider: e.providerId, state: e.state, previous: e.previousState, attestation: e.attestationId }),
  });
}, 240_000);

afterAll(async () => {
  await bus?.close();
  await svc?.stop();
  for (const p of proxies.values()) await p.close();
  await d?.close();
}, 60_000);

it("a provider slow but within the deadline passes: no fault, no re-check", async () => {
  const p = await providerOfSlot(0);
  // A first read opens the client's connections (each exchange pays the delay); then every
  // answer is held back 250 ms: slow, within the 1 s deadline.
  const ds = await parts.catalog.get(datasetId);
  expect((await parts.ctx.reader.sample(p.id, p.key, 0, ds.shardSize, leafOf(ds, 0, 0))).outcome).toBe("ok");
  proxies.get(p.id)!.delayMs = 250;
  try {
    const r = await parts.rounds.run(identity(a1), datasetId, 0, roundAt());
    if (process.env.DA_DEBUG)
      console.log(
        "latencies",
        r.samples.map((s) => s.latencyMs),
      );
    expect(r.samples.length).toBeGreaterThan(0);
    expect(r.samples.map((s) => [s.outcome, s.latencyMs >= 250])).toEqual(r.samples.map(() => ["ok", true]));
    expect(r.recheckId).toBeUndefined();
  } finally {
    proxies.get(p.id)!.delayMs = 0;
  }
  const slot = await parts.ctx.db.selectFrom("slot_states").selectAll().where("slot", "=", 0).executeTakeFirstOrThrow();
  expect(slot.state).toBe("available");
}, 60_000);

it("a provider answering past the deadline is at fault ('late'), and the quorum attests it", async () => {
  const p = await providerOfSlot(2);
  proxies.get(p.id)!.delayMs = 1600;
  try {
    const r = await parts.rounds.run(identity(a1), datasetId, 2, roundAt());
    expect(new Set(r.samples.map((s) => s.outcome))).toEqual(new Set(["late"]));
    expect(r.recheckId).toBeDefined();
    const [ev] = await eventually(async () => ((await evidenceFor(2)).length > 0 ? evidenceFor(2) : undefined), 45_000);
    expect(ev!.provider_id).toBe(p.id);
    expect(JSON.parse(Buffer.from(ev!.payload).toString()).predicate.trigger.outcome).toBe("late");
  } finally {
    proxies.get(p.id)!.delayMs = 0;
  }
  // The provider's availability flipped once, and was published.
  const flip = await eventually(async () => flips.find((f) => f.provider === p.id));
  expect(flip.previous).toBe(1);
  expect(flip.state).toBe(2);
  expect(flip.attestation).toHaveLength(64);
}, 90_000);

it("a provider that is down is attested unavailable; back up, a passing round makes it available again", async () => {
  const p = await providerOfSlot(3);
  await d.h.providers[p.index]!.stop();
  try {
    const r = await parts.rounds.run(identity(a1), datasetId, 3, roundAt());
    expect(new Set(r.samples.map((s) => s.outcome))).toEqual(new Set(["error"]));
    expect(r.recheckId).toBeDefined();
    const [ev] = await eventually(async () => ((await evidenceFor(3)).length > 0 ? evidenceFor(3) : undefined), 45_000);
    expect(JSON.parse(Buffer.from(ev!.payload).toString()).predicate.trigger.outcome).toBe("error");
    // Back-off: the next round against the gone provider is not sent at once.
    expect((await parts.rounds.run(identity(a1), datasetId, 3, roundAt())).skipped).toBe("backoff");
  } finally {
    await d.h.providers[p.index]!.start();
  }
  const r = await parts.rounds.run(identity(a2), datasetId, 3, roundAt());
  expect(new Set(r.samples.map((s) => s.outcome))).toEqual(new Set(["ok"]));
  const slot = await parts.ctx.db.selectFrom("slot_states").selectAll().where("slot", "=", 3).executeTakeFirstOrThrow();
  expect(slot.state).toBe("available");
  const mine = await eventually(async () => {
    const f = flips.filter((x) => x.provider === p.id);
    return f.length >= 2 ? f : undefined;
  });
  expect(mine.map((f) => f.state)).toEqual([2, 1]);
}, 120_000);

it("wrong bytes, and the right bytes of another shard, are invalid", async () => {
  const ds = await parts.catalog.get(datasetId);
  const p = await providerOfSlot(4);
  const client = providerClient(d.h.providers[p.index]!);
  const chunks: Buffer[] = [];
  for await (const c of await client.getObject(p.bucket, p.key)) chunks.push(c as Buffer);
  const object = Buffer.concat(chunks);
  const S = ds.shardSize;
  object.writeUInt8(object.readUInt8(S + 17) ^ 0xff, S + 17); // stripe 1: one flipped byte
  object.copy(object, 5 * S, 3 * S, 4 * S); // stripe 5 now holds stripe 3's (valid) bytes
  await client.putObject(p.bucket, p.key, object);
  const r = await parts.app.requestSample(a1.id, { datasetId, slot: 4, samples: 0, stripes: [1n, 5n, 0n] });
  expect(r.results.map((x) => x.outcome)).toEqual([3, 3, 1]); // INVALID, INVALID, OK
  expect(Buffer.from(r.results[1]!.observedLeafHash).equals(leafOf(ds, 3, 4))).toBe(true);
  expect(Buffer.from(r.results[1]!.expectedLeafHash).equals(leafOf(ds, 5, 4))).toBe(true);
}, 60_000);

it("tolerates losing its Postgres connections", async () => {
  const admin = new pg.Client({ connectionString: dbUrl.replace(/\/[^/]+$/, "/postgres") });
  await admin.connect();
  const name = new URL(dbUrl).pathname.slice(1);
  const killed = await admin.query(
    "select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()",
    [name],
  );
  await admin.end();
  expect(killed.rowCount).toBeGreaterThan(0);
  // The pool drops the dead connections; the next round is recorded (at worst the first try fails).
  const r = await eventually(async () => {
    const x = await parts.rounds.run(identity(a2), datasetId, 5, roundAt());
    return x.samples.length > 0 ? x : undefined;
  }, 20_000);
  expect(new Set(r.samples.map((s) => s.outcome))).toEqual(new Set(["ok"]));
  expect((await fetch(`http://127.0.0.1:${svc.port}/readyz`)).status).toBe(200);
}, 60_000);

describe("forged and duplicate attestations and re-check requests", () => {
  const snapshot = async () => ({
    attestations: await parts.ctx.db
      .selectFrom("attestations")
      .select(["attestation_id", "signers", "ledger_index"])
      .orderBy("attestation_id")
      .execute(),
    rechecks: await parts.ctx.db.selectFrom("rechecks").select(["recheck_id", "state"]).orderBy("recheck_id").execute(),
    votes: await parts.ctx.db
      .selectFrom("votes")
      .select(["attestation_id", "sampler_id"])
      .orderBy("attestation_id")
      .orderBy("sampler_id")
      .execute(),
  });

  it("are refused with precise errors and change nothing", async () => {
    const row = await eventually(async () => (await evidenceFor(2)).find((x) => x.ledger_index !== null));
    const qa = await parts.attestations.get(row.attestation_id);
    expect(qa.receipt).toBeDefined();
    const issued = (mutate: (a: typeof qa) => void = () => undefined) => {
      const a = structuredClone(qa);
      mutate(a);
      return create(AttestationIssuedSchema, {
        eventId: "t",
        occurredAt: timestampFromDate(new Date()),
        attestationId: a.attestationId,
        providerId: a.providerId,
        datasetId: a.datasetId,
        slot: a.slot,
        verdict: a.verdict,
        attestation: a,
      });
    };
    const before = await snapshot();
    await expect(parts.attestations.accept(issued())).rejects.toMatchObject({ kind: "already_exists" });
    await expect(parts.attestations.accept(issued((a) => void (a.envelope!.signatures[0]!.sig[5]! ^= 1)))).rejects.toMatchObject({
      kind: "invalid_argument",
      message: expect.stringMatching(/signature|verif/i),
    });
    const stranger = ed25519DsseSigner(new Uint8Array(32).fill(7));
    const strangerSig = dsseSign(IN_TOTO_PAYLOAD_TYPE, qa.envelope!.payload, [stranger]).signatures[0]!;
    await expect(
      parts.attestations.accept(
        issued((a) =>
          a.envelope!.signatures.splice(1, 1, { ...a.envelope!.signatures[0]!, keyid: strangerSig.keyid, sig: strangerSig.sig }),
        ),
      ),
    ).rejects.toMatchObject({ kind: "invalid_argument", message: expect.stringMatching(/unknown|not a known|sampler/i) });
    await expect(
      parts.attestations.accept(issued((a) => a.envelope!.signatures.splice(1, 1, { ...a.envelope!.signatures[0]! }))),
    ).rejects.toMatchObject({ kind: "invalid_argument", message: expect.stringMatching(/twice|distinct|duplicate|same/i) });
    await expect(parts.attestations.accept(issued((a) => delete (a as { receipt?: unknown }).receipt))).rejects.toMatchObject({
      kind: "invalid_argument",
    });
    // A re-check request that is not what it claims.
    const recheck = await parts.ctx.db
      .selectFrom("rechecks")
      .selectAll()
      .where("recheck_id", "=", row.attestation_id)
      .executeTakeFirstOrThrow();
    const request = (signer: { keyid: string; sign(m: Uint8Array): Uint8Array }, requesterId: string) =>
      create(RecheckRequestedSchema, {
        eventId: "t",
        occurredAt: timestampFromDate(new Date()),
        recheckId: recheck.recheck_id,
        envelope: envelopeToProto(dsseSign(IN_TOTO_PAYLOAD_TYPE, recheck.payload, [signer])),
        requesterId,
      });
    expect(() => parts.quorum.checkRequest(request(stranger, stranger.keyid))).toThrow(
      expect.objectContaining({ kind: "permission_denied" }),
    );
    const forged = request(stranger, a1.id);
    forged.envelope!.signatures[0]!.keyid = a1.id;
    expect(() => parts.quorum.checkRequest(forged)).toThrow(expect.objectContaining({ kind: "invalid_argument" }));
    const a1Signer = ed25519DsseSigner(Buffer.from(a1.seed, "base64url"));
    const twice = request(a1Signer, a1.id);
    twice.envelope!.signatures.push(twice.envelope!.signatures[0]!);
    expect(() => parts.quorum.checkRequest(twice)).toThrow(/exactly one signature/);
    // Through NATS too: the forged attestation is acked, refused, nothing stored.
    const nats = await EventBus.connect({
      url: natsUrl,
      prefix: d.h.env.natsPrefix,
      name: "t2",
      logger: createLogger({ service: "t", level: "silent" }),
    });
    const bad = issued((a) => void (a.envelope!.signatures[0]!.sig[5]! ^= 1));
    await nats.publish(
      "deai.da.attestation_issued",
      AttestationIssuedSchema,
      { ...bad, attestationId: "f".repeat(64), eventId: "forged-a" },
      "forged-a",
    );
    await nats.close();
    await new Promise((r) => setTimeout(r, 1500));
    expect(await snapshot()).toEqual(before);
  }, 60_000);
});
