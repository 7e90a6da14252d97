import { setTimeout as delay } from "node:timers/promises";

import type { Kysely, Transaction } from "kysely";

import { AbortedError } from "../errors.js";

/** The SQLSTATE of a pg error, if it is one. */
export function sqlState(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** The constraint a pg error names, if any. */
export function constraintOf(e: unknown): string | undefined {
  const c = (e as { constraint?: unknown } | null)?.constraint;
  return typeof c === "string" ? c : undefined;
}

// A concurrent writer of the same transfer id inserted first: on retry we see its row.
const RACED_INSERTS = new Set(["money_transfers_pkey", "money_pending_pkey", "money_accounts_pkey"]);

function retryable(e: unknown): boolean {
  const state = sqlState(e);
  // serialization_failure, deadlock_detected, or a lost race on an id.
  return state === "40001" || state === "40P01" || (state === "23505" && RACED_INSERTS.has(constraintOf(e) ?? ""));
}

/** @default 8 attempts */
export const MONEY_TRANSACTION_ATTEMPTS = 8;

/**
 * Runs `fn` in a transaction, retrying serialization failures, deadlocks and a lost race to
 * insert the same id (a bounded number of times, with jittered backoff), and then gives up
 * with Aborted. When `db` is already a transaction, `fn` runs in it once: the caller owns the
 * transaction, its retries, and its rollback after any error.
 */
export async function inMoneyTransaction<T>(
  db: Kysely<any> | Transaction<any>, // eslint-disable-line @typescript-eslint/no-explicit-any
  fn: (trx: Transaction<any>) => Promise<T>, // eslint-disable-line @typescript-eslint/no-explicit-any
): Promise<T> {
  if (db.isTransaction) {
    try {
      return await fn(db as Transaction<unknown>);
    } catch (e) {
      if (retryable(e)) throw new AbortedError("a concurrent money transaction won; retry", { sqlState: sqlState(e) });
      throw e;
    }
  }
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction().execute(fn);
    } catch (e) {
      if (!retryable(e)) throw e;
      if (attempt >= MONEY_TRANSACTION_ATTEMPTS) {
        throw new AbortedError(`money transaction gave up after ${attempt} attempts: ${(e as Error).message}`, { sqlState: sqlState(e) });
      }
      // Backoff is not business time, so it does not go through the clock.
      await delay(Math.random() * 2 ** attempt);
    }
  }
}
