// The marketplace's use cases behind one object: what the RPC handlers and the scheduled loops call.
import { create } from "@bufbuild/protobuf";

import {
  DepositResponseSchema,
  WithdrawResponseSchema,
  type DepositResponse,
  type WithdrawResponse,
} from "@deai/contracts/deai/marketplace/v1/marketplace_pb";
import type { Money } from "@deai/contracts/deai/common/v1/common_pb";
import type { LedgerAnchoring } from "@deai/kit";

import { anchorPending } from "./anchors.js";
import type { MarketContext } from "./context.js";
import { Escrow } from "./escrow.js";
import { Leases } from "./leases.js";
import { Orders } from "./orders.js";
import { Providers } from "./providers.js";

export class Market {
  readonly providers: Providers;
  readonly orders: Orders;
  readonly escrow: Escrow;
  readonly leases: Leases;

  constructor(readonly ctx: MarketContext) {
    this.providers = new Providers(ctx);
    this.orders = new Orders(ctx);
    this.escrow = new Escrow(ctx);
    this.leases = new Leases(ctx, this.escrow);
  }

  async init(): Promise<void> {
    await this.escrow.init();
  }

  async deposit(accountId: string, amount: Money | undefined, key: string, externalReference: string): Promise<DepositResponse> {
    const t = await this.escrow.deposit(accountId, amount, key, externalReference);
    const owner = await this.ctx.db.selectFrom("escrow_owners").select("order_id").where("account_id", "=", accountId).executeTakeFirst();
    if (owner?.order_id) await this.leases.onDeposit(owner.order_id as string);
    return create(DepositResponseSchema, { account: await this.escrow.view(accountId), transfer: this.escrow.transferView(t) });
  }

  async withdraw(actor: string, accountId: string, amount: Money | undefined, key: string, destination: string): Promise<WithdrawResponse> {
    const t = await this.escrow.withdraw(actor, accountId, amount, key, destination);
    return create(WithdrawResponseSchema, { account: await this.escrow.view(accountId), transfer: this.escrow.transferView(t) });
  }

  /** One pass of the scheduled work: expire reservations, retry unmatched orders, fund reserved ones, renew holds, anchor. */
  async tick(ledger?: LedgerAnchoring): Promise<void> {
    await this.orders.expireReservations();
    await this.orders.rematch();
    const reserved = await this.ctx.db.selectFrom("orders").select("order_id").where("state", "=", "reserved").limit(200).execute();
    for (const o of reserved) await this.leases.fund(o.order_id as string);
    await this.leases.tick();
    if (ledger) await anchorPending(this.ctx.db, this.ctx, ledger);
  }
}
