/**
 * The done-when property test for money: at least 10,000 random transfers from 24 concurrent
 * workers on one pool against real Postgres — single transfers, holds, posts (full and
 * partial), voids, expiries on a moving clock, replays of applied ids, the same id with other
 * fields, and the same new transfer sent twice at once. Throughout, a sampler reads the books
 * in snapshots; at the end an audit recomputes every balance from the transfers.
 *
 * Reproduce a failure with MONEY_SEED=<the seed it printed>.
 */
import { sql } from "kysely";

import {
  DomainError,
  ManualClock,
  accountsMigrations,
  amount,
  auditBooks,
  createAccount,
  createTransfer,
  expirePending,
  getAccounts,
  migrate,
  openDatabase,
  type Database,
  type Transfer,
  type TransferInput,
  type TransferResult,
} from "@deai/kit";
import { createTestDatabase, type TestDatabase } from "@deai/testkit";

const OPERATIONS = 10_000;
const WORKERS = 24;
const seed = Number(process.env.MONEY_SEED ?? Math.floor(Math.random() * 2 ** 31));

let tdb: TestDatabase;
let database: Database<unknown>;

beforeAll(async () => {
  tdb = await createTestDatabase("moneyprop");
  database = openDatabase<unknown>({ url: tdb.url, schema: "books", poolSize: 16 });
  await migrate(database, accountsMigrations);
});
afterAll(async () => {
  await database?.close();
  await tdb?.drop();
});

/** mulberry32: a small seeded PRNG, so a failing run can be replayed. */
function prng(s: number): () => number {
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

it(`${OPERATIONS} random concurrent transfers keep the books sound (seed ${seed})`, async () => {
  const db = database.db;
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const rand = prng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;

  const treasury = "treasury";
  const wallets = Array.from({ length: 30 }, (_, i) => `wallet-${i}`);
  const payables = ["payable-0", "payable-1"];
  await createAccount(db, clock, { id: treasury, ledger: "DEAI", kind: "treasury" });
  for (const id of wallets)
    await createAccount(db, clock, { id, ledger: "DEAI", kind: "wallet", flags: { debitsMustNotExceedCredits: true } });
  for (const id of payables)
    await createAccount(db, clock, { id, ledger: "DEAI", kind: "payable", flags: { creditsMustNotExceedDebits: true } });
  const everyone = [treasury, ...wallets, ...payables];
  for (const id of wallets) {
    await createTransfer(db, clock, {
      kind: "single",
      id: `seed-${id}`,
      debitAccountId: treasury,
      creditAccountId: id,
      amount: amount(5_000n),
      ledger: "DEAI",
      code: "seed",
    });
  }

  // What the workers saw: every applied transfer by id, and the input that applied it.
  const applied = new Map<string, { input: TransferInput; transfer: Transfer }>();
  const appliedInputs: TransferInput[] = [];
  const holds: string[] = [];
  const tally: Record<string, number> = {};
  const count = (k: string) => (tally[k] = (tally[k] ?? 0) + 1);
  const unexpected: string[] = [];
  let nextId = 0;

  const record = (input: TransferInput, r: TransferResult): void => {
    const seen = applied.get(input.id);
    if (seen) {
      if (r.created) unexpected.push(`${input.id} was applied twice`);
      if (JSON.stringify(seen.transfer, big) !== JSON.stringify(r.transfer, big))
        unexpected.push(`${input.id}: a replay returned another transfer`);
      return;
    }
    if (!r.created) unexpected.push(`${input.id}: first seen as a replay`);
    applied.set(input.id, { input, transfer: r.transfer });
    appliedInputs.push(input);
    if (input.kind === "pending") holds.push(input.id);
  };
  const expected = (e: unknown, allowed: readonly string[], what: string): void => {
    if (e instanceof DomainError && allowed.includes(e.kind)) {
      count(`${what}:${e.kind}${typeof e.details.reason === "string" ? `:${e.details.reason}` : ""}`);
      return;
    }
    unexpected.push(`${what}: ${e instanceof DomainError ? e.kind : "non-domain"} ${(e as Error).message}`);
  };
  const send = async (input: TransferInput, what: string): Promise<void> => {
    try {
      record(input, await createTransfer(db, clock, input));
      count(`${what}:ok`);
    } catch (e) {
      expected(e, ["failed_precondition"], what);
    }
  };

  const randomTransfer = (kind: "single" | "pending"): TransferInput => {
    const debitAccountId = pick(everyone);
    let creditAccountId = pick(everyone);
    while (creditAccountId === debitAccountId) creditAccountId = pick(everyone);
    const base = { id: `t${nextId++}`, debitAccountId, creditAccountId, amount: amount(BigInt(int(1, 2_500))), ledger: "DEAI", code: kind };
    return kind === "single" ? { kind, ...base } : { kind, ...base, ...(rand() < 0.7 ? { timeoutMs: int(200, 4_000) } : {}) };
  };

  const operation = async (): Promise<void> => {
    const r = rand();
    if (r < 0.28) return send(randomTransfer("single"), "single");
    if (r < 0.5) return send(randomTransfer("pending"), "pending");
    if (r < 0.64 && holds.length > 0) {
      const pendingId = pick(holds);
      const held = applied.get(pendingId)!.transfer.amount;
      const partial = rand() < 0.5 ? { amount: amount(BigInt(int(1, Number(held) + 2))) } : {};
      const input: TransferInput = { kind: "post", id: `t${nextId++}`, pendingId, ...partial };
      return send(input, "post");
    }
    if (r < 0.72 && holds.length > 0) return send({ kind: "void", id: `t${nextId++}`, pendingId: pick(holds) }, "void");
    if (r < 0.82 && appliedInputs.length > 0) {
      // A replay of a recently applied id: the same result, applied once.
      const input = pick(appliedInputs.slice(-200));
      try {
        record(input, await createTransfer(db, clock, input));
        count("replay:ok");
      } catch (e) {
        unexpected.push(`replay of ${input.id} failed: ${(e as Error).message}`);
      }
      return;
    }
    if (r < 0.87 && appliedInputs.length > 0) {
      const input = pick(appliedInputs.slice(-200));
      const changed = { ...input, reference: `changed-${nextId++}` } as TransferInput;
      try {
        await createTransfer(db, clock, changed);
        unexpected.push(`${input.id} with other fields was accepted`);
      } catch (e) {
        expected(e, ["already_exists"], "conflict");
      }
      return;
    }
    if (r < 0.98) {
      // The same new transfer twice at once: one applies it, the other gets the same result.
      const input = randomTransfer(rand() < 0.5 ? "single" : "pending");
      const [a, b] = await Promise.allSettled([createTransfer(db, clock, input), createTransfer(db, clock, input)]);
      if (a.status === "fulfilled" && b.status === "fulfilled") {
        if (a.value.created === b.value.created) unexpected.push(`twin ${input.id}: created ${a.value.created} twice`);
        record(input, a.value.created ? a.value : b.value);
        record(input, a.value.created ? b.value : a.value);
        count("twin:ok");
      } else if (a.status === "rejected" && b.status === "rejected") {
        expected(a.reason, ["failed_precondition"], "twin");
      } else {
        // A failure first, then a success: legal, since balances moved in between and a
        // failed transfer is not recorded (TigerBeetle's rule too). A success first would
        // make the second a replay, so its failure is only legal as a limit failure that
        // came first, which the order of the two cannot show here; the audit covers it.
        const ok = a.status === "fulfilled" ? a.value : (b as PromiseFulfilledResult<TransferResult>).value;
        const bad = a.status === "rejected" ? a.reason : (b as PromiseRejectedResult).reason;
        if (!ok.created) unexpected.push(`twin ${input.id}: a replay succeeded while the first attempt failed`);
        record(input, ok);
        expected(bad, ["failed_precondition"], "twin-split");
      }
      return;
    }
    clock.advance(int(0, 800));
    try {
      count(`expire:${(await expirePending(db, clock)) > 0 ? "some" : "none"}`);
    } catch (e) {
      unexpected.push(`expirePending: ${(e as Error).message}`);
    }
  };

  // The sampler: every snapshot of the books balances and has no account beyond its limit.
  let sampling = true;
  let samples = 0;
  const sampler = (async () => {
    while (sampling) {
      await db
        .transaction()
        .setIsolationLevel("repeatable read")
        .execute(async (trx) => {
          const rows = await getAccounts(trx, everyone);
          let debits = 0n;
          let credits = 0n;
          for (const a of rows) {
            debits += a.debitsPosted + a.debitsPending;
            credits += a.creditsPosted + a.creditsPending;
            const negative = [a.debitsPending, a.debitsPosted, a.creditsPending, a.creditsPosted].some((x) => x < 0n);
            const over =
              (a.flags.debitsMustNotExceedCredits && a.debitsPending + a.debitsPosted > a.creditsPosted) ||
              (a.flags.creditsMustNotExceedDebits && a.creditsPending + a.creditsPosted > a.debitsPosted);
            if (negative || over) unexpected.push(`sample ${samples}: account ${a.id} is negative or over its limit`);
          }
          if (debits !== credits) unexpected.push(`sample ${samples}: debits ${debits} ≠ credits ${credits}`);
          samples++;
        });
      await new Promise((r) => setTimeout(r, 50));
    }
  })();

  let done = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: WORKERS }, async () => {
      while (done < OPERATIONS) {
        done++;
        await operation();
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  sampling = false;
  await sampler;

  // Let every remaining hold time out, then audit from the transfers.
  clock.advance(10_000);
  await expirePending(db, clock);
  const audit = await auditBooks(db);
  const rows = await sql<{ id: string }>`select id from money_transfers where id not like 'seed-%'`.execute(db);
  const stillHeld = await sql<{
    n: number;
  }>`select count(*)::int as n from money_pending where state = 'pending' and expires_at is not null`.execute(db);
  console.log(
    `money property: seed ${seed}, ${done} operations by ${WORKERS} workers in ${seconds.toFixed(1)} s ` +
      `(${(done / seconds).toFixed(0)} operations/s, ${(rows.rows.length / seconds).toFixed(0)} applied transfers/s), ${samples} snapshots; ` +
      JSON.stringify(tally),
  );

  expect(unexpected.slice(0, 10)).toEqual([]);
  expect(audit.problems).toEqual([]);
  expect(audit.debitsPosted).toBe(audit.creditsPosted);
  expect(audit.debitsPending).toBe(audit.creditsPending);
  expect(stillHeld.rows[0]!.n).toBe(0);
  // Each id the workers saw applied is in the books once, with what they were told; nothing else is.
  expect(rows.rows.map((r) => r.id).sort()).toEqual([...applied.keys()].sort());
  const stored = new Map(
    (await sql<{ id: string; amount: string }>`select id, amount from money_transfers`.execute(db)).rows.map((r) => [r.id, r.amount]),
  );
  for (const [id, { transfer }] of applied) expect([id, stored.get(id)]).toEqual([id, transfer.amount.toString()]);
  // Every kind of operation happened, and the limits were actually tested.
  for (const k of ["single:ok", "pending:ok", "post:ok", "void:ok", "replay:ok", "conflict:already_exists", "twin:ok", "expire:some"]) {
    expect([k, tally[k] ?? 0]).toEqual([k, expect.any(Number)]);
    expect(tally[k]).toBeGreaterThan(0);
  }
  expect(Object.keys(tally).some((k) => k.endsWith("exceeds_credits"))).toBe(true);
  expect(Object.keys(tally).some((k) => k.endsWith("expired"))).toBe(true);
  expect(samples).toBeGreaterThan(3);
}, 120_000);

function big(_: string, v: unknown): unknown {
  return typeof v === "bigint" ? v.toString() : v;
}
