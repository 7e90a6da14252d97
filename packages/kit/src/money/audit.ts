import { sql } from "kysely";

import type { MoneyDb } from "./accounts.js";
import { inMoneyTransaction } from "./money-transaction.js";

export interface BooksAudit {
  readonly accounts: number;
  readonly transfers: number;
  /** Σ over accounts; equal debits and credits are the zero-sum check. */
  readonly debitsPosted: bigint;
  readonly creditsPosted: bigint;
  readonly debitsPending: bigint;
  readonly creditsPending: bigint;
  /** Empty when the books are sound; otherwise one line per problem. */
  readonly problems: string[];
}

/**
 * Checks the books from first principles in one snapshot: the balances sum to zero, every
 * account's balances equal what its transfers add up to, no flagged account exceeds its
 * limit, and every resolved hold names exactly one post or void of it. For tests, and for an
 * operator's periodic check; it reads every transfer.
 */
export async function auditBooks(db: MoneyDb): Promise<BooksAudit> {
  const run = async (trx: MoneyDb): Promise<BooksAudit> => {
    const totals = await sql<{ accounts: number; dpo: string; cpo: string; dpe: string; cpe: string }>`
      select count(*)::int as accounts, coalesce(sum(debits_posted), 0)::text as dpo, coalesce(sum(credits_posted), 0)::text as cpo,
             coalesce(sum(debits_pending), 0)::text as dpe, coalesce(sum(credits_pending), 0)::text as cpe
      from money_accounts`.execute(trx);
    const count = await sql<{ n: number }>`select count(*)::int as n from money_transfers`.execute(trx);
    const mismatched = await sql<{ id: string; stored: string; computed: string }>`
      with moves as (
        select t.debit_account_id as id,
               case when t.kind in ('single', 'post') then t.amount else 0 end as dpo,
               case when t.kind = 'pending' and p.state = 'pending' then t.amount else 0 end as dpe,
               0::numeric as cpo, 0::numeric as cpe
        from money_transfers t left join money_pending p on p.transfer_id = t.id
        union all
        select t.credit_account_id, 0, 0,
               case when t.kind in ('single', 'post') then t.amount else 0 end,
               case when t.kind = 'pending' and p.state = 'pending' then t.amount else 0 end
        from money_transfers t left join money_pending p on p.transfer_id = t.id
      ), computed as (
        select id, sum(dpo) as dpo, sum(dpe) as dpe, sum(cpo) as cpo, sum(cpe) as cpe from moves group by id
      )
      select a.id,
             concat_ws('/', a.debits_posted, a.debits_pending, a.credits_posted, a.credits_pending) as stored,
             concat_ws('/', coalesce(c.dpo, 0), coalesce(c.dpe, 0), coalesce(c.cpo, 0), coalesce(c.cpe, 0)) as computed
      from money_accounts a left join computed c on c.id = a.id
      where (a.debits_posted, a.debits_pending, a.credits_posted, a.credits_pending)
            is distinct from (coalesce(c.dpo, 0), coalesce(c.dpe, 0), coalesce(c.cpo, 0), coalesce(c.cpe, 0))
      order by a.id`.execute(trx);
    const overLimit = await sql<{ id: string }>`
      select id from money_accounts
      where (debits_must_not_exceed_credits and debits_pending + debits_posted > credits_posted)
         or (credits_must_not_exceed_debits and credits_pending + credits_posted > debits_posted)
         or least(debits_pending, debits_posted, credits_pending, credits_posted) < 0`.execute(trx);
    const badHolds = await sql<{ id: string; state: string; resolutions: number }>`
      select p.transfer_id as id, p.state, count(r.id)::int as resolutions
      from money_pending p left join money_transfers r on r.pending_id = p.transfer_id
      group by p.transfer_id, p.state, p.resolved_by
      having count(r.id) <> case when p.state in ('posted', 'voided') then 1 else 0 end
          or (p.state in ('posted', 'voided') and bool_or(r.id = p.resolved_by) is not true)`.execute(trx);
    const t = totals.rows[0]!;
    const problems = [
      ...(t.dpo !== t.cpo ? [`posted debits ${t.dpo} ≠ posted credits ${t.cpo}`] : []),
      ...(t.dpe !== t.cpe ? [`pending debits ${t.dpe} ≠ pending credits ${t.cpe}`] : []),
      ...mismatched.rows.map(
        (r) => `account ${r.id}: balances ${r.stored} ≠ transfers ${r.computed} (debits posted/pending, credits posted/pending)`,
      ),
      ...overLimit.rows.map((r) => `account ${r.id} is beyond its limit or negative`),
      ...badHolds.rows.map((r) => `hold ${r.id} is ${r.state} with ${r.resolutions} post/void transfers`),
    ];
    return {
      accounts: t.accounts,
      transfers: count.rows[0]!.n,
      debitsPosted: BigInt(t.dpo),
      creditsPosted: BigInt(t.cpo),
      debitsPending: BigInt(t.dpe),
      creditsPending: BigInt(t.cpe),
      problems,
    };
  };
  if (db.isTransaction) return run(db);
  return inMoneyTransaction(db, async (trx) => {
    await sql`set transaction isolation level repeatable read, read only`.execute(trx);
    return run(trx);
  });
}
