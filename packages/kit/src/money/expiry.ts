import { sql } from "kysely";

import type { Clock } from "../time/clock.js";
import { lockAccounts, type MoneyDb } from "./accounts.js";
import { inMoneyTransaction } from "./money-transaction.js";

export interface ExpireOptions {
  /** Holds released per transaction (their accounts stay locked meanwhile). @default 100 */
  readonly batchSize?: number;
}

/**
 * Releases every pending transfer whose timeout has passed by `clock.now()`: the hold becomes
 * "expired" and its amount leaves debits_pending/credits_pending. For the kit scheduler to
 * call on an interval; safe to run from several replicas at once (a hold is expired once,
 * and a post racing its expiry either wins or sees it expired). Returns how many expired.
 */
export async function expirePending(db: MoneyDb, clock: Clock, opts: ExpireOptions = {}): Promise<number> {
  const batchSize = opts.batchSize ?? 100;
  const now = clock.now();
  let total = 0;
  for (;;) {
    const batch = await inMoneyTransaction(db, async (trx) => {
      const due = await sql<{ transfer_id: string; debit_account_id: string; credit_account_id: string }>`
        select p.transfer_id, t.debit_account_id, t.credit_account_id
        from money_pending p join money_transfers t on t.id = p.transfer_id
        where p.state = 'pending' and p.expires_at <= ${now}
        order by p.expires_at, p.transfer_id limit ${batchSize}`.execute(trx);
      if (due.rows.length === 0) return { expired: 0, read: 0 };
      // Accounts first, in id order, as every transfer does; then the holds, conditionally,
      // because a post may have resolved one since the read above.
      await lockAccounts(
        trx,
        due.rows.flatMap((r) => [r.debit_account_id, r.credit_account_id]),
      );
      const expired = await sql<{ n: number }>`
        with e as (
          update money_pending set state = 'expired', resolved_at = ${now}
          where transfer_id = any(${due.rows.map((r) => r.transfer_id)}::text[]) and state = 'pending' and expires_at <= ${now}
          returning transfer_id
        ), released as (
          select t.debit_account_id as id, t.amount as debits, 0::numeric as credits from e join money_transfers t on t.id = e.transfer_id
          union all
          select t.credit_account_id, 0, t.amount from e join money_transfers t on t.id = e.transfer_id
        ), per_account as (
          select id, sum(debits) as debits, sum(credits) as credits from released group by id
        ), balances as (
          update money_accounts a set debits_pending = a.debits_pending - r.debits, credits_pending = a.credits_pending - r.credits
          from per_account r where a.id = r.id
        )
        select count(*)::int as n from e`.execute(trx);
      return { expired: expired.rows[0]!.n, read: due.rows.length };
    });
    total += batch.expired;
    // A short batch means nothing more was due; a full one may have left some behind.
    if (batch.read < batchSize) return total;
  }
}
