import { sql, type Kysely, type RawBuilder, type Transaction } from "kysely";

import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from "../errors.js";
import type { Clock } from "../time/clock.js";
import { amount, type Amount } from "./amount.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type MoneyDb = Kysely<any> | Transaction<any>;

/** TigerBeetle's account flags: at most one may be set. */
export interface AccountFlags {
  /** An asset the owner holds (escrow, stake, a wallet): it never pays out more than it received. */
  readonly debitsMustNotExceedCredits: boolean;
  /** The mirror: an account that never receives more than it paid out. */
  readonly creditsMustNotExceedDebits: boolean;
}

export interface AccountInput {
  /** Chosen by the service, e.g. `escrow:order-42`; at most 200 characters. */
  readonly id: string;
  /** The currency: transfers only move between accounts of one ledger. */
  readonly ledger: string;
  /** What the account is for ("escrow", "stake", "revenue", "treasury"), for reports. */
  readonly kind: string;
  readonly flags?: Partial<AccountFlags>;
}

export interface Account {
  readonly id: string;
  readonly ledger: string;
  readonly kind: string;
  readonly flags: AccountFlags;
  readonly debitsPending: Amount;
  readonly debitsPosted: Amount;
  readonly creditsPending: Amount;
  readonly creditsPosted: Amount;
  readonly createdAt: Date;
}

export interface AccountRow {
  id: string;
  ledger: string;
  kind: string;
  debits_must_not_exceed_credits: boolean;
  credits_must_not_exceed_debits: boolean;
  debits_pending: string;
  debits_posted: string;
  credits_pending: string;
  credits_posted: string;
  created_at: Date;
}

/** The one decoder of an account row (numeric columns arrive as strings). */
export function decodeAccount(r: AccountRow): Account {
  return {
    id: r.id,
    ledger: r.ledger,
    kind: r.kind,
    flags: { debitsMustNotExceedCredits: r.debits_must_not_exceed_credits, creditsMustNotExceedDebits: r.credits_must_not_exceed_debits },
    debitsPending: amount(BigInt(r.debits_pending)),
    debitsPosted: amount(BigInt(r.debits_posted)),
    creditsPending: amount(BigInt(r.credits_pending)),
    creditsPosted: amount(BigInt(r.credits_posted)),
    createdAt: r.created_at,
  };
}

/** credits_posted − debits_posted: what the account holds when credits are its side (signed). */
export function postedBalance(a: Account): bigint {
  return a.creditsPosted - a.debitsPosted;
}

/** What a debit-limited account can still pay or hold: credits_posted − debits_posted − debits_pending. */
export function availableBalance(a: Account): bigint {
  return a.creditsPosted - a.debitsPosted - a.debitsPending;
}

export function checkId(id: unknown, field: string): string {
  if (typeof id !== "string" || id.length === 0 || id.length > 200) {
    throw new InvalidArgumentError(`${field} must be a non-empty string of at most 200 characters`, { field });
  }
  return id;
}

function checkAccountInput(input: AccountInput): Required<AccountInput> & { flags: AccountFlags } {
  checkId(input.id, "account id");
  if (typeof input.ledger !== "string" || input.ledger === "")
    throw new InvalidArgumentError("ledger must be a non-empty string", { field: "ledger" });
  if (typeof input.kind !== "string" || input.kind === "")
    throw new InvalidArgumentError("kind must be a non-empty string", { field: "kind" });
  const flags: AccountFlags = {
    debitsMustNotExceedCredits: input.flags?.debitsMustNotExceedCredits ?? false,
    creditsMustNotExceedDebits: input.flags?.creditsMustNotExceedDebits ?? false,
  };
  if (flags.debitsMustNotExceedCredits && flags.creditsMustNotExceedDebits) {
    throw new InvalidArgumentError(`account ${input.id}: debitsMustNotExceedCredits and creditsMustNotExceedDebits are exclusive`, {
      field: "flags",
    });
  }
  return { ...input, flags };
}

/**
 * Opens an account with zero balances. Idempotent: the same id with the same ledger, kind
 * and flags returns the existing account; with any other field, AlreadyExists naming it.
 */
export async function createAccount(db: MoneyDb, clock: Clock, input: AccountInput): Promise<Account> {
  const a = checkAccountInput(input);
  const inserted = await sql<AccountRow>`
    insert into money_accounts (id, ledger, kind, debits_must_not_exceed_credits, credits_must_not_exceed_debits, created_at)
    values (${a.id}, ${a.ledger}, ${a.kind}, ${a.flags.debitsMustNotExceedCredits}, ${a.flags.creditsMustNotExceedDebits}, ${clock.now()})
    on conflict (id) do nothing
    returning *`.execute(db);
  if (inserted.rows[0]) return decodeAccount(inserted.rows[0]);
  return sameAccount(a, await getAccount(db, a.id));
}

/**
 * Opens many accounts in one statement (a batch of orders' escrow accounts), with
 * `createAccount`'s idempotency per id. Returns how many were new.
 */
export async function createAccounts(db: MoneyDb, clock: Clock, inputs: readonly AccountInput[]): Promise<number> {
  if (inputs.length === 0) return 0;
  const all = inputs.map(checkAccountInput);
  const inserted = await accountsInsert(clock, all).execute(db);
  if (inserted.rows.length === all.length) return inserted.rows.length;
  const fresh = new Set(inserted.rows.map((r) => r.id));
  const existing = new Map(
    (
      await getAccounts(
        db,
        all.filter((a) => !fresh.has(a.id)).map((a) => a.id),
      )
    ).map((e) => [e.id, e]),
  );
  for (const a of all) if (!fresh.has(a.id)) sameAccount(a, existing.get(a.id)!);
  return inserted.rows.length;
}

/**
 * The INSERT of new accounts (zero balances, existing ids skipped) as a statement to compose
 * into a larger write (a CTE); it returns the ids it inserted. With `only` (a subquery of ids
 * of the same statement), just those inputs. Inputs are checked here; an id that exists is the
 * caller's to judge (`createAccounts` refuses one that differs).
 */
export function accountsInsert(clock: Clock, inputs: readonly AccountInput[], only?: RawBuilder<unknown>): RawBuilder<{ id: string }> {
  const all = inputs.map(checkAccountInput);
  return sql<{ id: string }>`
    insert into money_accounts (id, ledger, kind, debits_must_not_exceed_credits, credits_must_not_exceed_debits, created_at)
    select id, ledger, kind, d, c, ${clock.now()}
    from unnest(${all.map((a) => a.id)}::text[], ${all.map((a) => a.ledger)}::text[], ${all.map((a) => a.kind)}::text[],
                ${all.map((a) => a.flags.debitsMustNotExceedCredits)}::boolean[], ${all.map((a) => a.flags.creditsMustNotExceedDebits)}::boolean[])
         as x (id, ledger, kind, d, c)
    ${only ? sql`where id in (${only})` : sql``}
    on conflict (id) do nothing
    returning id`;
}

/** An existing account `a` asked for again: itself when ledger, kind and flags agree, else AlreadyExists naming the fields. */
function sameAccount(a: ReturnType<typeof checkAccountInput>, existing: Account): Account {
  const differs = [
    existing.ledger !== a.ledger && "ledger",
    existing.kind !== a.kind && "kind",
    (existing.flags.debitsMustNotExceedCredits !== a.flags.debitsMustNotExceedCredits ||
      existing.flags.creditsMustNotExceedDebits !== a.flags.creditsMustNotExceedDebits) &&
      "flags",
  ].filter((x): x is string => typeof x === "string");
  if (differs.length > 0) {
    throw new AlreadyExistsError(`account ${a.id} already exists with a different ${differs.join(", ")}`, { id: a.id, fields: differs });
  }
  return existing;
}

/** One account; NotFound when there is none. */
export async function getAccount(db: MoneyDb, id: string): Promise<Account> {
  const [a] = await getAccounts(db, [id]);
  if (!a) throw new NotFoundError(`account ${id} not found`, { id });
  return a;
}

/** The accounts that exist among `ids`, in id order. */
export async function getAccounts(db: MoneyDb, ids: readonly string[]): Promise<Account[]> {
  if (ids.length === 0) return [];
  const r = await sql<AccountRow>`select * from money_accounts where id = any(${[...ids]}::text[]) order by id`.execute(db);
  return r.rows.map(decodeAccount);
}

/**
 * Locks `ids` FOR UPDATE in one statement, in id order (the order every money transaction
 * uses, so two of them never wait on each other in a cycle), and returns them by id.
 */
export async function lockAccounts(trx: Transaction<unknown>, ids: Iterable<string>): Promise<Map<string, Account>> {
  const sorted = [...new Set(ids)].sort();
  const r = await sql<AccountRow>`
    select * from money_accounts where id = any(${sorted}::text[]) order by id collate "C" for update`.execute(trx);
  return new Map(r.rows.map((row) => [row.id, decodeAccount(row)]));
}
