import { sql } from "kysely";

import type { ForwardMigration } from "../db/database.js";

// numeric(39,0) bounded to 2^128 − 1 (MAX_AMOUNT in amount.ts).
const U128 = "340282366920938463463374607431768211455";

/**
 * The double-entry tables, for a service to spread into its own migrations (escrow in
 * marketplace's schema, stake in slashing's: same code, separate books). The names sort
 * before a service's own "0001_…"; a service that already applied migrations of its own
 * gives these a later key instead, since migrations apply in name order.
 *
 * What the database itself guarantees, whatever the code does:
 * - no balance column is negative or beyond 2^128 − 1;
 * - an account flagged debits_must_not_exceed_credits never has
 *   debits_pending + debits_posted > credits_posted (and symmetrically for credits);
 * - a transfer row is never updated or deleted; a pending hold leaves "pending" once, and
 *   only to posted, voided or expired; an account's ledger and flags never change.
 * Each transfer debits one account and credits another by one amount, so the books sum to
 * zero by construction.
 */
export const accountsMigrations: Record<string, ForwardMigration> = {
  "0000_money_001_accounts": async (db) => {
    await sql`
      create table money_accounts (
        id text primary key check (id <> '' and length(id) <= 200),
        ledger text not null check (ledger <> ''),
        kind text not null check (kind <> ''),
        debits_must_not_exceed_credits boolean not null default false,
        credits_must_not_exceed_debits boolean not null default false,
        debits_pending numeric(39,0) not null default 0,
        debits_posted numeric(39,0) not null default 0,
        credits_pending numeric(39,0) not null default 0,
        credits_posted numeric(39,0) not null default 0,
        created_at timestamptz not null,
        constraint money_accounts_one_limit check (not (debits_must_not_exceed_credits and credits_must_not_exceed_debits)),
        constraint money_accounts_balances_in_range check (
          debits_pending between 0 and ${sql.raw(U128)} and debits_posted between 0 and ${sql.raw(U128)} and
          credits_pending between 0 and ${sql.raw(U128)} and credits_posted between 0 and ${sql.raw(U128)}),
        constraint money_accounts_debits_within_credits check (
          not debits_must_not_exceed_credits or debits_pending + debits_posted <= credits_posted),
        constraint money_accounts_credits_within_debits check (
          not credits_must_not_exceed_debits or credits_pending + credits_posted <= debits_posted)
      )`.execute(db);
    await sql`
      create table money_transfers (
        id text primary key check (id <> '' and length(id) <= 200),
        seq bigint generated always as identity unique,
        kind text not null check (kind in ('single', 'pending', 'post', 'void')),
        debit_account_id text not null references money_accounts (id),
        credit_account_id text not null references money_accounts (id),
        amount numeric(39,0) not null check (amount > 0 and amount <= ${sql.raw(U128)}),
        ledger text not null,
        code text not null check (code <> ''),
        pending_id text references money_transfers (id),
        timeout_ms bigint check (timeout_ms > 0),
        reference text,
        created_at timestamptz not null,
        constraint money_transfers_two_accounts check (debit_account_id <> credit_account_id),
        constraint money_transfers_resolves_a_hold check ((kind in ('post', 'void')) = (pending_id is not null)),
        constraint money_transfers_timeout_on_holds check (kind = 'pending' or timeout_ms is null)
      )`.execute(db);
    await sql`create index money_transfers_debit on money_transfers (debit_account_id, seq)`.execute(db);
    await sql`create index money_transfers_credit on money_transfers (credit_account_id, seq)`.execute(db);
    await sql`create index money_transfers_reference on money_transfers (reference) where reference is not null`.execute(db);
    // The mutable side of an immutable pending transfer: where the hold stands.
    await sql`
      create table money_pending (
        transfer_id text primary key references money_transfers (id),
        state text not null default 'pending' check (state in ('pending', 'posted', 'voided', 'expired')),
        expires_at timestamptz,
        -- Deferred: a post sets resolved_by before it inserts the post transfer it names.
        resolved_by text unique references money_transfers (id) deferrable initially deferred,
        resolved_at timestamptz,
        constraint money_pending_resolution check ((state = 'pending') = (resolved_at is null)),
        constraint money_pending_resolved_by check ((state in ('posted', 'voided')) = (resolved_by is not null))
      )`.execute(db);
    await sql`create index money_pending_expiry on money_pending (expires_at) where state = 'pending' and expires_at is not null`.execute(
      db,
    );

    await sql`
      create function money_refuse_change() returns trigger language plpgsql as $$
      begin
        raise exception 'money: % on % is not allowed (transfers are immutable)', tg_op, tg_table_name
          using errcode = 'restrict_violation';
      end $$`.execute(db);
    await sql`create trigger money_transfers_immutable before update or delete on money_transfers
      for each row execute function money_refuse_change()`.execute(db);
    await sql`create trigger money_transfers_no_truncate before truncate on money_transfers
      for each statement execute function money_refuse_change()`.execute(db);
    await sql`create trigger money_pending_no_delete before delete on money_pending
      for each row execute function money_refuse_change()`.execute(db);
    await sql`create trigger money_pending_no_truncate before truncate on money_pending
      for each statement execute function money_refuse_change()`.execute(db);
    await sql`create trigger money_accounts_no_delete before delete on money_accounts
      for each row execute function money_refuse_change()`.execute(db);
    await sql`create trigger money_accounts_no_truncate before truncate on money_accounts
      for each statement execute function money_refuse_change()`.execute(db);
    await sql`
      create function money_pending_resolve_once() returns trigger language plpgsql as $$
      begin
        if old.state <> 'pending' or new.transfer_id <> old.transfer_id or new.expires_at is distinct from old.expires_at then
          raise exception 'money: pending transfer % is %: it cannot become %', old.transfer_id, old.state, new.state
            using errcode = 'restrict_violation';
        end if;
        return new;
      end $$`.execute(db);
    await sql`create trigger money_pending_resolve_once before update on money_pending
      for each row execute function money_pending_resolve_once()`.execute(db);
    await sql`
      create function money_accounts_identity_fixed() returns trigger language plpgsql as $$
      begin
        if new.id <> old.id or new.ledger <> old.ledger or new.kind <> old.kind or new.created_at <> old.created_at
           or new.debits_must_not_exceed_credits <> old.debits_must_not_exceed_credits
           or new.credits_must_not_exceed_debits <> old.credits_must_not_exceed_debits then
          raise exception 'money: account % may change its balances only', old.id using errcode = 'restrict_violation';
        end if;
        return new;
      end $$`.execute(db);
    await sql`create trigger money_accounts_identity_fixed before update on money_accounts
      for each row execute function money_accounts_identity_fixed()`.execute(db);
  },
};
