// The challenge seed of unavailability evidence against a real ledger process: a tree head the
// log signed (the latest, or an older size proven by a consistency proof) passes; a root the log
// never had, a size beyond its checkpoint, or a checkpoint under another key does not; and the
// app refuses evidence whose seed is made up, with nothing stored.
import { randomBytes } from "node:crypto";

import { sql } from "kysely";

import { actorKeyFromSeed, ManualClock, migrate, openDatabase } from "@deai/kit";
import {
  dsseSign,
  dsseToJson,
  ed25519DsseSigner,
  generateNoteKey,
  IN_TOTO_PAYLOAD_TYPE,
  parseVerifierKey,
  STATEMENT_V1_TYPE,
} from "@deai/proofs";
import { createTestDatabase, signedFetch } from "@deai/testkit";

import { ledgerCheckpointWitness } from "../src/app/checkpoint-witness.js";
import { Slashing } from "../src/app/slashing.js";
import { migrations } from "../src/store/migrations.js";
import { evidenceOf, newSigner } from "./evidence-factory.js";
import { startSlashHarness, type SlashHarness } from "./harness.js";
import { openParams } from "./params.js";

let h: SlashHarness;
const seed = randomBytes(32);
const author = actorKeyFromSeed(seed.toString("base64url"));
const signer = ed25519DsseSigner(new Uint8Array(seed));

async function append(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const stmt = {
      _type: STATEMENT_V1_TYPE,
      subject: [{ name: "x", digest: { sha256: randomBytes(32).toString("hex") } }],
      predicateType: "https://deai.dev/test/v1",
      predicate: {},
    };
    const env = dsseToJson(dsseSign(IN_TOTO_PAYLOAD_TYPE, new TextEncoder().encode(JSON.stringify(stmt)), [signer]));
    const res = await signedFetch(`${h.ledgerUrl}/v1/ledger/entries`, author, {
      body: JSON.stringify({ envelope: env, waitForIntegration: i === n - 1 }),
    });
    expect(res.status).toBe(200);
  }
}

async function head(): Promise<{ size: number; root: string }> {
  const r = (await (await fetch(`${h.ledgerUrl}/v1/ledger/checkpoint`)).json()) as { checkpoint: { size: string; rootHash: string } };
  return { size: Number(r.checkpoint.size), root: Buffer.from(r.checkpoint.rootHash, "base64").toString("hex") };
}

beforeAll(async () => {
  h = await startSlashHarness("slashing-seeds");
});
afterAll(async () => {
  await h?.close();
});

it("passes tree heads the log signed and refuses the rest", async () => {
  await append(3);
  const older = await head();
  await append(2);
  const latest = await head();
  expect(latest.size).toBeGreaterThan(older.size);
  const witness = ledgerCheckpointWitness({ baseUrl: h.ledgerUrl, log: h.verifier, timeoutMs: 5000 });
  await expect(witness(older.size, older.root)).resolves.toBeUndefined();
  await expect(witness(latest.size, latest.root)).resolves.toBeUndefined();
  const madeUp = randomBytes(32).toString("hex");
  await expect(witness(older.size, madeUp)).rejects.toMatchObject({
    kind: "invalid_argument",
    message: expect.stringMatching(/not a tree head of the log/),
  });
  await expect(witness(latest.size, madeUp)).rejects.toMatchObject({
    kind: "invalid_argument",
    message: expect.stringMatching(/not the log's root/),
  });
  await expect(witness(latest.size + 10, latest.root)).rejects.toMatchObject({
    kind: "invalid_argument",
    message: expect.stringMatching(/beyond the log's latest/),
  });
  const otherKey = parseVerifierKey(generateNoteKey(h.verifier.name).verifierKey);
  await expect(
    ledgerCheckpointWitness({ baseUrl: h.ledgerUrl, log: otherKey, timeoutMs: 5000 })(older.size, older.root),
  ).rejects.toMatchObject({ kind: "unavailable" });
  await expect(
    ledgerCheckpointWitness({ baseUrl: "http://127.0.0.1:9", log: h.verifier, timeoutMs: 2000 })(older.size, older.root),
  ).rejects.toMatchObject({ kind: "unavailable" });
}, 90_000);

it("the app refuses unavailability evidence whose seed the log never had, and stores nothing", async () => {
  const tdb = await createTestDatabase("slashing-seeds-app");
  const database = openDatabase<unknown>({ url: tdb.url, schema: "slashing" });
  try {
    await migrate(database, migrations);
    const clock = new ManualClock(new Date("2026-03-01T00:00:00Z"));
    const params = openParams(h.world.trust);
    const app = new Slashing(database.db as never, clock, params, new Uint8Array(randomBytes(32)));
    await app.init();
    app.witnessChallengeSeedsWith(ledgerCheckpointWitness({ baseUrl: h.ledgerUrl, log: h.verifier, timeoutMs: 5000 }));
    const p = newSigner();
    await app.bond(p.keyid, 1_000_000n, "b");
    clock.advance(1000);
    await expect(app.submitEvidence(evidenceOf(h.world, "unavailability", p, clock.now().getTime()), "r")).rejects.toMatchObject({
      kind: "invalid_argument",
    });
    expect((await sql`select * from evidence`.execute(database.db)).rows).toEqual([]);
    expect((await sql`select * from slashes`.execute(database.db)).rows).toEqual([]);
    expect((await app.stake(p.keyid)).status).toBe("active");
  } finally {
    await database.close();
    await tdb.drop();
  }
}, 60_000);
