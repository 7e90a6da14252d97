// The marketplace's use cases behind one object: what the RPC handlers and the scheduled loops call.
import { create } from "@bufbuild/protobuf";
import { sql } from "kysely";

import {
  type CancelOrderResponse,
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
import { cancelOrder } from "./order-cancel.js";
import { applyStanding } from "./provider-status.js";
import { Providers } from "./providers.js";
import { Rematch } from "./rematch.js";
import { submitDueEvidence } from "./equivocation.js";

export class Market {
  readonly providers: Providers;
  readonly orders: Orders;
  readonly escrow: Escrow;
  readonly leases: Leases;
  readonly rematch: Rematch;

  constructor(readonly ctx: MarketContext) {
    this.providers = new Providers(ctx);
    this.orders = new Orders(ctx);
    this.escrow = new Escrow(ctx);
    this.leases = new Leases(ctx, this.escrow);
    this.rematch = new Rematch(ctx, this.orders, this.leases);
  }

  async init(): Promise<void> {
    await this.escrow.init();
    await this.orders.warmUp();
  }

  async deposit(accountId: string, amount: Money | undefined, key: string, externalReference: string): Promise<DepositResponse> {
    const t = await this.escrow.deposit(accountId, amount, key, externalReference);
    const owner = await this.ctx.db.selectFrom("escrow_owners").select("order_id").where("account_id", "=", accountId).executeTakeFirst();
    if (owner?.order_id) {
      await this.leases.onDeposit(owner.order_id as string);
      await this.rematch.order(owner.order_id as string);
    }
    return create(DepositResponseSchema, { account: await this.escrow.view(accountId), transfer: this.escrow.transferView(t) });
  }

  async withdraw(actor: string, accountId: string, amount: Money | undefined, key: string, destination: string): Promise<WithdrawResponse> {
    const t = await this.escrow.withdraw(actor, accountId, amount, key, destination);
    return create(WithdrawResponseSchema, { account: await this.escrow.view(accountId), transfer: this.escrow.transferView(t) });
  }

  /**
   * The polling fallback to slashing's events: mirrors the standing (GetProviderStatus) of
   * providers with active offers or live leases whose mirror is older than the maximum age,
   * oldest check first, through the same `applyStanding` the event consumer uses.
   */
  async refreshStanding(limit = 50): Promise<number> {
    const stale = new Date(this.ctx.clock.nowMs() - this.ctx.params.standingMaxAgeMs);
    const rows = await sql<{ provider_id: string }>`
      select p.provider_id from providers p
      where (p.status_checked_at is null or p.status_checked_at < ${stale})
        and (exists (select 1 from gpu_offers o where o.provider_id = p.provider_id and o.state = 'active')
             or exists (select 1 from leases l where l.provider_id = p.provider_id and l.state in ('active', 'paused')))
      order by p.status_checked_at nulls first limit ${limit}`.execute(this.ctx.db);
    let closed = 0;
    for (const { provider_id } of rows.rows) {
      let s;
      try {
        s = await this.ctx.standing.standing(provider_id);
      } catch {
        return closed; // slashing unreachable: keep the mirror, try again next tick
      }
      const st = s;
      const leases = await this.ctx.db.transaction().execute((trx) =>
        applyStanding(this.ctx, this.leases, trx, provider_id, {
          status: st.status,
          jailedUntil: st.jailedUntil,
          bonded: st.bonded,
          source: "poll",
        }),
      );
      closed += leases.length;
    }
    return closed;
  }

  /** Cancels an order of `actor` (CancelOrder). */
  async cancelOrder(actor: string, orderId: string, reason: string): Promise<CancelOrderResponse> {
    return cancelOrder(this.ctx, this.leases, this.escrow, actor, orderId, reason);
  }

  /** The scheduled work, step by step: each runs even when an earlier one failed. */
  tickSteps(ledger?: LedgerAnchoring): [string, () => Promise<unknown>][] {
    return [
      ["standing", () => this.refreshStanding()],
      ["rematch-groups", () => this.rematch.run()],
      ["reservations", () => this.orders.expireReservations()],
      ["rematch", () => this.orders.rematch()],
      [
        "fund",
        async () => {
          const reserved = await this.ctx.db.selectFrom("orders").select("order_id").where("state", "=", "reserved").limit(200).execute();
          for (const o of reserved) await this.leases.fund(o.order_id as string);
        },
      ],
      ["leases", () => this.leases.tick()],
      ["evidence", () => submitDueEvidence(this.ctx)],
      ...(ledger ? [["anchor", () => anchorPending(this.ctx.db, this.ctx, ledger)] as [string, () => Promise<unknown>]] : []),
    ];
  }

  /** One pass of the scheduled work: expire reservations, retry unmatched orders, fund reserved ones, renew holds, anchor. Throws the first failure after running every step. */
  async tick(ledger?: LedgerAnchoring): Promise<void> {
    let first: unknown;
    for (const [, step] of this.tickSteps(ledger)) {
      try {
        await step();
      } catch (e) {
        first ??= e;
      }
    }
    if (first !== undefined) throw first;
  }
}
