// CancelOrder: one transaction, the order row locked first (as matching, funding and re-matching
// lock it), so no match, funding or re-match can slip in between. A matching, unmatched or
// reserved order is cancelled and its reserved nodes go back to their offers; an active order's
// live leases close (nodes released, holds of epochs not begun voided back to escrow — the
// running epoch's hold stays for the provider's usage report of the time it ran), its groups
// waiting for a re-match are abandoned, and the order is cancelled. Only the tenant (or an
// operator) may cancel; a cancelled order is returned as it is, so a retried call is harmless.
import { create, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { sql } from "kysely";

import { CancelOrderResponseSchema, OrderSpecSchema, type CancelOrderResponse } from "@deai/contracts/deai/marketplace/v1/marketplace_pb";
import { transitionRow } from "@deai/kit";
import { InvalidArgumentError, NotFoundError, PermissionDeniedError } from "@deai/kit/errors";

import { orderStates } from "../domain/states.js";
import { accountIds, type MarketContext } from "./context.js";
import type { Escrow } from "./escrow.js";
import { text } from "./input.js";
import type { Leases } from "./leases.js";
import { releaseAllocations } from "./orders.js";
import { leaseView, orderView, type LeaseRow, type OrderRow } from "./views.js";

export async function cancelOrder(
  ctx: MarketContext,
  leases: Leases,
  escrow: Escrow,
  actor: string,
  orderId: string,
  reasonIn: string,
): Promise<CancelOrderResponse> {
  if (!orderId) throw new InvalidArgumentError("order_id is required", { field: "order_id" });
  const reason = text(reasonIn, "reason", 500, { required: true });
  const closed = await ctx.db.transaction().execute(async (trx) => {
    const order = (await sql<OrderRow>`select * from orders where order_id = ${orderId} for update`.execute(trx)).rows[0];
    if (!order) throw new NotFoundError(`order ${orderId} not found`);
    if (actor !== order.tenant_id && !ctx.params.operators.includes(actor))
      throw new PermissionDeniedError(`only the order's tenant or an operator may cancel order ${orderId}`);
    if (order.state === "cancelled") return [];
    const why = `order cancelled: ${reason}`;
    const live = await sql<{ lease_id: string }>`
      select lease_id from leases where order_id = ${orderId} and state in ('active', 'paused') order by lease_id`.execute(trx);
    const rows: LeaseRow[] = [];
    for (const l of live.rows) rows.push(await leases.closeIn(trx, l.lease_id, why, "ended", { completeOrder: false }));
    await sql`update leases set rematch_state = 'abandoned' where order_id = ${orderId} and rematch_state in ('pending', 'unmatched', 'unfunded')`.execute(
      trx,
    );
    // Illegal from completed or expired: FailedPrecondition naming both states, nothing written.
    await transitionRow(trx, orderStates, {
      table: "orders",
      key: { order_id: orderId },
      to: "cancelled",
      set: { updated_at: ctx.clock.now() },
    });
    await releaseAllocations(trx, ctx, orderId, ["reserved"], why);
    return rows;
  });
  const row = (await ctx.db.selectFrom("orders").selectAll().where("order_id", "=", orderId).executeTakeFirstOrThrow()) as OrderRow;
  const ids = await ctx.db.selectFrom("leases").select("lease_id").where("order_id", "=", orderId).orderBy("group_index").execute();
  return create(CancelOrderResponseSchema, {
    order: orderView(
      row,
      fromJson(OrderSpecSchema, row.spec as JsonValue),
      ids.map((l) => l.lease_id as string),
    ),
    closedLeases: closed.map((l) => leaseView(l, ctx.catalog, ctx.params.currency, accountIds.escrow(orderId))),
    escrow: await escrow.view(accountIds.escrow(orderId)),
  });
}
