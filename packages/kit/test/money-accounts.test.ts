/**
 * Double-entry accounts against real Postgres: the API's rules and errors, and the
 * database's own guards (CHECKs and triggers) when code goes around the API.
 */
import { sql } from "kysely";

import {
  ManualClock,
  accountsMigrations,
  inMoneyTransaction,
  amount,
  auditBooks,
  availableBalance,
  createAccount,
  createAccounts,
  createTransfer,
  createTransfers,
  expirePending,
  getAccount,
  getHold,
  getTransfer,
  listTransfers,
  migrate,
  openDatabase,
  type Database,
  type DomainError,
} from "@deai/kit";
import { createTestDatabase, type TestDatabase } from "@deai/testkit";

let tdb: TestDatabase;
let database: Database<unknown>;
const clock = new ManualClock(Date.UTC(2026, 0, 1));

beforeAll(async () => {
  tdb = await createTestDatabase("money");
  database = openDatabase<unknown>({ url: tdb.url, schema: "books" });
  await migrate(database, accountsMigrations);
});
afterAll(async () => {
  await database?.close();
  await tdb?.drop();
});

const a = (n: number | bigint) => amount(BigInt(n));
let seq = 0;
const uid = (p: string) => `${p}-${++seq}`;

async function failure(p: Promise<unknown>): Promise<DomainError> {
  try {
    await p;
  } catch (e) {
    return e as DomainError;
  }
  throw new Error("expected a failure");
}

/** A funded wallet (debits ≤ credits) and the treasury that funded it. */
async function wallet(balance: number, ledger = "DEAI") {
  const db = database.db;
  const treasury = await createAccount(db, clock, { id: uid("treasury"), ledger, kind: "treasury" });
  const w = await createAccount(db, clock, { id: uid("wallet"), ledger, kind: "wallet", flags: { debitsMustNotExceedCredits: true } });
  if (balance > 0) {
    await createTransfer(db, clock, {
      kind: "single",
      id: uid("fund"),
      debitAccountId: treasury.id,
      creditAccountId: w.id,
      amount: a(balance),
      ledger,
      code: "fund",
    });
  }
  return { treasury: treasury.id, wallet: w.id };
}

describe("accounts", () => {
  it("are idempotent by id, and refuse the same id with other fields", async () => {
    const db = database.db;
    const first = await createAccount(db, clock, {
      id: "acct-x",
      ledger: "DEAI",
      kind: "escrow",
      flags: { debitsMustNotExceedCredits: true },
    });
    const again = await createAccount(db, clock, {
      id: "acct-x",
      ledger: "DEAI",
      kind: "escrow",
      flags: { debitsMustNotExceedCredits: true },
    });
    expect(again).toEqual(first);
    const e = await failure(createAccount(db, clock, { id: "acct-x", ledger: "USD", kind: "escrow" }));
    expect(e.kind).toBe("already_exists");
    expect(e.details.fields).toEqual(["ledger", "flags"]);
    expect((await failure(createAccount(db, clock, { id: "", ledger: "DEAI", kind: "k" }))).kind).toBe("invalid_argument");
    const both = { debitsMustNotExceedCredits: true, creditsMustNotExceedDebits: true };
    expect((await failure(createAccount(db, clock, { id: "acct-y", ledger: "DEAI", kind: "k", flags: both }))).kind).toBe(
      "invalid_argument",
    );
    expect((await failure(getAccount(db, "nope"))).kind).toBe("not_found");
  });
});

describe("accounts in bulk", () => {
  it("createAccounts opens many in one statement, idempotent per id, and refuses one that exists with other fields", async () => {
    const db = database.db;
    const ids = [uid("bulk"), uid("bulk"), uid("bulk")];
    const input = (id: string) => ({ id, ledger: "DEAI", kind: "escrow", flags: { debitsMustNotExceedCredits: true } });
    expect(await createAccounts(db, clock, ids.map(input))).toBe(3);
    for (const id of ids) expect((await getAccount(db, id)).flags.debitsMustNotExceedCredits).toBe(true);
    const more = uid("bulk");
    expect(await createAccounts(db, clock, [...ids, more].map(input))).toBe(1);
    const e = await failure(createAccounts(db, clock, [input(uid("bulk")), { ...input(ids[0]!), kind: "wallet" }]));
    expect(e.kind).toBe("already_exists");
    expect(await createAccounts(db, clock, [])).toBe(0);
  });
});

describe("single transfers", () => {
  it("move money, and a flagged account cannot pay more than it holds (FailedPrecondition, nothing applied)", async () => {
    const db = database.db;
    const { treasury, wallet: w } = await wallet(100);
    const other = (await wallet(0)).wallet;
    const t = {
      kind: "single" as const,
      id: uid("pay"),
      debitAccountId: w,
      creditAccountId: other,
      amount: a(60),
      ledger: "DEAI",
      code: "pay",
    };
    const r = await createTransfer(db, clock, t);
    expect(r.created).toBe(true);
    expect(r.transfer).toMatchObject({ amount: 60n, debitAccountId: w, creditAccountId: other, kind: "single" });
    expect(typeof r.transfer.seq).toBe("bigint");
    const over = await failure(createTransfer(db, clock, { ...t, id: uid("pay"), amount: a(41) }));
    expect(over.kind).toBe("failed_precondition");
    expect(over.details).toMatchObject({ reason: "exceeds_credits", accountId: w });
    expect((await getAccount(db, w)).debitsPosted).toBe(60n);
    expect(availableBalance(await getAccount(db, w))).toBe(40n);
    // The treasury has no flag: it goes net negative, which is how money enters the books.
    const tr = await getAccount(db, treasury);
    expect(tr.debitsPosted - tr.creditsPosted).toBe(100n);
  });

  it("replays of an id return the first result; the same id with other fields is AlreadyExists naming them", async () => {
    const db = database.db;
    const { wallet: w, treasury } = await wallet(100);
    const t = {
      kind: "single" as const,
      id: uid("pay"),
      debitAccountId: w,
      creditAccountId: treasury,
      amount: a(10),
      ledger: "DEAI",
      code: "pay",
    };
    const first = await createTransfer(db, clock, t);
    clock.advance(1000);
    const replay = await createTransfer(db, clock, t);
    expect(replay).toEqual({ transfer: first.transfer, created: false });
    expect((await getAccount(db, w)).debitsPosted).toBe(10n);
    const e = await failure(createTransfer(db, clock, { ...t, amount: a(11), code: "other" }));
    expect(e.kind).toBe("already_exists");
    expect(e.details).toMatchObject({ fields: ["amount", "code"], amount: { existing: "10", requested: "11" } });
  });

  it("refuse bad input precisely and change nothing", async () => {
    const db = database.db;
    const { wallet: w, treasury } = await wallet(5);
    const base = {
      kind: "single" as const,
      id: uid("bad"),
      debitAccountId: w,
      creditAccountId: treasury,
      amount: a(1),
      ledger: "DEAI",
      code: "c",
    };
    expect((await failure(createTransfer(db, clock, { ...base, amount: a(0) }))).kind).toBe("invalid_argument");
    expect((await failure(createTransfer(db, clock, { ...base, amount: -1n as never }))).kind).toBe("invalid_argument");
    expect((await failure(createTransfer(db, clock, { ...base, amount: 1 as never }))).kind).toBe("invalid_argument");
    expect((await failure(createTransfer(db, clock, { ...base, creditAccountId: w }))).kind).toBe("invalid_argument");
    expect((await failure(createTransfer(db, clock, { ...base, code: "" }))).kind).toBe("invalid_argument");
    expect((await failure(createTransfer(db, clock, { ...base, creditAccountId: "missing" }))).kind).toBe("not_found");
    const usd = await createAccount(db, clock, { id: uid("usd"), ledger: "USD", kind: "wallet" });
    const mismatch = await failure(createTransfer(db, clock, { ...base, creditAccountId: usd.id }));
    expect(mismatch.kind).toBe("failed_precondition");
    expect(mismatch.details.reason).toBe("ledger_mismatch");
    expect((await failure(createTransfers(db, clock, [base, base]))).kind).toBe("invalid_argument");
    await expect(getTransfer(db, base.id)).rejects.toMatchObject({ kind: "not_found" });
    expect((await getAccount(db, w)).debitsPosted).toBe(0n);
  });
});

describe("two-phase transfers", () => {
  it("hold, then post part: the rest is released; a second post or a void is FailedPrecondition", async () => {
    const db = database.db;
    const { wallet: w, treasury } = await wallet(100);
    const hold = {
      kind: "pending" as const,
      id: uid("hold"),
      debitAccountId: w,
      creditAccountId: treasury,
      amount: a(70),
      ledger: "DEAI",
      code: "escrow",
    };
    await createTransfer(db, clock, hold);
    let acct = await getAccount(db, w);
    expect([acct.debitsPending, acct.debitsPosted]).toEqual([70n, 0n]);
    // The hold counts against the limit: 31 more would exceed 100.
    const over = await failure(createTransfer(db, clock, { ...hold, id: uid("hold"), amount: a(31) }));
    expect(over.details.reason).toBe("exceeds_credits");
    expect(
      (await failure(createTransfer(db, clock, { kind: "post", id: uid("post"), pendingId: hold.id, amount: a(71) }))).details.reason,
    ).toBe("exceeds_pending_amount");
    const post = await createTransfer(db, clock, { kind: "post", id: uid("post"), pendingId: hold.id, amount: a(50) });
    expect(post.transfer).toMatchObject({
      kind: "post",
      amount: 50n,
      debitAccountId: w,
      creditAccountId: treasury,
      code: "escrow",
      pendingId: hold.id,
    });
    acct = await getAccount(db, w);
    expect([acct.debitsPending, acct.debitsPosted]).toEqual([0n, 50n]);
    expect(await getHold(db, hold.id)).toMatchObject({ state: "posted", resolvedBy: post.transfer.id });
    const again = await failure(createTransfer(db, clock, { kind: "post", id: uid("post"), pendingId: hold.id }));
    expect(again.kind).toBe("failed_precondition");
    expect(again.message).toMatch(/is posted/);
    expect((await failure(createTransfer(db, clock, { kind: "void", id: uid("void"), pendingId: hold.id }))).kind).toBe(
      "failed_precondition",
    );
    // Replaying the post with its amount omitted differs (full = 70 ≠ 50).
    expect((await failure(createTransfer(db, clock, { kind: "post", id: post.transfer.id, pendingId: hold.id }))).kind).toBe(
      "already_exists",
    );
    expect((await createTransfer(db, clock, { kind: "post", id: post.transfer.id, pendingId: hold.id, amount: a(50) })).created).toBe(
      false,
    );
  });

  it("void releases the hold; posting something that is not a hold is FailedPrecondition; a missing hold NotFound", async () => {
    const db = database.db;
    const { wallet: w, treasury } = await wallet(10);
    const hold = {
      kind: "pending" as const,
      id: uid("hold"),
      debitAccountId: w,
      creditAccountId: treasury,
      amount: a(10),
      ledger: "DEAI",
      code: "escrow",
    };
    await createTransfer(db, clock, hold);
    await createTransfer(db, clock, { kind: "void", id: uid("void"), pendingId: hold.id });
    const acct = await getAccount(db, w);
    expect([acct.debitsPending, acct.debitsPosted, acct.creditsPosted]).toEqual([0n, 0n, 10n]);
    expect((await getHold(db, hold.id)).state).toBe("voided");
    const single = await listTransfers(db, { accountId: w });
    const notHold = single.find((t) => t.kind === "single")!;
    expect((await failure(createTransfer(db, clock, { kind: "post", id: uid("post"), pendingId: notHold.id }))).kind).toBe(
      "failed_precondition",
    );
    expect((await failure(createTransfer(db, clock, { kind: "post", id: uid("post"), pendingId: "nope" }))).kind).toBe("not_found");
    // An id already used outranks a missing hold: AlreadyExists, naming the field.
    const taken = await failure(createTransfer(db, clock, { kind: "post", id: notHold.id, pendingId: "nope" }));
    expect([taken.kind, taken.details.fields]).toEqual(["already_exists", ["pendingId"]]);
  });

  it("expire after the timeout of the clock: expirePending releases it, and a post after the timeout fails even before the sweep", async () => {
    const db = database.db;
    const { wallet: w, treasury } = await wallet(10);
    const hold = {
      kind: "pending" as const,
      id: uid("hold"),
      debitAccountId: w,
      creditAccountId: treasury,
      amount: a(4),
      ledger: "DEAI",
      code: "lease",
      timeoutMs: 60_000,
    };
    await createTransfer(db, clock, hold);
    expect(await expirePending(db, clock)).toBe(0);
    clock.advance(60_000);
    const late = await failure(createTransfer(db, clock, { kind: "post", id: uid("post"), pendingId: hold.id }));
    expect(late.kind).toBe("failed_precondition");
    expect(late.details.reason).toBe("expired");
    expect((await getAccount(db, w)).debitsPending).toBe(4n);
    expect(await expirePending(db, clock)).toBeGreaterThanOrEqual(1);
    expect((await getAccount(db, w)).debitsPending).toBe(0n);
    expect((await getHold(db, hold.id)).state).toBe("expired");
    expect(await expirePending(db, clock)).toBe(0);
    expect((await failure(createTransfer(db, clock, { kind: "void", id: uid("void"), pendingId: hold.id }))).message).toMatch(/is expired/);
  });

  it("a batch is all-or-nothing, and may post a hold it made", async () => {
    const db = database.db;
    const { wallet: w, treasury } = await wallet(10);
    const hold = {
      kind: "pending" as const,
      id: uid("hold"),
      debitAccountId: w,
      creditAccountId: treasury,
      amount: a(6),
      ledger: "DEAI",
      code: "c",
    };
    const ok = await createTransfers(db, clock, [hold, { kind: "post", id: uid("post"), pendingId: hold.id }]);
    expect(ok.map((r) => r.transfer.kind)).toEqual(["pending", "post"]);
    const fine = {
      kind: "single" as const,
      id: uid("s"),
      debitAccountId: w,
      creditAccountId: treasury,
      amount: a(1),
      ledger: "DEAI",
      code: "c",
    };
    const tooMuch = { ...fine, id: uid("s"), amount: a(4) };
    expect((await failure(createTransfers(db, clock, [fine, tooMuch]))).details.reason).toBe("exceeds_credits");
    await expect(getTransfer(db, fine.id)).rejects.toMatchObject({ kind: "not_found" });
    expect((await getAccount(db, w)).debitsPosted).toBe(6n);
  });
});

describe("the database's own guards", () => {
  it("refuse an overdraft written around the API, any update or delete of a transfer, and a second resolution of a hold", async () => {
    const db = database.db;
    const { wallet: w, treasury } = await wallet(10);
    await expect(sql`update money_accounts set debits_posted = debits_posted + 11 where id = ${w}`.execute(db)).rejects.toMatchObject({
      code: "23514",
      constraint: "money_accounts_debits_within_credits",
    });
    await expect(sql`update money_accounts set credits_pending = -1 where id = ${treasury}`.execute(db)).rejects.toMatchObject({
      constraint: "money_accounts_balances_in_range",
    });
    await expect(sql`update money_accounts set ledger = 'USD' where id = ${w}`.execute(db)).rejects.toThrow(/balances only/);
    const [t] = await listTransfers(db, { accountId: w });
    await expect(sql`update money_transfers set amount = 1000 where id = ${t!.id}`.execute(db)).rejects.toThrow(/immutable/);
    await expect(sql`delete from money_transfers where id = ${t!.id}`.execute(db)).rejects.toThrow(/immutable/);
    await expect(sql`truncate money_transfers cascade`.execute(db)).rejects.toThrow(/immutable/);
    const hold = {
      kind: "pending" as const,
      id: uid("hold"),
      debitAccountId: w,
      creditAccountId: treasury,
      amount: a(1),
      ledger: "DEAI",
      code: "c",
    };
    await createTransfer(db, clock, hold);
    await createTransfer(db, clock, { kind: "void", id: uid("void"), pendingId: hold.id });
    await expect(sql`update money_pending set state = 'posted' where transfer_id = ${hold.id}`.execute(db)).rejects.toThrow(/is voided/);
    await expect(
      sql`insert into money_transfers (id, kind, debit_account_id, credit_account_id, amount, ledger, code, created_at)
          values ('neg', 'single', ${w}, ${treasury}, -5, 'DEAI', 'c', now())`.execute(db),
    ).rejects.toMatchObject({ code: "23514" });
    expect((await auditBooks(db)).problems).toEqual([]);
  });

  it("the audit notices balances that do not match their transfers", async () => {
    const db = database.db;
    const { treasury } = await wallet(0);
    let broken: Awaited<ReturnType<typeof auditBooks>> | undefined;
    // Inside a transaction that is then rolled back: the audit runs on the caller's transaction.
    await db
      .transaction()
      .execute(async (trx) => {
        await sql`update money_accounts set credits_posted = credits_posted + 1 where id = ${treasury}`.execute(trx);
        broken = await auditBooks(trx);
        throw new Error("roll back");
      })
      .catch(() => undefined);
    expect(broken!.problems).toEqual([expect.stringContaining("posted debits"), expect.stringContaining(`account ${treasury}: balances`)]);
    const sound = await auditBooks(db);
    expect(sound.problems).toEqual([]);
    expect(sound.debitsPosted).toBe(sound.creditsPosted);
  });
});

describe("int8 columns", () => {
  it("always come back as bigint, small or large, scalar or array (the kit's pg type parser)", async () => {
    const r = await sql<{ small: unknown; large: unknown; none: unknown; list: unknown; counted: unknown }>`
      select 1::int8 as small, 9007199254740993::int8 as large, null::int8 as none,
             array[1, null, 9223372036854775807]::int8[] as list, count(*) as counted from money_accounts`.execute(database.db);
    const row = r.rows[0]!;
    expect(row.small).toBe(1n);
    expect(row.large).toBe(9007199254740993n);
    expect(row.none).toBeNull();
    expect(row.list).toEqual([1n, null, 9223372036854775807n]);
    expect(typeof row.counted).toBe("bigint");
  });
});

describe("transactions", () => {
  it("retry serialization failures and deadlocks a bounded number of times, then Aborted", async () => {
    const db = database.db;
    let attempts = 0;
    const flaky = await inMoneyTransaction(db, async (trx) => {
      await sql`select 1`.execute(trx);
      if (++attempts < 3) throw Object.assign(new Error("could not serialize access"), { code: attempts === 1 ? "40001" : "40P01" });
      return "done";
    });
    expect([flaky, attempts]).toEqual(["done", 3]);
    attempts = 0;
    const e = await failure(
      inMoneyTransaction(db, async () => {
        attempts++;
        throw Object.assign(new Error("deadlock detected"), { code: "40P01" });
      }),
    );
    expect([e.kind, attempts]).toEqual(["aborted", 8]);
    attempts = 0;
    await expect(
      inMoneyTransaction(db, async () => {
        attempts++;
        throw Object.assign(new Error("other"), { code: "23503" });
      }),
    ).rejects.toThrow("other");
    expect(attempts).toBe(1);
  });

  it("run inside the caller's transaction: a hold commits or rolls back with the caller's own rows", async () => {
    const db = database.db;
    const { wallet: w, treasury } = await wallet(10);
    await sql`create table if not exists orders (id text primary key)`.execute(db);
    const hold = (id: string) => ({
      kind: "pending" as const,
      id,
      debitAccountId: w,
      creditAccountId: treasury,
      amount: a(3),
      ledger: "DEAI",
      code: "escrow",
    });
    const rolledBack = uid("order");
    await db
      .transaction()
      .execute(async (trx) => {
        await sql`insert into orders values (${rolledBack})`.execute(trx);
        await createTransfer(trx, clock, hold(`escrow-${rolledBack}`));
        throw new Error("the order failed");
      })
      .catch(() => undefined);
    await expect(getTransfer(db, `escrow-${rolledBack}`)).rejects.toMatchObject({ kind: "not_found" });
    expect((await getAccount(db, w)).debitsPending).toBe(0n);
    const committed = uid("order");
    await db.transaction().execute(async (trx) => {
      await sql`insert into orders values (${committed})`.execute(trx);
      await createTransfer(trx, clock, hold(`escrow-${committed}`));
    });
    expect((await getHold(db, `escrow-${committed}`)).state).toBe("pending");
    expect((await getAccount(db, w)).debitsPending).toBe(3n);
  });
});
