// The app's events go to the kit's outbox in the transaction that makes them true: a jail, a
// tombstone, an applied slash and stake changes leave their rows with the contract's dedupe ids.
import { randomBytes } from "node:crypto";

import { sql } from "kysely";

import { ManualClock, migrate, openDatabase } from "@deai/kit";
import { createTestDatabase } from "@deai/testkit";

import { Slashing } from "../src/app/slashing.js";
import { outboxEvents, SlashingSubjects } from "../src/events/status-events.js";
import { migrations } from "../src/store/migrations.js";
import { evidenceOf, newSigner, newWorld } from "./evidence-factory.js";
import { openParams } from "./params.js";

it("publishes stake, jail, tombstone and applied-slash events through the outbox, once each", async () => {
  const tdb = await createTestDatabase("slashing-events");
  const database = openDatabase<unknown>({ url: tdb.url, schema: "slashing" });
  try {
    // migrate() applies the kit's tables (outbox included) first.
    await migrate(database, migrations);
    const w = newWorld();
    const clock = new ManualClock(new Date("2026-03-01T00:00:00Z"));
    const params = openParams(w.trust);
    const app = new Slashing(database.db as never, clock, params, new Uint8Array(randomBytes(32)), outboxEvents(clock, "DEAI"));
    await app.init();
    const p = newSigner();
    const q = newSigner();
    await app.bond(p.keyid, 1_000_000n, "b");
    await app.bond(q.keyid, 1_000_000n, "b");
    clock.advance(1000);
    const u = evidenceOf(w, "unavailability", p, clock.now().getTime());
    await app.submitEvidence(u, "r");
    await app.submitEvidence(u, "r");
    await app.submitEvidence(evidenceOf(w, "equivocation", q, clock.now().getTime()), "r");
    clock.advance(params.vetoWindowMs);
    await app.applyDue();
    await app.releaseJails();
    const rows = await sql<{ subject: string; event_id: string }>`select subject, event_id from kit_outbox order by id`.execute(
      database.db,
    );
    const subjects = rows.rows.map((r) => r.subject);
    expect(subjects.filter((s) => s === SlashingSubjects.providerJailed)).toHaveLength(1);
    expect(subjects.filter((s) => s === SlashingSubjects.providerTombstoned)).toHaveLength(1);
    expect(subjects.filter((s) => s === SlashingSubjects.slashApplied)).toHaveLength(2);
    expect(subjects.filter((s) => s === SlashingSubjects.providerReleased)).toHaveLength(1);
    // The duplicate evidence adds neither an evidence_accepted nor a slash_proposed.
    expect(subjects.filter((s) => s === SlashingSubjects.evidenceAccepted)).toHaveLength(2);
    expect(subjects.filter((s) => s === SlashingSubjects.slashProposed)).toHaveLength(2);
    const records = await sql<{ event: string }>`select event from slash_records order by event`.execute(database.db);
    expect(records.rows.map((r) => r.event)).toEqual(["applied", "applied", "jailed", "released", "tombstoned"]);
    expect(subjects.filter((s) => s === SlashingSubjects.stakeChanged).length).toBeGreaterThanOrEqual(4);
    expect(rows.rows.find((r) => r.subject === SlashingSubjects.providerTombstoned)!.event_id).toBe(`slashing/tombstoned/${q.keyid}`);
  } finally {
    await database.close();
    await tdb.drop();
  }
}, 60_000);
