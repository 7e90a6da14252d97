/**
 * kill -9 loses no posted transfer: a child process (money-crash-child.mjs, on the kit's
 * built dist/) moves money from 8 workers and prints each transfer only after its commit
 * returned; it is SIGKILLed mid-run. Every acknowledged transfer must be in the books,
 * applied once, every acknowledged post must have posted its hold, no batch may be half
 * applied, and the books must balance. Replaying the acknowledged ids afterwards changes
 * nothing.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";

import { sql } from "kysely";

import {
  accountsMigrations,
  amount,
  auditBooks,
  createAccount,
  createTransfer,
  getHold,
  migrate,
  openDatabase,
  systemClock,
  type Database,
  type TransferInput,
} from "@deai/kit";
import { createTestDatabase, type TestDatabase } from "@deai/testkit";

const childJs = new URL("./money-crash-child.mjs", import.meta.url).pathname;
const builtKit = new URL("../dist/money/transfers.js", import.meta.url).pathname;

let tdb: TestDatabase;
let database: Database<unknown>;

beforeAll(async () => {
  tdb = await createTestDatabase("moneycrash");
  database = openDatabase<unknown>({ url: tdb.url, schema: "books" });
  await migrate(database, accountsMigrations);
});
afterAll(async () => {
  await database?.close();
  await tdb?.drop();
});

function revive(_: string, v: unknown): unknown {
  return typeof v === "string" && /^[0-9]+n$/.test(v) ? BigInt(v.slice(0, -1)) : v;
}

it("a process killed with -9 mid-run loses no acknowledged transfer and leaves the books balanced", async () => {
  if (!existsSync(builtKit))
    throw new Error(`${builtKit} does not exist: build the kit first (npx tsc -p packages/kit/tsconfig.build.json)`);
  const db = database.db;
  await createAccount(db, systemClock, { id: "treasury", ledger: "DEAI", kind: "treasury" });
  const wallets = Array.from({ length: 6 }, (_, i) => `wallet-${i}`);
  for (const id of wallets) {
    await createAccount(db, systemClock, { id, ledger: "DEAI", kind: "wallet", flags: { debitsMustNotExceedCredits: true } });
    await createTransfer(db, systemClock, {
      kind: "single",
      id: `seed-${id}`,
      debitAccountId: "treasury",
      creditAccountId: id,
      amount: amount(400n),
      ledger: "DEAI",
      code: "seed",
    });
  }

  const child = spawn(process.execPath, [childJs, tdb.url, "books", ["treasury", ...wallets].join(",")], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const stderr: string[] = [];
  child.stderr.on("data", (d: Buffer) => stderr.push(d.toString()));
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.once("exit", (code, signal) => resolve(signal ?? code)));
  const acked: TransferInput[][] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${acked.length} acks in 60 s; stderr: ${stderr.join("")}`)), 60_000);
    void exited.then((how) => reject(new Error(`child exited (${how}) before the kill; stderr: ${stderr.join("")}`)));
    createInterface({ input: child.stdout }).on("line", (line) => {
      acked.push(JSON.parse(line, revive) as TransferInput[]);
      if (acked.length === 400) {
        clearTimeout(timer);
        child.kill("SIGKILL");
        resolve();
      }
    });
  });
  expect(await exited).toBe("SIGKILL");

  const ids = acked.flat().map((t) => t.id);
  const stored = new Set((await sql<{ id: string }>`select id from money_transfers`.execute(db)).rows.map((r) => r.id));
  expect(ids.filter((id) => !stored.has(id))).toEqual([]);
  expect(new Set(ids).size).toBe(ids.length);
  for (const t of acked.flat()) {
    if (t.kind === "post") expect(await getHold(db, t.pendingId)).toMatchObject({ state: "posted", resolvedBy: t.id });
  }
  // A batch is in the books whole or not at all, acknowledged or not (it may have committed
  // between the commit and the print that the kill cut off).
  const halves = await sql<{ n: number }>`
    select count(*)::int as n from money_transfers h
    where h.id like '%-bhold' and (
      not exists (select 1 from money_transfers p where p.id = replace(h.id, '-bhold', '-bpost')) or
      not exists (select 1 from money_transfers m where m.id = replace(h.id, '-bhold', '-bmove')))`.execute(db);
  expect(halves.rows[0]!.n).toBe(0);
  const audit = await auditBooks(db);
  expect(audit.problems).toEqual([]);
  expect(audit.transfers).toBeGreaterThanOrEqual(ids.length + wallets.length);

  // After the crash, a client that retries what it sent is told it already happened.
  for (const batch of acked.slice(-50)) {
    for (const t of batch) expect((await createTransfer(db, systemClock, t)).created).toBe(false);
  }
  expect((await auditBooks(db)).transfers).toBe(audit.transfers);
}, 90_000);
