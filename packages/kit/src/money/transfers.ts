/**
 * Transfers between accounts, after TigerBeetle (docs/coding/two-phase-transfers.md): a
 * transfer debits one account and credits another by one amount and is never changed. A
 * `pending` transfer holds the amount (debits_pending / credits_pending) until a `post`
 * (the full amount or less; the rest is released), a `void`, or its timeout
 * (`expirePending`). Transfers are idempotent by id. Balances change in the same
 * transaction as the transfer row, under row locks taken in account-id order; the CHECK
 * constraints of the accounts table refuse an overdraft whatever the code does.
 */
import { sql, type Transaction } from "kysely";

import { AlreadyExistsError, DomainError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errors.js";
import { StateMachine } from "../state/state-machine.js";
import type { Clock } from "../time/clock.js";
import { checkId, lockAccounts, type Account, type MoneyDb } from "./accounts.js";
import { amount, formatAmount, type Amount } from "./amount.js";
import { constraintOf, inMoneyTransaction, sqlState } from "./money-transaction.js";

export type TransferKind = "single" | "pending" | "post" | "void";

/** Where a pending transfer stands. */
export type HoldState = "pending" | "posted" | "voided" | "expired";

export const holdStates = new StateMachine<HoldState>("pending transfer", {
  pending: ["posted", "voided", "expired"],
  posted: [],
  voided: [],
  expired: [],
});

interface Common {
  /** The idempotency key, chosen by the caller (e.g. `escrow-fund:order-42`); at most 200 characters. */
  readonly id: string;
  /** Free text to find transfers by (an order id, a slash id). */
  readonly reference?: string;
}

/** Moves `amount` at once. */
export interface SingleTransferInput extends Common {
  readonly kind: "single";
  readonly debitAccountId: string;
  readonly creditAccountId: string;
  readonly amount: Amount;
  readonly ledger: string;
  /** Why the money moved ("escrow.fund", "stake.slash"). */
  readonly code: string;
}

/** Holds `amount` until posted, voided, or `timeoutMs` of the clock has passed. */
export interface PendingTransferInput extends Omit<SingleTransferInput, "kind"> {
  readonly kind: "pending";
  /** Milliseconds after creation at which `expirePending` releases the hold; none: held until posted or voided. */
  readonly timeoutMs?: number;
}

/** Moves `amount` (default: all) of a pending transfer; releases the rest. */
export interface PostTransferInput extends Common {
  readonly kind: "post";
  readonly pendingId: string;
  readonly amount?: Amount;
  /** @default the pending transfer's code */
  readonly code?: string;
}

/** Releases a pending transfer. */
export interface VoidTransferInput extends Common {
  readonly kind: "void";
  readonly pendingId: string;
  /** @default the pending transfer's code */
  readonly code?: string;
}

export type TransferInput = SingleTransferInput | PendingTransferInput | PostTransferInput | VoidTransferInput;

export interface Transfer {
  readonly id: string;
  /** Commit order within the books. */
  readonly seq: bigint;
  readonly kind: TransferKind;
  readonly debitAccountId: string;
  readonly creditAccountId: string;
  readonly amount: Amount;
  readonly ledger: string;
  readonly code: string;
  /** For post and void: the pending transfer it resolves. */
  readonly pendingId: string | null;
  readonly timeoutMs: number | null;
  readonly reference: string | null;
  readonly createdAt: Date;
}

export interface TransferResult {
  readonly transfer: Transfer;
  /** false when the id had already been applied with the same fields (an idempotent replay). */
  readonly created: boolean;
}

export interface Hold {
  readonly transfer: Transfer;
  readonly state: HoldState;
  readonly expiresAt: Date | null;
  /** The post or void transfer that resolved it. */
  readonly resolvedBy: string | null;
  readonly resolvedAt: Date | null;
}

export interface TransferRow {
  id: string;
  seq: bigint;
  kind: TransferKind;
  debit_account_id: string;
  credit_account_id: string;
  amount: string;
  ledger: string;
  code: string;
  pending_id: string | null;
  timeout_ms: bigint | null;
  reference: string | null;
  created_at: Date;
}

/** The one decoder of a transfer row. */
export function decodeTransfer(r: TransferRow): Transfer {
  return {
    id: r.id,
    seq: r.seq,
    kind: r.kind,
    debitAccountId: r.debit_account_id,
    creditAccountId: r.credit_account_id,
    amount: amount(BigInt(r.amount)),
    ledger: r.ledger,
    code: r.code,
    pendingId: r.pending_id,
    timeoutMs: r.timeout_ms === null ? null : Number(r.timeout_ms),
    reference: r.reference,
    createdAt: r.created_at,
  };
}

/** The fields that decide whether a replay of an id is the same transfer. */
const COMPARED = ["kind", "debitAccountId", "creditAccountId", "amount", "ledger", "code", "pendingId", "timeoutMs", "reference"] as const;
type Intended = Pick<Transfer, (typeof COMPARED)[number]>;

function checkInput(t: TransferInput): void {
  checkId(t.id, "transfer id");
  if (t.reference !== undefined && typeof t.reference !== "string")
    throw new InvalidArgumentError("reference must be a string", { id: t.id });
  switch (t.kind) {
    case "single":
    case "pending":
      checkId(t.debitAccountId, "debitAccountId");
      checkId(t.creditAccountId, "creditAccountId");
      if (t.debitAccountId === t.creditAccountId) {
        throw new InvalidArgumentError(`transfer ${t.id}: debit and credit accounts are the same (${t.debitAccountId})`, { id: t.id });
      }
      checkPositive(t.id, t.amount);
      if (typeof t.ledger !== "string" || t.ledger === "")
        throw new InvalidArgumentError(`transfer ${t.id}: ledger must be a non-empty string`, { id: t.id });
      checkCode(t.id, t.code);
      if (t.kind === "pending" && t.timeoutMs !== undefined && !(Number.isSafeInteger(t.timeoutMs) && t.timeoutMs > 0)) {
        throw new InvalidArgumentError(`transfer ${t.id}: timeoutMs must be a positive integer, got ${t.timeoutMs}`, { id: t.id });
      }
      return;
    case "post":
    case "void":
      checkId(t.pendingId, "pendingId");
      if (t.kind === "post" && t.amount !== undefined) checkPositive(t.id, t.amount);
      if (t.code !== undefined) checkCode(t.id, t.code);
      return;
    default:
      throw new InvalidArgumentError(`transfer kind must be single, pending, post or void`, { kind: (t as { kind: unknown }).kind });
  }
}

function checkPositive(id: string, a: Amount): void {
  amount(a, `transfer ${id} amount`);
  if (a === 0n) throw new InvalidArgumentError(`transfer ${id}: amount must be positive`, { id });
}

function checkCode(id: string, code: unknown): void {
  if (typeof code !== "string" || code === "") throw new InvalidArgumentError(`transfer ${id}: code must be a non-empty string`, { id });
}

/** What the transfer row will hold once applied; post/void take their accounts from the hold. */
function intended(t: TransferInput, pending: Transfer | undefined): Intended {
  if (t.kind === "single" || t.kind === "pending") {
    return {
      kind: t.kind,
      debitAccountId: t.debitAccountId,
      creditAccountId: t.creditAccountId,
      amount: t.amount,
      ledger: t.ledger,
      code: t.code,
      pendingId: null,
      timeoutMs: t.kind === "pending" ? (t.timeoutMs ?? null) : null,
      reference: t.reference ?? null,
    };
  }
  const p = pending!;
  return {
    kind: t.kind,
    debitAccountId: p.debitAccountId,
    creditAccountId: p.creditAccountId,
    amount: t.kind === "post" ? (t.amount ?? p.amount) : p.amount,
    ledger: p.ledger,
    code: t.code ?? p.code,
    pendingId: p.id,
    timeoutMs: null,
    reference: t.reference ?? null,
  };
}

/**
 * Applies transfers all-or-nothing, in order, in one transaction (TigerBeetle's linked
 * events): a later transfer may post a hold made earlier in the same call. Each id already
 * applied with the same fields is returned with `created: false`; with different fields it
 * fails with AlreadyExists naming them. Errors: InvalidArgument (malformed), NotFound (an
 * account or hold), FailedPrecondition (ledgers differ, a limit would be exceeded, the hold
 * is already resolved or expired), Aborted (contention outlasted the retries). On any
 * error nothing was applied. Time (created_at, expiry) comes from `clock`.
 */
export async function createTransfers(db: MoneyDb, clock: Clock, inputs: readonly TransferInput[]): Promise<TransferResult[]> {
  if (inputs.length === 0) return [];
  for (const t of inputs) checkInput(t);
  const ids = new Set<string>();
  for (const t of inputs) {
    if (ids.has(t.id)) throw new InvalidArgumentError(`transfer id ${t.id} appears twice in one batch`, { id: t.id });
    ids.add(t.id);
  }
  return inMoneyTransaction(db, (trx) => applyTransfers(trx, clock, inputs));
}

/** One transfer: `createTransfers` with one element. */
export async function createTransfer(db: MoneyDb, clock: Clock, input: TransferInput): Promise<TransferResult> {
  const [r] = await createTransfers(db, clock, [input]);
  return r!;
}

async function applyTransfers(trx: Transaction<unknown>, clock: Clock, inputs: readonly TransferInput[]): Promise<TransferResult[]> {
  const now = clock.now();
  const pendingIds = inputs.flatMap((t) => (t.kind === "post" || t.kind === "void" ? [t.pendingId] : []));
  // Holds are immutable transfer rows: safe to read before taking any lock.
  const known = pendingIds.length > 0 ? await transfersById(trx, pendingIds) : new Map<string, Transfer>();
  const batch = new Map<string, TransferInput>(inputs.map((t) => [t.id, t]));

  // Every account the batch touches is locked at once, in id order, before anything is read
  // or written, so two money transactions never wait on each other in a cycle. Replays lock
  // too: only after the lock is a concurrent twin of the same id surely committed.
  const touched = new Set<string>();
  for (const t of inputs) {
    if (t.kind === "single" || t.kind === "pending") {
      touched.add(t.debitAccountId).add(t.creditAccountId);
      continue;
    }
    const p = known.get(t.pendingId) ?? batch.get(t.pendingId);
    if (!p || p.kind !== "pending") {
      // The id taken by another transfer outranks what is wrong with this one.
      const existing = (await transfersById(trx, [t.id])).get(t.id);
      if (existing) {
        throw new AlreadyExistsError(`transfer ${t.id} already exists with a different pendingId`, {
          id: t.id,
          fields: ["pendingId"],
          pendingId: { existing: existing.pendingId, requested: t.pendingId },
        });
      }
      if (!p) throw new NotFoundError(`transfer ${t.id}: pending transfer ${t.pendingId} not found`, { id: t.id, pendingId: t.pendingId });
      throw new FailedPreconditionError(`transfer ${t.id}: ${t.pendingId} is a ${p.kind} transfer, not a pending one`, {
        id: t.id,
        pendingId: t.pendingId,
      });
    }
    touched.add(p.debitAccountId).add(p.creditAccountId);
  }
  const accounts = await lockAccounts(trx, touched);

  const results: TransferResult[] = [];
  for (const t of inputs) {
    const pending = t.kind === "post" || t.kind === "void" ? known.get(t.pendingId) : undefined;
    if (pending === undefined && (t.kind === "post" || t.kind === "void")) {
      throw new InvalidArgumentError(`transfer ${t.id}: pending transfer ${t.pendingId} comes later in the batch`, { id: t.id });
    }
    const r = await applyOne(trx, now, t, pending, accounts);
    known.set(r.transfer.id, r.transfer);
    results.push(r);
  }
  return results;
}

function sameAsExisting(existing: Transfer, want: Intended): Transfer {
  const differs = COMPARED.filter((f) => existing[f] !== want[f]);
  if (differs.length > 0) {
    throw new AlreadyExistsError(`transfer ${existing.id} already exists with a different ${differs.join(", ")}`, {
      id: existing.id,
      fields: differs,
      ...Object.fromEntries(differs.map((f) => [f, { existing: show(existing[f]), requested: show(want[f]) }])),
    });
  }
  return existing;
}

function show(v: unknown): unknown {
  return typeof v === "bigint" ? formatAmount(v) : v;
}

interface Deltas {
  debitsPending: bigint;
  debitsPosted: bigint;
  creditsPending: bigint;
  creditsPosted: bigint;
}

async function applyOne(
  trx: Transaction<unknown>,
  now: Date,
  t: TransferInput,
  pending: Transfer | undefined,
  accounts: ReadonlyMap<string, Account>,
): Promise<TransferResult> {
  const want = intended(t, pending);
  let deltas: { debit: Deltas; credit: Deltas };
  try {
    deltas = await prepare(trx, now, t, want, pending, accounts);
  } catch (e) {
    // A replay may no longer pass the checks its first application passed (the hold is
    // posted now, by this very id): the existing transfer decides.
    if (e instanceof DomainError) return { transfer: await existingOr(trx, t.id, want, e), created: false };
    throw e;
  }
  try {
    const r = await sql<TransferRow & { created: boolean }>`
      with t as (
        insert into money_transfers (id, kind, debit_account_id, credit_account_id, amount, ledger, code, pending_id, timeout_ms, reference, created_at)
        values (${t.id}, ${want.kind}, ${want.debitAccountId}, ${want.creditAccountId}, ${want.amount}::numeric, ${want.ledger}, ${want.code},
                ${want.pendingId}, ${want.timeoutMs}::bigint, ${want.reference}, ${now})
        on conflict (id) do nothing
        returning *
      ), hold as (
        insert into money_pending (transfer_id, expires_at)
        select id, created_at + timeout_ms * interval '1 millisecond' from t where kind = 'pending'
      ), balances as (
        update money_accounts a set
          debits_pending = a.debits_pending + d.dpe, debits_posted = a.debits_posted + d.dpo,
          credits_pending = a.credits_pending + d.cpe, credits_posted = a.credits_posted + d.cpo
        from (values
          (${want.debitAccountId}::text, ${deltas.debit.debitsPending}::numeric, ${deltas.debit.debitsPosted}::numeric, 0::numeric, 0::numeric),
          (${want.creditAccountId}::text, 0::numeric, 0::numeric, ${deltas.credit.creditsPending}::numeric, ${deltas.credit.creditsPosted}::numeric)
        ) as d (id, dpe, dpo, cpe, cpo)
        where a.id = d.id and exists (select 1 from t)
      )
      select true as created, * from t
      union all
      -- The id was taken (a replay, or another transfer under this id): nothing was written.
      select false, * from money_transfers where id = ${t.id} and not exists (select 1 from t)`.execute(trx);
    const row = r.rows[0]!;
    const transfer = decodeTransfer(row);
    return row.created ? { transfer, created: true } : { transfer: sameAsExisting(transfer, want), created: false };
  } catch (e) {
    throw limitError(e, t.id, want.debitAccountId, want.creditAccountId) ?? e;
  }
}

/** The checks before a transfer is written, and the balance changes it makes. */
async function prepare(
  trx: Transaction<unknown>,
  now: Date,
  t: TransferInput,
  want: Intended,
  pending: Transfer | undefined,
  accounts: ReadonlyMap<string, Account>,
): Promise<{ debit: Deltas; credit: Deltas }> {
  const debit = accounts.get(want.debitAccountId);
  const credit = accounts.get(want.creditAccountId);
  if (!debit)
    throw new NotFoundError(`transfer ${t.id}: debit account ${want.debitAccountId} not found`, {
      id: t.id,
      accountId: want.debitAccountId,
    });
  if (!credit)
    throw new NotFoundError(`transfer ${t.id}: credit account ${want.creditAccountId} not found`, {
      id: t.id,
      accountId: want.creditAccountId,
    });
  for (const a of [debit, credit]) {
    if (a.ledger !== want.ledger) {
      throw new FailedPreconditionError(`transfer ${t.id}: account ${a.id} is on ledger ${a.ledger}, the transfer on ${want.ledger}`, {
        id: t.id,
        accountId: a.id,
        reason: "ledger_mismatch",
      });
    }
  }
  const zero: Deltas = { debitsPending: 0n, debitsPosted: 0n, creditsPending: 0n, creditsPosted: 0n };
  if (t.kind === "single") return { debit: { ...zero, debitsPosted: want.amount }, credit: { ...zero, creditsPosted: want.amount } };
  if (t.kind === "pending") return { debit: { ...zero, debitsPending: want.amount }, credit: { ...zero, creditsPending: want.amount } };
  const held = pending!.amount;
  if (t.kind === "post" && want.amount > held) {
    throw new FailedPreconditionError(`transfer ${t.id}: amount ${want.amount} exceeds the pending amount ${held} of ${pending!.id}`, {
      id: t.id,
      pendingId: pending!.id,
      reason: "exceeds_pending_amount",
    });
  }
  await resolveHold(trx, now, t.id, pending!.id, t.kind === "post" ? "posted" : "voided");
  const posted = t.kind === "post" ? want.amount : 0n;
  return {
    debit: { ...zero, debitsPending: 0n - held, debitsPosted: posted },
    credit: { ...zero, creditsPending: 0n - held, creditsPosted: posted },
  };
}

/** The transfer already stored under `id` when it matches `want`; `error` when there is none. */
async function existingOr(trx: Transaction<unknown>, id: string, want: Intended, error: Error): Promise<Transfer> {
  const existing = (await transfersById(trx, [id])).get(id);
  if (!existing) throw error;
  return sameAsExisting(existing, want);
}

/** Moves a hold out of "pending", or says precisely why it cannot. */
async function resolveHold(trx: Transaction<unknown>, now: Date, by: string, pendingId: string, to: "posted" | "voided"): Promise<void> {
  const r = await sql<{ transfer_id: string }>`
    update money_pending set state = ${to}, resolved_by = ${by}, resolved_at = ${now}
    where transfer_id = ${pendingId} and state = 'pending' and (expires_at is null or expires_at > ${now})
    returning transfer_id`.execute(trx);
  if (r.rows.length === 1) return;
  const s = await sql<{ state: HoldState }>`select state from money_pending where transfer_id = ${pendingId}`.execute(trx);
  const state = s.rows[0]?.state;
  if (state === undefined) throw new NotFoundError(`pending transfer ${pendingId} has no hold`, { pendingId });
  if (state === "pending") {
    // Past its timeout but not yet swept by expirePending: it is expired all the same.
    throw new FailedPreconditionError(`pending transfer ${pendingId} has expired: it cannot become ${to}`, {
      entity: holdStates.entity,
      id: pendingId,
      from: "expired",
      to,
      reason: "expired",
    });
  }
  throw holdStates.illegal(state, to, pendingId);
}

/** The precise error for a balance CHECK the database refused, or undefined for any other error. */
function limitError(e: unknown, id: string, debitId: string, creditId: string): DomainError | undefined {
  if (sqlState(e) !== "23514") return undefined;
  switch (constraintOf(e)) {
    case "money_accounts_debits_within_credits":
      return new FailedPreconditionError(`transfer ${id}: debits would exceed credits on account ${debitId}`, {
        id,
        accountId: debitId,
        reason: "exceeds_credits",
      });
    case "money_accounts_credits_within_debits":
      return new FailedPreconditionError(`transfer ${id}: credits would exceed debits on account ${creditId}`, {
        id,
        accountId: creditId,
        reason: "exceeds_debits",
      });
    case "money_accounts_balances_in_range":
      return new FailedPreconditionError(`transfer ${id}: a balance would exceed 2^128 − 1`, { id, reason: "overflow" });
    default:
      return undefined;
  }
}

async function transfersById(db: MoneyDb, ids: readonly string[]): Promise<Map<string, Transfer>> {
  const r = await sql<TransferRow>`select * from money_transfers where id = any(${[...new Set(ids)]}::text[])`.execute(db);
  return new Map(r.rows.map((row) => [row.id, decodeTransfer(row)]));
}

/** One transfer; NotFound when there is none. */
export async function getTransfer(db: MoneyDb, id: string): Promise<Transfer> {
  const t = (await transfersById(db, [id])).get(id);
  if (!t) throw new NotFoundError(`transfer ${id} not found`, { id });
  return t;
}

/** A pending transfer and where its hold stands; NotFound when `id` is no pending transfer. */
export async function getHold(db: MoneyDb, id: string): Promise<Hold> {
  const r = await sql<TransferRow & { state: HoldState; expires_at: Date | null; resolved_by: string | null; resolved_at: Date | null }>`
    select t.*, p.state, p.expires_at, p.resolved_by, p.resolved_at
    from money_pending p join money_transfers t on t.id = p.transfer_id where p.transfer_id = ${id}`.execute(db);
  const row = r.rows[0];
  if (!row) throw new NotFoundError(`pending transfer ${id} not found`, { id });
  return {
    transfer: decodeTransfer(row),
    state: row.state,
    expiresAt: row.expires_at,
    resolvedBy: row.resolved_by,
    resolvedAt: row.resolved_at,
  };
}

/** Transfers touching an account or carrying a reference, oldest first. */
export async function listTransfers(db: MoneyDb, filter: { accountId?: string; reference?: string; limit?: number }): Promise<Transfer[]> {
  if (filter.accountId === undefined && filter.reference === undefined)
    throw new InvalidArgumentError("listTransfers needs an accountId or a reference");
  const limit = Math.min(Math.max(filter.limit ?? 1000, 1), 10_000);
  const r = await sql<TransferRow>`
    select * from money_transfers
    where (${filter.accountId ?? null}::text is null or debit_account_id = ${filter.accountId ?? null} or credit_account_id = ${filter.accountId ?? null})
      and (${filter.reference ?? null}::text is null or reference = ${filter.reference ?? null})
    order by seq limit ${limit}`.execute(db);
  return r.rows.map(decodeTransfer);
}
