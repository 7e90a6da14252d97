// Escrow accounts on the kit's double-entry books: one per order (the tenant's), one revenue
// account per provider. Deposits come from the `external` account, withdrawals go back to it;
// both idempotent by (account, key). Holds for lease epochs reduce what is available.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { sql } from "kysely";

import {
  EscrowAccountSchema,
  TransferKind,
  TransferSchema,
  type EscrowAccount,
  type Transfer as TransferMessage,
} from "@deai/contracts/deai/marketplace/v1/marketplace_pb";
import {
  availableBalance,
  createAccount,
  createTransfer,
  decodeTransfer,
  getAccount,
  type Account,
  type Transfer,
  type TransferRow,
} from "@deai/kit";
import { InvalidArgumentError, NotFoundError, PermissionDeniedError } from "@deai/kit/errors";
import type { Money } from "@deai/contracts/deai/common/v1/common_pb";

import { accountIds, type Db, type MarketContext } from "./context.js";
import { idempotencyKey, positiveMoney, text } from "./input.js";
import { money } from "./views.js";

const KIND_OF_CODE: Record<string, TransferKind> = {
  deposit: TransferKind.DEPOSIT,
  withdrawal: TransferKind.WITHDRAWAL,
  "lease.epoch": TransferKind.HOLD,
};

export class Escrow {
  constructor(private readonly ctx: MarketContext) {}

  /** Opens the books' shared account (idempotent). */
  async init(): Promise<void> {
    await createAccount(this.ctx.db, this.ctx.clock, { id: accountIds.external, ledger: this.ctx.params.currency, kind: "external" });
  }

  private async owner(db: Db, accountId: string): Promise<{ owner_id: string; order_id: string | null }> {
    if (!accountId) throw new InvalidArgumentError("account_id is required", { field: "account_id" });
    const r = await db.selectFrom("escrow_owners").selectAll().where("account_id", "=", accountId).executeTakeFirst();
    if (!r) throw new NotFoundError(`escrow account ${accountId} not found`);
    return r as { owner_id: string; order_id: string | null };
  }

  transferView(t: Transfer): TransferMessage {
    const kind =
      t.kind === "pending"
        ? TransferKind.HOLD
        : t.kind === "void"
          ? TransferKind.RELEASE
          : t.kind === "post"
            ? TransferKind.SETTLEMENT
            : (KIND_OF_CODE[t.code] ?? TransferKind.UNSPECIFIED);
    return create(TransferSchema, {
      transferId: t.id,
      kind,
      debitAccountId: t.debitAccountId,
      creditAccountId: t.creditAccountId,
      amount: money(this.ctx.params.currency, t.amount),
      reference: t.reference ?? "",
      createdAt: timestampFromDate(t.createdAt),
    });
  }

  /** An account's balances as the contract shows them. */
  async view(accountId: string, db: Db = this.ctx.db): Promise<EscrowAccount> {
    const o = await this.owner(db, accountId);
    const a: Account = await getAccount(db, accountId);
    const totals = await sql<{ deposited: string; settled: string }>`
      select coalesce(sum(amount) filter (where code = 'deposit' and credit_account_id = ${accountId}), 0)::text as deposited,
             coalesce(sum(amount) filter (where kind = 'post' and (debit_account_id = ${accountId} or credit_account_id = ${accountId})), 0)::text as settled
      from money_transfers where credit_account_id = ${accountId} or debit_account_id = ${accountId}`.execute(db);
    const last = await sql<{ created_at: Date | null }>`
      select max(created_at) as created_at from money_transfers where credit_account_id = ${accountId} or debit_account_id = ${accountId}`.execute(
      db,
    );
    return create(EscrowAccountSchema, {
      accountId,
      ownerId: o.owner_id,
      orderId: o.order_id ?? "",
      available: money(this.ctx.params.currency, availableBalance(a)),
      held: money(this.ctx.params.currency, a.debitsPending),
      totalDeposited: money(this.ctx.params.currency, BigInt(totals.rows[0]!.deposited)),
      totalSettled: money(this.ctx.params.currency, BigInt(totals.rows[0]!.settled)),
      updatedAt: timestampFromDate(last.rows[0]?.created_at ?? a.createdAt),
    });
  }

  async recent(accountId: string, limit = 20): Promise<TransferMessage[]> {
    const r = await sql<TransferRow>`
      select * from money_transfers where credit_account_id = ${accountId} or debit_account_id = ${accountId}
      order by seq desc limit ${limit}`.execute(this.ctx.db);
    return r.rows.map((row) => this.transferView(decodeTransfer(row)));
  }

  /** Credits `accountId` from outside; idempotent by (account, key). Returns the transfer. */
  async deposit(accountId: string, amountIn: Money | undefined, key: string, externalReference: string): Promise<Transfer> {
    idempotencyKey(key);
    text(externalReference, "external_reference", 200);
    const amount = positiveMoney(amountIn, "amount", this.ctx.params.currency);
    await this.owner(this.ctx.db, accountId);
    const r = await createTransfer(this.ctx.db, this.ctx.clock, {
      kind: "single",
      id: `deposit:${accountId}:${key}`,
      debitAccountId: accountIds.external,
      creditAccountId: accountId,
      amount: amount as never,
      ledger: this.ctx.params.currency,
      code: "deposit",
      ...(externalReference ? { reference: externalReference } : {}),
    });
    return r.transfer;
  }

  /** Moves available funds of an account the caller owns out; idempotent by (account, key). */
  async withdraw(actor: string, accountId: string, amountIn: Money | undefined, key: string, destination: string): Promise<Transfer> {
    idempotencyKey(key);
    text(destination, "destination", 200, { required: true });
    const amount = positiveMoney(amountIn, "amount", this.ctx.params.currency);
    const o = await this.owner(this.ctx.db, accountId);
    if (o.owner_id !== actor) throw new PermissionDeniedError(`escrow account ${accountId} belongs to another actor`);
    const r = await createTransfer(this.ctx.db, this.ctx.clock, {
      kind: "single",
      id: `withdraw:${accountId}:${key}`,
      debitAccountId: accountId,
      creditAccountId: accountIds.external,
      amount: amount as never,
      ledger: this.ctx.params.currency,
      code: "withdrawal",
      reference: destination,
    });
    return r.transfer;
  }
}
