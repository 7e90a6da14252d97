// Re-matching the groups of a provider that lost its standing: a lease closed because slashing
// jailed or tombstoned its provider is marked `rematch_state = pending` (leases.ts closeIn), and
// this step places each such group again on other providers, so the job resumes elsewhere from
// its last checkpoint. One transaction per order: the order row locked, the candidate offers read
// and locked by the same query first matches use (Orders.lockedCandidates, SKIP LOCKED), the pure
// engine's plan for just the missing groups, their nodes taken and the replacement leases opened
// with their epoch-0 holds (Leases.openLeases), the old leases pointing at their replacements.
// A replacement runs from now to the replaced lease's planned end. Nothing fits: the leases keep
// the explanation and the tick tries again; escrow short: `unfunded` until a deposit; the planned
// end passed or the order is no longer active: `abandoned`.
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { randomUUID } from "node:crypto";
import { sql } from "kysely";

import { OrderSpecSchema } from "@deai/contracts/deai/marketplace/v1/marketplace_pb";
import { transitionRow } from "@deai/kit";

import { matchGang } from "../domain/matching.js";
import { orderStates } from "../domain/states.js";
import type { MarketContext, Trx } from "./context.js";
import type { Leases } from "./leases.js";
import { marketMetrics } from "./metrics.js";
import type { Orders } from "./orders.js";
import type { AllocationRow, LeaseRow, OrderRow } from "./views.js";

export type RematchOutcome = "rematched" | "unmatched" | "unfunded" | "abandoned" | "skipped";

class Unfunded extends Error {}

const WAITING = ["pending", "unmatched", "unfunded"] as const;

export class Rematch {
  constructor(
    private readonly ctx: MarketContext,
    private readonly orders: Orders,
    private readonly leases: Leases,
  ) {}

  /** Orders with groups waiting for a new placement, oldest close first; returns how many were re-matched. */
  async run(limit = 50, only: readonly ("pending" | "unmatched" | "unfunded")[] = WAITING): Promise<number> {
    const rows = await sql<{ order_id: string }>`
      select order_id from leases where rematch_state = any(${[...only]}::text[])
      group by order_id order by min(closed_at) limit ${limit}`.execute(this.ctx.db);
    let n = 0;
    for (const r of rows.rows) if ((await this.order(r.order_id)) === "rematched") n++;
    return n;
  }

  /** Re-matches every waiting group of one order, all or none. */
  async order(orderId: string): Promise<RematchOutcome> {
    try {
      const outcome = await this.ctx.db.transaction().execute((trx) => this.attempt(trx, orderId));
      if (outcome !== "skipped") marketMetrics.matches.add(1, { outcome: `rematch_${outcome}` });
      return outcome;
    } catch (e) {
      if (!(e instanceof Unfunded)) throw e;
      await sql`update leases set rematch_state = 'unfunded' where order_id = ${orderId} and rematch_state = any(${[...WAITING]}::text[])`.execute(
        this.ctx.db,
      );
      marketMetrics.matches.add(1, { outcome: "rematch_unfunded" });
      return "unfunded";
    }
  }

  private async attempt(trx: Trx, orderId: string): Promise<RematchOutcome> {
    const order = (await sql<OrderRow>`select * from orders where order_id = ${orderId} for update`.execute(trx)).rows[0];
    if (!order) return "skipped";
    const waiting = (
      await sql<LeaseRow>`
        select * from leases where order_id = ${orderId} and rematch_state = any(${[...WAITING]}::text[])
        order by group_index for update`.execute(trx)
    ).rows;
    if (waiting.length === 0) return "skipped";
    const now = this.ctx.clock.now();
    // Less than a second left is not worth a lease.
    const gone = waiting.filter((l) => order.state !== "active" || l.rematch_until!.getTime() - now.getTime() < 1000);
    if (gone.length > 0) {
      await sql`update leases set rematch_state = 'abandoned' where lease_id = any(${gone.map((l) => l.lease_id)}::text[])`.execute(trx);
      if (gone.length === waiting.length) {
        const live = await sql`select 1 from leases where order_id = ${orderId} and state in ('active', 'paused') limit 1`.execute(trx);
        if (live.rows.length === 0 && order.state === "active")
          await transitionRow(trx, orderStates, {
            table: "orders",
            key: { order_id: orderId },
            from: ["active"],
            to: "completed",
            set: { updated_at: now },
          });
        return "abandoned";
      }
    }
    const todo = waiting.filter((l) => !gone.includes(l));
    const until = new Date(Math.max(...todo.map((l) => l.rematch_until!.getTime())));
    const spec = fromJson(OrderSpecSchema, order.spec as JsonValue);
    const base = this.orders.gangOf(spec, now.getTime());
    // The lost providers never again for this order; with distinct providers, not the ones still running its other groups.
    const live = await sql<{ provider_id: string }>`
      select distinct provider_id from leases where order_id = ${orderId} and state in ('active', 'paused')`.execute(trx);
    const excluded = new Set([
      ...base.excludedProviders,
      ...todo.map((l) => l.provider_id),
      ...(base.distinctProviders ? live.rows.map((r) => r.provider_id) : []),
    ]);
    const g = { ...base, groups: todo.length, durationMs: until.getTime() - now.getTime(), excludedProviders: [...excluded] };
    const result = matchGang(await this.orders.lockedCandidates(trx, g, false), g);
    if (!result.matched) {
      // Explained over every offer of the class (the locked view saw only the eligible ones); if
      // that could place the groups, the offers were only busy: the locked view's words then.
      const full = matchGang(await this.orders.snapshot(g.classId), g);
      const explanation = full.matched ? result.explanation : full.explanation;
      await sql`update leases set rematch_state = 'unmatched', rematch_explanation = ${JSON.stringify(explanation)}::jsonb
                where lease_id = any(${todo.map((l) => l.lease_id)}::text[])`.execute(trx);
      return "unmatched";
    }
    // Plan group i takes the place of the i-th waiting lease's group.
    const allocations: AllocationRow[] = result.plan.map((m, i) => ({
      allocation_id: `alloc-${randomUUID()}`,
      order_id: orderId,
      group_index: todo[i]!.group_index,
      offer_id: m.offerId,
      provider_id: m.providerId,
      nodes: m.nodes,
      gpus: m.gpus,
      price: m.pricePerGpuHour.toString(),
      score: m.score,
      state: "reserved",
      reserved_until: until,
      release_reason: null,
      created_at: now,
      released_at: null,
    }));
    const perOffer = new Map<string, number>();
    for (const a of allocations) perOffer.set(a.offer_id, (perOffer.get(a.offer_id) ?? 0) + a.nodes);
    await sql`
      update gpu_offers o set nodes_free = o.nodes_free - d.n
      from (select unnest(${[...perOffer.keys()]}::text[]) as id, unnest(${[...perOffer.values()]}::int[]) as n) d
      where o.offer_id = d.id`.execute(trx);
    await trx
      .insertInto("allocations")
      .values(allocations.map((a) => ({ ...a, score: JSON.stringify(a.score) })))
      .execute();
    const replaces = new Map(todo.map((l) => [l.group_index, l.lease_id]));
    // Each replacement ends when the lease it replaces would have.
    const opened: LeaseRow[] = [];
    for (const a of allocations) {
      const old = todo.find((l) => l.group_index === a.group_index)!;
      const r = await this.leases.openLeases(trx, order, [a], now, old.rematch_until!, replaces);
      if (!r) throw new Unfunded();
      opened.push(...r);
    }
    for (const l of opened)
      await sql`update leases set rematch_state = 'rematched', replaced_by_lease_id = ${l.lease_id}, rematch_explanation = null
                where lease_id = ${l.replaces_lease_id}`.execute(trx);
    await sql`update orders set attempts = attempts + 1, updated_at = ${now} where order_id = ${orderId}`.execute(trx);
    return "rematched";
  }
}
