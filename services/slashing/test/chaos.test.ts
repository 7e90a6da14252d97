// Chaos at the slashing boundary: the built service consumes DA attestations from a private
// nats-server while samplers are partitioned, storage providers restart, NATS is down for a
// while (killed, then brought back on the same store) and a sampler-side outage makes many
// providers look unavailable at once. No honest provider loses stake: a degraded quorum and a
// mass failure jail without slashing, restarts produce AVAILABLE verdicts that are not evidence,
// a lone sampler's word is refused, replays change nothing. A control provider that really lost
// its data, attested by the full quorum on its own, is slashed: the test can fail.
//
// The samplers are simulated: the test signs re-check attestations with the world's sampler keys
// and publishes them as `deai.da.attestation_issued`, as the da-sampler's quorum would.
import { setTimeout as sleep } from "node:timers/promises";

import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { sql, type RawBuilder } from "kysely";

import { AttestationVerdict } from "@deai/contracts/deai/da/v1/da_pb";
import { AttestationIssuedSchema } from "@deai/contracts/deai/events/v1/da_pb";
import { ProviderStatus, SlashingService } from "@deai/contracts/deai/slashing/v1/slashing_pb";
import { actorKeySeed, auditBooks, createLogger, EventBus, generateActorKey, openDatabase, serviceClient, type Database } from "@deai/kit";
import { sha256Hex, type EvidenceInput } from "@deai/proofs";
import { spawnService, startPrivateNats, type PrivateNats, type ServiceProcess } from "@deai/testkit";

import { envelopeToProto } from "../src/grpc/views.js";
import { newSigner, unavailability, type Signer } from "./evidence-factory.js";
import { actorOf, slashingMain, startSlashHarness, type SlashHarness } from "./harness.js";

let nats: PrivateNats;
let h: SlashHarness;
let db: Database<unknown>;
let svc: ServiceProcess | undefined;

beforeAll(async () => {
  nats = await startPrivateNats();
  h = await startSlashHarness("slashing-chaos", { natsUrl: nats.url });
  db = openDatabase<unknown>({ url: h.env.database.url, schema: "slashing", poolSize: 2 });
}, 120_000);

afterAll(async () => {
  svc?.kill("SIGKILL");
  await db?.close();
  await h?.close();
  await nats?.close();
}, 60_000);

const n = async (q: RawBuilder<{ n: string }>): Promise<number> => Number((await q.execute(db.db)).rows[0]!.n);
const inbox = () => n(sql`select count(*) as n from kit_inbox where consumer = 'slashing-da-attestations'`);

async function until(what: string, f: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

it("slashes no honest provider through partitions, restarts, a NATS outage and a mass failure", async () => {
  svc = await spawnService(
    slashingMain,
    h.vars({ SLASHING_SERVICE_KEY: actorKeySeed(generateActorKey()), SLASHING_VETO_WINDOW_S: "3", SLASHING_TICK_MS: "100" }),
    { timeoutMs: 90_000 },
  );
  const base = `http://127.0.0.1:${svc.port}`;
  const honest = Array.from({ length: 6 }, () => newSigner());
  const control = newSigner();
  for (const p of [...honest, control])
    await serviceClient(SlashingService, { baseUrl: base, key: actorOf(p) }).bond({
      amount: { currency: "DEAI", micros: 1_000_000n },
      idempotencyKey: "b",
    });
  await sleep(1100); // infractions after the bonds
  const bus = await EventBus.connect({
    url: nats.url,
    prefix: h.env.natsPrefix,
    name: "chaos-samplers",
    logger: createLogger({ service: "chaos", level: "silent" }),
  });
  let published = 0;
  const publish = async (p: Signer, e: EvidenceInput, verdict: AttestationVerdict, eventId: string) => {
    if (e.kind !== "unavailability") throw new Error("attestations only");
    const id = sha256Hex(e.attestation.payload);
    await bus.publish(
      "deai.da.attestation_issued",
      AttestationIssuedSchema,
      create(AttestationIssuedSchema, {
        eventId,
        occurredAt: timestampFromDate(new Date()),
        attestationId: id,
        providerId: p.keyid,
        verdict,
        attestation: { attestationId: id, verdict, envelope: envelopeToProto(e.attestation) },
      }),
      eventId,
    );
    published++;
  };
  const w = h.world;
  const status = (p: Signer) => serviceClient(SlashingService, { baseUrl: base }).getProviderStatus({ providerId: p.keyid });
  try {
    // The control: really lost its data, the full quorum (3 of 3) attests it alone. Slashed.
    await publish(control, unavailability(w, control.keyid, Date.now() - 200, { variant: 1 }), AttestationVerdict.UNAVAILABLE, "c1");
    await until("the control's slash", async () => (await n(sql`select count(*) as n from slashes where state = 'applied'`)) === 1);

    // 1. Samplers partitioned: two samplers cannot reach H0 and H1 and attest them unavailable
    //    (2 of 3: the threshold, but a degraded quorum); a lone sampler's attestation of H2.
    const t = Date.now() - 200;
    await publish(honest[0]!, unavailability(w, honest[0]!.keyid, t, { signers: 2, variant: 2 }), AttestationVerdict.UNAVAILABLE, "p0");
    await publish(honest[1]!, unavailability(w, honest[1]!.keyid, t, { signers: 2, variant: 3 }), AttestationVerdict.UNAVAILABLE, "p1");
    await publish(honest[2]!, unavailability(w, honest[2]!.keyid, t, { signers: 1, variant: 4 }), AttestationVerdict.UNAVAILABLE, "p2");
    // 2. Providers restarted: the re-checks of H2 and H3 found them back: AVAILABLE verdicts.
    await publish(honest[2]!, unavailability(w, honest[2]!.keyid, t, { variant: 5 }), AttestationVerdict.AVAILABLE, "r2");
    await publish(honest[3]!, unavailability(w, honest[3]!.keyid, t, { variant: 6 }), AttestationVerdict.AVAILABLE, "r3");
    await until("the partition's attestations", async () => (await inbox()) === published);

    // 3. NATS down for a while: the service keeps answering, not ready; then NATS comes back.
    await nats.stop();
    await sleep(3000);
    expect((await status(honest[3]!)).status).toBe(ProviderStatus.ACTIVE);
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    await nats.start();
    await until("readiness after NATS returns", async () => (await fetch(`${base}/readyz`)).status === 200, 60_000);
    // The samplers re-publish what they could not deliver: the same events again (deduplicated by
    // NATS or the inbox) and the same attestation under new event ids (the evidence id holds).
    await until("the publisher's reconnect", async () =>
      publish(honest[0]!, unavailability(w, honest[0]!.keyid, t, { signers: 2, variant: 2 }), AttestationVerdict.UNAVAILABLE, "p0").then(
        () => true,
        () => false,
      ),
    );
    published--; // a duplicate event id: JetStream drops it
    await publish(
      honest[1]!,
      unavailability(w, honest[1]!.keyid, t, { signers: 2, variant: 3 }),
      AttestationVerdict.UNAVAILABLE,
      "p1-again",
    );
    await publish(honest[3]!, unavailability(w, honest[3]!.keyid, t, { variant: 6 }), AttestationVerdict.AVAILABLE, "r3-again");

    // 4. A sampler-side outage: the full quorum sees H3, H4 and H5 fail at once.
    const m = Date.now() - 200;
    for (const [i, p] of honest.slice(3).entries())
      await publish(p, unavailability(w, p.keyid, m, { variant: 10 + i }), AttestationVerdict.UNAVAILABLE, `m${i}`);
    await until("every attestation consumed", async () => (await inbox()) === published);

    // Every veto window passes; the tick applies whatever was proposed.
    await sleep(3500);
    await until("all slashes applied", async () => (await n(sql`select count(*) as n from slashes where state = 'pending_veto'`)) === 0);
    const stakes = await sql<{ id: string; bal: string }>`
      select id, (credits_posted - debits_posted - debits_pending)::text as bal from money_accounts where kind = 'stake'`.execute(db.db);
    const bal = new Map(stakes.rows.map((r) => [r.id.slice("stake:".length), BigInt(r.bal)]));
    for (const p of honest) expect({ provider: p.keyid, bonded: bal.get(p.keyid) }).toEqual({ provider: p.keyid, bonded: 1_000_000n });
    expect(bal.get(control.keyid)).toBe(990_000n);
    const why = await sql<{ provider_id: string; suspended: string | null; taken: string }>`
      select provider_id, record->'penalty'->>'suspended' as suspended, taken::text as taken from slashes`.execute(db.db);
    const byProvider = new Map(why.rows.map((r) => [r.provider_id, r]));
    // H0, H1: jailed without slashing (degraded quorum); H2: the lone sampler refused, restarts ignored; H3–H5: mass failure.
    expect(byProvider.get(honest[0]!.keyid)?.suspended).toMatch(/sampler quorum degraded: 2 of 3/);
    expect(byProvider.get(honest[1]!.keyid)?.suspended).toMatch(/sampler quorum degraded/);
    expect(byProvider.has(honest[2]!.keyid)).toBe(false);
    for (const p of honest.slice(3)) expect(byProvider.get(p.keyid)?.suspended).toMatch(/mass failure/);
    expect(byProvider.get(control.keyid)).toMatchObject({ taken: "10000" });
    expect(await n(sql`select count(*) as n from evidence`)).toBe(6);
    expect((await auditBooks(db.db)).problems).toEqual([]);
  } finally {
    await bus.close().catch(() => undefined);
  }
  svc.kill("SIGTERM");
  expect(await svc.exited).toBe(0);
}, 300_000);
