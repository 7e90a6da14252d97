// Kill -9 during slashing: the built service applies due slashes on its tick; the process is
// killed (SIGKILL) while it is part-way through them, restarted on the same database, and then
// every slash is applied exactly once: one transfer set and one stake change per slash, one
// `applied` record each (anchored after the restart), the books balanced.
import { setTimeout as sleep } from "node:timers/promises";

import { sql, type RawBuilder } from "kysely";

import { SlashingService } from "@deai/contracts/deai/slashing/v1/slashing_pb";
import { actorKeySeed, auditBooks, generateActorKey, openDatabase, serviceClient, type Database } from "@deai/kit";
import { spawnService, type ServiceProcess } from "@deai/testkit";

import { equivocation, newSigner } from "./evidence-factory.js";
import { actorOf, slashingMain, startSlashHarness, submitRequest, type SlashHarness } from "./harness.js";

const N = 80;
let h: SlashHarness;
let db: Database<unknown>;
const procs: ServiceProcess[] = [];

beforeAll(async () => {
  h = await startSlashHarness("slashing-crash");
  db = openDatabase<unknown>({ url: h.env.database.url, schema: "slashing", poolSize: 2 });
}, 120_000);

afterAll(async () => {
  for (const p of procs) if (p.proc.exitCode === null) p.kill("SIGKILL");
  await db?.close();
  await h?.close();
}, 60_000);

const n = async (q: RawBuilder<{ n: string }>): Promise<number> => Number((await q.execute(db.db)).rows[0]!.n);

it(`applies ${N} slashes exactly once across a kill -9 in the middle of applying them`, async () => {
  const vars = h.vars({ SLASHING_SERVICE_KEY: actorKeySeed(generateActorKey()), SLASHING_VETO_WINDOW_S: "15", SLASHING_TICK_MS: "50" });
  const a = await spawnService(slashingMain, vars, { timeoutMs: 90_000 });
  procs.push(a);
  const base = `http://127.0.0.1:${a.port}`;
  const providers = Array.from({ length: N }, () => newSigner());
  await Promise.all(
    providers.map((p) =>
      serviceClient(SlashingService, { baseUrl: base, key: actorOf(p) }).bond({
        amount: { currency: "DEAI", micros: 1_000_000n },
        idempotencyKey: "b",
      }),
    ),
  );
  // The infractions come after the bonds (a penalty is a fraction of the stake held then).
  await sleep(1100);
  const reporter = serviceClient(SlashingService, { baseUrl: base, key: generateActorKey() });
  const at = Date.now() - 100;
  const queue = [...providers];
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let p = queue.shift(); p; p = queue.shift()) await reporter.submitEvidence(submitRequest(equivocation(p, at)));
    }),
  );
  expect(await n(sql`select count(*) as n from slashes`)).toBe(N);

  // Kill as soon as the tick has applied some but not all.
  let appliedAtKill = 0;
  for (let i = 0; i < 6000; i++) {
    appliedAtKill = await n(sql`select count(*) as n from slashes where state = 'applied'`);
    if (appliedAtKill > 0) break;
    await sleep(2);
  }
  a.kill("SIGKILL");
  await a.exited;
  const afterKill = await n(sql`select count(*) as n from slashes where state = 'applied'`);
  expect(appliedAtKill).toBeGreaterThan(0);
  // The kill landed part-way (the rest is applied by the restarted process).
  expect(afterKill).toBeLessThan(N);

  const b = await spawnService(slashingMain, vars, { timeoutMs: 90_000 });
  procs.push(b);
  for (let i = 0; i < 600; i++) {
    const pending = await n(sql`select count(*) as n from slashes where state = 'pending_veto'`);
    const unanchored = await n(sql`select count(*) as n from slash_records where ledger_index is null`);
    if (pending === 0 && unanchored === 0) break;
    await sleep(100);
  }
  expect(await n(sql`select count(*) as n from slashes where state = 'applied'`)).toBe(N);
  // Exactly once: per slash one transfer per share, one stake change, one applied record.
  const perSlash = await sql<{ slash_id: string; transfers: string; changes: string; records: string; taken: string }>`
    select s.slash_id, s.taken::text as taken,
      (select count(*) from money_transfers t where t.reference = s.slash_id) as transfers,
      (select count(*) from stake_changes c where c.provider_id = s.provider_id and c.reason = 'slash') as changes,
      (select count(*) from slash_records r where r.slash_id = s.slash_id and r.event = 'applied') as records
    from slashes s`.execute(db.db);
  expect(perSlash.rows).toHaveLength(N);
  for (const r of perSlash.rows) {
    expect({ transfers: Number(r.transfers), changes: Number(r.changes), records: Number(r.records) }).toEqual({
      transfers: 2, // reporter and treasury (equivocation has no repair share)
      changes: 1,
      records: 1,
    });
    expect(BigInt(r.taken)).toBeGreaterThan(0n);
  }
  const taken = await n(sql`select coalesce(sum(taken), 0)::text as n from slashes`);
  const lost = await n(
    sql`select (${N * 1_000_000} - coalesce(sum(credits_posted - debits_posted), 0))::text as n from money_accounts where kind = 'stake'`,
  );
  expect(lost).toBe(taken);
  expect((await auditBooks(db.db)).problems).toEqual([]);
  expect(await n(sql`select count(*) as n from slash_records where ledger_index is null`)).toBe(0);
  process.stdout.write(`kill -9 after ${appliedAtKill}–${afterKill} of ${N} slashes applied; all ${N} applied once after restart\n`);
  b.kill("SIGTERM");
  expect(await b.exited).toBe(0);
}, 300_000);
