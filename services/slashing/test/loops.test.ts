// The scheduled loops against real Postgres, NATS and the real ledger process. Anchoring: a
// record the ledger refuses for good (here one too large for an entry, as a service before the
// submit-time size check could write) is marked refused, counted in
// deai.slashing.anchors{outcome="refused"}, and does not hold back the records after it. The
// tick: a due slash whose apply keeps failing does not stop the tick's other steps (unbondings
// mature, jails end), time moved on the kit's ManualClock.
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";

import { sql } from "kysely";

import {
  actorKeyFromSeed,
  actorKeySeed,
  createLogger,
  generateActorKey,
  LedgerAnchoringClient,
  ManualClock,
  migrate,
  openDatabase,
  startService,
  type Database,
} from "@deai/kit";
import {
  dsseSign,
  dsseToJson,
  ed25519DsseSigner,
  IN_TOTO_PAYLOAD_TYPE,
  MAX_ENTRY_SIZE,
  PredicateTypes,
  statementBytes,
  statementOf,
} from "@deai/proofs";
import { installTestMetricReader, metricPoints } from "@deai/testkit";

import { RecordAnchoring } from "../src/app/anchoring.js";
import { slashingMetrics } from "../src/app/metrics.js";
import { Slashing } from "../src/app/slashing.js";
import { loadSlashingConfig } from "../src/config.js";
import { slashingDefinition, type SlashingParts } from "../src/definition.js";
import { migrations } from "../src/store/migrations.js";
import { evidenceOf, leaseBreach, newSigner } from "./evidence-factory.js";
import { openParams } from "./params.js";
import { startSlashHarness, type SlashHarness } from "./harness.js";

let h: SlashHarness;
let database: Database<unknown>;

beforeAll(async () => {
  installTestMetricReader();
  h = await startSlashHarness("slashing-anchoring");
  database = openDatabase<unknown>({ url: h.env.database.url, schema: "anchoring", poolSize: 4 });
  await migrate(database, migrations);
}, 120_000);

afterAll(async () => {
  await database?.close();
  await h?.close();
});

async function anchorOutcomes(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const p of await metricPoints("deai.slashing.anchors")) out[String(p.attributes.outcome)] = Number(p.value);
  return out;
}

it("a record the ledger refuses for good is marked refused and counted, and the records after it are still anchored", async () => {
  const clock = new ManualClock(new Date());
  const seed = new Uint8Array(randomBytes(32));
  const metrics = slashingMetrics();
  const s = new Slashing(database.db as never, clock, openParams(h.world.trust), seed, undefined, metrics);
  await s.init();
  const db = database.db;
  // A record as an unchecked service could have written it: one signed statement over the entry limit.
  const big = dsseSign(
    IN_TOTO_PAYLOAD_TYPE,
    statementBytes(
      statementOf(PredicateTypes.slashRecord, [{ name: "evidence/x", digest: { sha256: "ab".repeat(32) } }], {
        pad: "x".repeat(MAX_ENTRY_SIZE),
      }),
    ),
    [ed25519DsseSigner(seed)],
  );
  await sql`insert into slash_records (record_id, slash_id, event, envelope, created_at)
    values ('legacy/applied', 'legacy', 'applied', ${JSON.stringify(dsseToJson(big))}::jsonb, ${new Date(0)})`.execute(db);
  // A real slash after it: its tombstoned record is queued behind the refused one.
  const p = newSigner();
  await s.bond(p.keyid, 1_000_000n, "b");
  const r = await s.submitEvidence(evidenceOf(h.world, "equivocation", p, clock.now().getTime()), "reporter");

  const before = await anchorOutcomes();
  const anchoring = new RecordAnchoring(
    db,
    new LedgerAnchoringClient({
      baseUrl: h.ledgerUrl,
      key: actorKeyFromSeed(Buffer.from(seed).toString("base64url")),
      logVerifier: h.verifier,
    }),
    clock,
    createLogger({ service: "slashing-test", level: "silent" }),
    metrics,
  );
  expect(await anchoring.anchorPending()).toBe(1);
  const after = await anchorOutcomes();
  expect({ refused: (after.refused ?? 0) - (before.refused ?? 0), anchored: (after.anchored ?? 0) - (before.anchored ?? 0) }).toEqual({
    refused: 1,
    anchored: 1,
  });
  const rows = await sql<{ record_id: string; refused: string | null; ledger_index: string | null }>`
    select record_id, refused, ledger_index::text as ledger_index from slash_records order by created_at`.execute(db);
  expect(rows.rows.map((x) => ({ id: x.record_id, refused: x.refused !== null, anchored: x.ledger_index !== null }))).toEqual([
    { id: "legacy/applied", refused: true, anchored: false },
    { id: `${r.slashId}/tombstoned`, refused: false, anchored: true },
  ]);
  expect(rows.rows[0]!.refused).toMatch(/limit is 65535|too large|bytes/);
  expect(await anchoring.pending()).toBe(0);
}, 60_000);

it("the tick: a due slash whose apply keeps failing does not stop unbondings maturing or jails ending", async () => {
  const clock = new ManualClock(new Date());
  let parts: SlashingParts | undefined;
  const config = loadSlashingConfig(
    h.vars({ SLASHING_SERVICE_KEY: actorKeySeed(generateActorKey()), SLASHING_CONSUME_ATTESTATIONS: "false" }),
  );
  const running = await startService(slashingDefinition(config, { built: (p) => (parts = p) }), config, {
    clock,
    logger: createLogger({ service: "slashing", level: "silent" }),
  });
  try {
    const app = parts!.app;
    const [p, q, r] = [newSigner(), newSigner(), newSigner()];
    for (const x of [p, q, r]) await app.bond(x.keyid, 1_000_000n, "b");
    await app.unbond(p.keyid, 10n, "u");
    const broken = await app.submitEvidence(evidenceOf(h.world, "equivocation", q, clock.now().getTime()), "reporter");
    await app.submitEvidence(leaseBreach(h.world, r.keyid, clock.now().getTime()), "reporter");
    expect((await app.stake(r.keyid)).status).toBe("jailed");
    // The first due slash cannot be applied (a row its apply cannot read): every tick's apply step throws.
    await sql`update slashes set record = jsonb_set(record || '{"params": null}', '{penalty,reporterReward}', '"not a number"')
      where slash_id = ${broken.slashId}`.execute(running.deps.db);
    clock.advance(config.params.unbondingDelayMs + 1000);
    let state = { unbonding: -1, r: "", q: "" };
    for (let i = 0; i < 100; i++) {
      state = {
        unbonding: (await app.stake(p.keyid)).unbonding.length,
        r: (await app.stake(r.keyid)).status,
        q: (await app.slash(broken.slashId)).state,
      };
      if (state.unbonding === 0 && state.r === "active") break;
      clock.advance(config.SLASHING_TICK_MS);
      await sleep(100);
    }
    expect(state).toEqual({ unbonding: 0, r: "active", q: "pending_veto" });
    const failures = await metricPoints("deai.slashing.tick_failures");
    expect(failures.some((x) => x.attributes.step === "apply" && Number(x.value) >= 1)).toBe(true);
  } finally {
    await running.stop();
  }
}, 60_000);
