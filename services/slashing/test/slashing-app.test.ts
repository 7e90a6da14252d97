// The slashing use cases against real Postgres, time from a ManualClock (never sleeping):
// stake, unbonding that stays slashable, the veto window and council, money split to zero, and
// the property test: randomized evidence (valid, duplicates, re-signed copies, reorderings,
// expired, forged) from two replicas at once, then at most one penalty per (provider, kind,
// window), every forgery refused, books consistent. SLASHING_PROPERTY_COUNT sets the count.
import { randomBytes } from "node:crypto";

import { sql } from "kysely";

import { auditBooks, getAccount, getTransfer, ManualClock, migrate, openDatabase, postedBalance, type Database } from "@deai/kit";
import {
  DEFAULT_PENALTY_PARAMS,
  dsseSign,
  IN_TOTO_PAYLOAD_TYPE,
  parseSamplingAttestation,
  verifySlashRecord,
  vetoPayload,
  type EvidenceInput,
  type EvidenceKindName,
} from "@deai/proofs";
import { createTestDatabase, type TestDatabase } from "@deai/testkit";

import { Slashing } from "../src/app/slashing.js";
import { DEFAULT_TIMING, type SlashingParams } from "../src/domain/parameters.js";
import { migrations } from "../src/store/migrations.js";
import { evidenceOf, forge, leaseBreach, newSigner, newWorld, type Signer } from "./evidence-factory.js";

const DAY = 86_400_000;
const w = newWorld();
const council = [newSigner(), newSigner(), newSigner()];
const params: SlashingParams = {
  currency: "DEAI",
  ...DEFAULT_TIMING,
  minStake: 1_000n,
  council: council.map((c) => c.keyid),
  vetoThreshold: 2,
  trust: w.trust,
  penalty: DEFAULT_PENALTY_PARAMS,
};

let tdb: TestDatabase;
let database: Database<unknown>;
const opened: Database<unknown>[] = [];
let schemas = 0;
const clock = new ManualClock(new Date("2026-03-01T00:00:00Z"));

beforeAll(async () => {
  tdb = await createTestDatabase("slashing-app");
});
afterAll(async () => {
  for (const d of opened) await d.close();
  await tdb.drop();
});

async function fresh(): Promise<Slashing> {
  // A fresh schema per test: the books refuse TRUNCATE (transfers are immutable).
  database = openDatabase<unknown>({ url: tdb.url, schema: `slashing_${++schemas}`, poolSize: 12 });
  opened.push(database);
  await migrate(database, migrations);
  const s = new Slashing(database.db as never, clock, params, new Uint8Array(randomBytes(32)));
  await s.init();
  return s;
}

describe("stake and slashes", () => {
  it("a slash after the veto window takes the base fraction of the stake held at the infraction, split to zero, and verifies offline", async () => {
    const s = await fresh();
    const p = newSigner();
    await s.bond(p.keyid, 1_000_000n, "b1");
    clock.advance(1000);
    const at = clock.now().getTime();
    clock.advance(60_000);
    // Bonded after the infraction: not part of the stake it applies to.
    await s.bond(p.keyid, 5_000_000n, "b2");
    const r = await s.submitEvidence(evidenceOf(w, "unavailability", p, at), "reporter-1");
    expect(r).toMatchObject({ duplicate: false, newPenalty: true });
    expect((await s.stake(p.keyid)).status).toBe("jailed");
    expect(await s.applyDue()).toBe(0);
    clock.advance(params.vetoWindowMs);
    expect(await s.applyDue()).toBe(1);
    expect(await s.applyDue()).toBe(0);
    const st = await s.stake(p.keyid);
    expect(st.slashedTotal).toBe(10_000n);
    expect(st.bonded).toBe(6_000_000n - 10_000n);
    const audit = await auditBooks(database.db);
    expect(audit.problems).toEqual([]);
    const v = verifySlashRecord(await s.signedRecord(r.slashId, "applied"), { serviceKey: s.serviceKey });
    expect(v.penalty.amount).toBe(10_000n);
    expect(v.penalty.reporterReward + v.penalty.repairShare + v.penalty.treasury).toBe(10_000n);
    // The jail ends on the clock.
    clock.advance(600_000);
    expect(await s.releaseJails()).toBe(1);
    expect((await s.stake(p.keyid)).status).toBe("active");
  });

  it("the repair share goes to whoever repaired the slot, once, after the repair; a repair before the infraction does not count", async () => {
    const s = await fresh();
    const p = newSigner();
    await s.bond(p.keyid, 1_000_000n, "b1");
    clock.advance(1000);
    const at = clock.now().getTime();
    const e = evidenceOf(w, "unavailability", p, at) as Extract<EvidenceInput, { kind: "unavailability" }>;
    const { datasetId, slot } = parseSamplingAttestation(e.attestation.payload);
    // An older repair of the same slot (before this infraction) is not this one's.
    await s.recordRepair({ datasetId, slots: [slot], ledgerIndex: 1n, repairer: "sampler-old", completedAt: new Date(at - 60_000) });
    clock.advance(60_000);
    const r = await s.submitEvidence(e, "reporter-1");
    clock.advance(params.vetoWindowMs);
    expect(await s.applyDue()).toBe(1);
    const share = BigInt((await getTransfer(database.db, `slash:${r.slashId}:repair`)).amount);
    expect(share).toBe(2_000n); // 20 % of the 1 % taken
    expect(await s.payRepairs()).toBe(0); // not repaired yet: the share waits in the pool
    expect(postedBalance(await getAccount(database.db, "repair-pool"))).toBe(share);
    const completedAt = clock.now();
    expect(await s.recordRepair({ datasetId, slots: [slot, slot], ledgerIndex: 7n, repairer: "sampler-a", completedAt })).toBe(1);
    expect(await s.recordRepair({ datasetId, slots: [slot], ledgerIndex: 7n, repairer: "sampler-a", completedAt })).toBe(0);
    expect(await s.payRepairs()).toBe(1);
    expect(await s.payRepairs()).toBe(0);
    expect(postedBalance(await getAccount(database.db, "repairer:sampler-a"))).toBe(share);
    expect(postedBalance(await getAccount(database.db, "repair-pool"))).toBe(0n);
    await expect(getAccount(database.db, "repairer:sampler-old")).rejects.toThrow(/not found/);
    expect((await auditBooks(database.db)).problems).toEqual([]);
  });

  it("unbonding after misbehaving does not escape: the hold shrinks by the slash, the rest returns at maturity", async () => {
    const s = await fresh();
    const p = newSigner();
    await s.bond(p.keyid, 1_000_000n, "b");
    clock.advance(1000);
    const at = clock.now().getTime();
    await s.unbond(p.keyid, 1_000_000n, "u");
    await expect(s.unbond(p.keyid, 1n, "u2")).rejects.toThrow(/exceeds the bonded stake 0/);
    const r = await s.submitEvidence(evidenceOf(w, "equivocation", p, at), "rep");
    expect((await s.stake(p.keyid)).status).toBe("tombstoned");
    clock.advance(params.vetoWindowMs);
    await s.applyDue();
    const st = await s.stake(p.keyid);
    expect(st.unbonding[0]!.amount).toBe(950_000n);
    clock.advance(params.unbondingDelayMs);
    expect(await s.matureUnbondings()).toBe(1);
    expect((await s.stake(p.keyid)).unbonding).toEqual([]);
    expect((await auditBooks(database.db)).problems).toEqual([]);
    await expect(s.bond(p.keyid, 1n, "again")).rejects.toThrow(/tombstoned/);
    await expect(s.submitEvidence(evidenceOf(w, "lease-breach", p, clock.now().getTime()), "rep")).rejects.toThrow(/tombstoned/);
    expect(r.newPenalty).toBe(true);
  });

  it("refuses expired and forged evidence with nothing stored", async () => {
    const s = await fresh();
    const p = newSigner();
    const old = clock.now().getTime() - params.evidenceMaxAgeMs - 1000;
    await expect(s.submitEvidence(evidenceOf(w, "unavailability", p, old), "r")).rejects.toThrow(/maximum age/);
    await expect(s.submitEvidence(forge(evidenceOf(w, "unavailability", p, clock.now().getTime()), "flip"), "r")).rejects.toThrow(
      /does not verify/,
    );
    const n = await sql<{
      n: number;
    }>`select (select count(*) from evidence) + (select count(*) from slashes) + (select count(*) from providers) as n`.execute(
      database.db,
    );
    expect(Number(n.rows[0]!.n)).toBe(0);
  });

  it("a k-of-n council vetoes a lease-breach slash inside its window with signed vetoes; objective kinds cannot be vetoed", async () => {
    const s = await fresh();
    const p = newSigner();
    await s.bond(p.keyid, 1_000_000n, "b");
    clock.advance(1000);
    const r = await s.submitEvidence(leaseBreach(w, p.keyid, clock.now().getTime()), "rep");
    const evidenceId = r.evidenceId;
    const vetoBy = (c: Signer) =>
      dsseSign(IN_TOTO_PAYLOAD_TYPE, vetoPayload({ slashId: r.slashId, evidenceId, member: c.keyid, reason: "operator outage" }), [c]);
    await expect(s.veto(r.slashId, newSigner().keyid, vetoBy(council[0]!))).rejects.toThrow(/not on the veto council/);
    expect(await s.veto(r.slashId, council[0]!.keyid, vetoBy(council[0]!))).toEqual({ vetoed: false, vetoes: 1, threshold: 2 });
    expect(await s.veto(r.slashId, council[1]!.keyid, vetoBy(council[1]!))).toEqual({ vetoed: true, vetoes: 2, threshold: 2 });
    expect((await s.stake(p.keyid)).status).toBe("active");
    clock.advance(params.vetoWindowMs);
    expect(await s.applyDue()).toBe(0);
    const rec = verifySlashRecord(await s.signedRecord(r.slashId, "vetoed"), {
      serviceKey: s.serviceKey,
      council: { members: params.council, threshold: params.vetoThreshold },
    });
    expect(rec.checks.join("\n")).toMatch(/vetoed by 2 of 3 council members \(threshold 2\)/);
    const q = newSigner();
    await s.bond(q.keyid, 1_000_000n, "b");
    const eq = await s.submitEvidence(evidenceOf(w, "equivocation", q, clock.now().getTime()), "rep");
    const vq = dsseSign(
      IN_TOTO_PAYLOAD_TYPE,
      vetoPayload({ slashId: eq.slashId, evidenceId: eq.evidenceId, member: council[0]!.keyid, reason: "x" }),
      [council[0]!],
    );
    await expect(s.veto(eq.slashId, council[0]!.keyid, vq)).rejects.toThrow(/cannot be vetoed/);
    // After the window, a veto is too late.
    const r2 = await s.submitEvidence(leaseBreach(w, newSigner().keyid, clock.now().getTime(), "lease-9"), "rep");
    clock.advance(params.vetoWindowMs);
    const late = dsseSign(
      IN_TOTO_PAYLOAD_TYPE,
      vetoPayload({ slashId: r2.slashId, evidenceId: r2.evidenceId, member: council[0]!.keyid, reason: "x" }),
      [council[0]!],
    );
    await expect(s.veto(r2.slashId, council[0]!.keyid, late)).rejects.toThrow(/veto window .* closed/);
  });
});

describe("liveness guard at apply time", () => {
  it("a mass failure whose first evidence was proposed with a penalty is suspended when the veto window ends: jailed, nothing taken", async () => {
    const s = await fresh();
    const ps = Array.from({ length: 5 }, () => newSigner());
    for (const p of ps) await s.bond(p.keyid, 1_000_000n, "b");
    clock.advance(1000);
    const at = clock.now().getTime();
    // The first fault arrives alone: 1 of 5 faulting, so it is proposed with its 1 %.
    const first = await s.submitEvidence(evidenceOf(w, "unavailability", ps[0]!, at), "r");
    const proposed = await s.slash(first.slashId);
    expect(proposed.amount).toBe(10_000n);
    // The rest of the outage arrives within the detection window: 3 of 5 faulted together.
    clock.advance(60_000);
    await s.submitEvidence(evidenceOf(w, "unavailability", ps[1]!, at + 500), "r");
    await s.submitEvidence(evidenceOf(w, "unavailability", ps[2]!, at + 900), "r");
    clock.advance(params.vetoWindowMs);
    expect(await s.applyDue()).toBe(3);
    for (const p of ps.slice(0, 3)) expect((await s.stake(p.keyid)).bonded).toBe(1_000_000n);
    const rec = verifySlashRecord(await s.signedRecord(first.slashId, "applied"), { serviceKey: s.serviceKey });
    expect(rec.penalty.suspended).toMatch(/mass failure: 3 of 5/);
    expect(rec.predicate.taken).toBe("0");
    expect((await auditBooks(database.db)).problems).toEqual([]);
  });
});

const COUNT = Number(process.env.SLASHING_PROPERTY_COUNT ?? 1000);
const KINDS: EvidenceKindName[] = ["unavailability", "equivocation", "lease-breach", "invalid-contribution"];

describe(`property: ${COUNT} randomized submissions from two replicas`, () => {
  it(
    "at most one penalty per (provider, kind, window), every forgery refused, books consistent",
    async () => {
      const a = await fresh();
      const b = new Slashing(database.db as never, clock, params, new Uint8Array(randomBytes(32)));
      const providers = Array.from({ length: 12 }, () => newSigner());
      for (const [i, p] of providers.entries()) await a.bond(p.keyid, BigInt(1_000_000 * (i + 1)), "b");
      const now = clock.now().getTime();
      // A pool of valid evidence: per provider and kind a few windows, and several evidence per window.
      const pool: EvidenceInput[] = [];
      for (const p of providers)
        for (const kind of KINDS)
          for (let win = 0; win < 3; win++)
            for (let v = 0; v < 2; v++)
              pool.push(evidenceOf(w, kind, p, now - (win + 1) * DEFAULT_PENALTY_PARAMS.windowMs[kind] + v * 1000, v));
      let forged = 0;
      let forgedRefused = 0;
      let expired = 0;
      const rnd = (n: number) => Math.floor(Math.random() * n);
      const jobs: (() => Promise<unknown>)[] = [];
      for (let i = 0; i < COUNT; i++) {
        const replica = i % 2 === 0 ? a : b;
        const roll = rnd(10);
        const e = pool[rnd(pool.length)]!;
        if (roll === 0) {
          forged++;
          jobs.push(() =>
            replica.submitEvidence(forge(e, rnd(2) ? "flip" : "stranger"), "r").then(
              () => undefined,
              () => forgedRefused++,
            ),
          );
        } else if (roll === 1) {
          expired++;
          const p = providers[rnd(providers.length)]!;
          jobs.push(() =>
            replica.submitEvidence(evidenceOf(w, KINDS[rnd(4)]!, p, now - params.evidenceMaxAgeMs - DAY), "r").then(
              () => undefined,
              () => undefined,
            ),
          );
        } else {
          jobs.push(() =>
            replica.submitEvidence(e, `r${rnd(3)}`).catch((err: Error) => {
              if (!/tombstoned/.test(err.message)) throw err;
            }),
          );
        }
      }
      // 8 concurrent submitters across the two replicas.
      const t0 = Date.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next < jobs.length) await jobs[next++]!();
        }),
      );
      const secs = (Date.now() - t0) / 1000;
      process.stdout.write(
        `property: ${COUNT} submissions in ${secs.toFixed(1)} s (${(COUNT / secs).toFixed(0)}/s), ${forged} forged, ${expired} expired\n`,
      );
      expect(forgedRefused).toBe(forged);
      const dup = await sql<{
        n: number;
      }>`select count(*)::int as n from (select provider_id, kind, infraction_window from slashes group by 1, 2, 3 having count(*) > 1) d`.execute(
        database.db,
      );
      expect(dup.rows[0]!.n).toBe(0);
      const stored = await sql<{
        n: number;
      }>`select count(*)::int as n from evidence where infraction_at < ${new Date(now - params.evidenceMaxAgeMs)}`.execute(database.db);
      expect(stored.rows[0]!.n).toBe(0);
      clock.advance(params.vetoWindowMs);
      await Promise.all([a.applyDue(10_000), b.applyDue(10_000)]);
      const applied = await sql<{ n: number }>`select count(*)::int as n from slashes where state = 'applied'`.execute(database.db);
      const transfers = await sql<{
        n: number;
      }>`select count(distinct reference)::int as n from money_transfers where code like 'slash.%'`.execute(database.db);
      expect(transfers.rows[0]!.n).toBeLessThanOrEqual(applied.rows[0]!.n);
      const audit = await auditBooks(database.db);
      expect(audit.problems).toEqual([]);
      expect(audit.debitsPosted).toBe(audit.creditsPosted);
      expect(expired).toBeGreaterThan(0);
    },
    Math.max(600_000, COUNT * 100),
  );
});
