// Orders and gang matching: idempotent creation (per tenant and key), matching under row locks
// so no GPU is allocated twice across requests and replicas, an explanation when nothing
// matches, and reservations that lapse after their TTL (the scheduler's sweep).
//
// Concurrency: a match runs in one transaction that locks its order row, then reads the
// cheapest candidate offers `FOR UPDATE OF o SKIP LOCKED` (concurrent matchers take disjoint
// offers instead of queueing), plans with the pure engine, and subtracts the plan's nodes from
// `nodes_free` (a CHECK keeps it within 0 … nodes) in the same commit as the allocations. When
// the locked view cannot place the gang, an unlocked snapshot of every offer of the class
// decides: if it could, offers were only busy and the match is retried waiting for locks;
// otherwise the order is unmatched with the explanation.
import { create, fromJson, toBinary, toJson, type JsonValue } from "@bufbuild/protobuf";
import { createHash, randomUUID } from "node:crypto";
import { sql } from "kysely";

import {
  GpuClassSchema,
  ListMatchesResponseSchema,
  NoMatchReasonSchema,
  OrderSpecSchema,
  type ListMatchesResponse,
  type NoMatchReason,
  type Order,
  type OrderSpec,
} from "@deai/contracts/deai/marketplace/v1/marketplace_pb";
import { createAccount, transitionRow } from "@deai/kit";
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from "@deai/kit/errors";

import { matchGang, type Explanation, type GangRequest, type GroupMatch, type OfferCandidate } from "../domain/matching.js";
import { orderStates } from "../domain/states.js";
import { candidateColumns, candidateOf, type CandidateRow } from "../store/capacity.js";
import { accountIds, type MarketContext, type Trx } from "./context.js";
import { GangMatcher, isLockConflict, matchView, type MatcherStats } from "./matcher.js";
import { marketMetrics } from "./metrics.js";
import { durationOf, idempotencyKey, positiveInt, positiveMoney, region, timeOf } from "./input.js";
import { explanationView, NO_MATCH, orderView, type AllocationRow, type OrderRow } from "./views.js";

const MAX_DURATION_MS = 366 * 24 * 3_600_000;
/** Attempts at one match before the order is left unmatched (the rematch loop tries again). */
const MATCH_ATTEMPTS = 4;

export interface MatchOutcome {
  readonly state: "reserved" | "unmatched" | "skipped";
  readonly plan?: readonly GroupMatch[];
  readonly explanation?: Explanation;
}

class Busy extends Error {}

export class Orders {
  private readonly matcher: GangMatcher;

  constructor(private readonly ctx: MarketContext) {
    this.matcher = new GangMatcher(ctx);
  }

  /** What the batch matcher did since start (batches, reserved, lost re-checks, hand-backs, change-feed reads). */
  get matcherStats(): Readonly<MatcherStats> {
    return this.matcher.stats;
  }

  /** Reads the batch matcher's capacity index from Postgres (at start, so the first orders do not wait for it). */
  async warmUp(): Promise<void> {
    await this.matcher.warmUp();
  }

  /** The order's gang request (re-matching narrows it to the groups it replaces). */
  gangOf(spec: OrderSpec, startAt: number): GangRequest {
    const cls = this.ctx.catalog.resolve(spec.gpuClass, "spec.gpu_class");
    const c = spec.constraints;
    return {
      classId: cls.id,
      gpusPerGroup: spec.gpusPerGroup,
      groups: spec.groups,
      maxPricePerGpuHour: spec.maxPricePerGpuHour!.micros,
      durationMs: durationOf(spec.duration, "spec.duration", MAX_DURATION_MS)!,
      startAtMs: startAt,
      regions: c?.regions ?? [],
      minBandwidthMbps: c?.minBandwidthMbps ?? 0,
      minReliability: c?.minReliability ?? 0,
      excludedProviders: c?.excludedProviderIds ?? [],
      distinctProviders: c?.distinctProviders ?? false,
      minStake: c?.minStake?.micros ?? 0n,
    };
  }

  /** Checks a spec completely; InvalidArgument names the first wrong field. */
  private checkSpec(spec: OrderSpec | undefined, now: Date): { spec: OrderSpec; ttlMs: number; startAfter?: Date; startBefore?: Date } {
    if (!spec) throw new InvalidArgumentError("spec is required", { field: "spec" });
    const cls = this.ctx.catalog.resolve(spec.gpuClass, "spec.gpu_class");
    positiveInt(spec.gpusPerGroup, "spec.gpus_per_group", 4096);
    positiveInt(spec.groups, "spec.groups", 64);
    positiveMoney(spec.maxPricePerGpuHour, "spec.max_price_per_gpu_hour", this.ctx.params.currency);
    if (!spec.duration) throw new InvalidArgumentError("spec.duration is required", { field: "spec.duration" });
    durationOf(spec.duration, "spec.duration", MAX_DURATION_MS);
    const ttlMs =
      durationOf(spec.reservationTtl, "spec.reservation_ttl", this.ctx.params.maxReservationTtlMs) ?? this.ctx.params.reservationTtlMs;
    const c = spec.constraints;
    if (c) {
      if (c.regions.length > 50)
        throw new InvalidArgumentError("spec.constraints.regions has more than 50 entries", { field: "spec.constraints.regions" });
      c.regions.forEach((r, i) => region(r, `spec.constraints.regions[${i}]`));
      if (!Number.isFinite(c.minReliability) || c.minReliability < 0 || c.minReliability > 1)
        throw new InvalidArgumentError("spec.constraints.min_reliability must be in [0, 1]", { field: "spec.constraints.min_reliability" });
      if (c.excludedProviderIds.length > 100 || c.excludedProviderIds.some((p) => p.length === 0 || p.length > 100))
        throw new InvalidArgumentError("spec.constraints.excluded_provider_ids must hold at most 100 actor ids", {
          field: "spec.constraints.excluded_provider_ids",
        });
      if (c.minStake) positiveMoney(c.minStake, "spec.constraints.min_stake", this.ctx.params.currency);
    }
    const startAfter = timeOf(spec.startAfter, "spec.start_after");
    const startBefore = timeOf(spec.startBefore, "spec.start_before");
    if (startBefore && startBefore <= now)
      throw new InvalidArgumentError("spec.start_before is in the past", { field: "spec.start_before" });
    if (startAfter && startBefore && startAfter >= startBefore)
      throw new InvalidArgumentError("spec.start_after must be before spec.start_before", { field: "spec.start_after" });
    // Canonical class names in the stored spec (interconnect filled from the catalog).
    const canonical = create(OrderSpecSchema, {
      ...spec,
      gpuClass: create(GpuClassSchema, {
        vendor: cls.vendor,
        model: cls.model,
        vramGib: cls.vramGib,
        interface: cls.interface,
        interconnect: cls.interconnect,
      }),
    });
    return { spec: canonical, ttlMs, ...(startAfter ? { startAfter } : {}), ...(startBefore ? { startBefore } : {}) };
  }

  /**
   * Creates an order (or returns the one this tenant made with this key) and matches it: the
   * batch matcher reserves it in a group commit; what it hands back (no place in its index,
   * a key seen before, lost too many re-checks) takes the SQL path, which also explains a miss.
   */
  async create(tenant: string, specIn: OrderSpec | undefined, key: string): Promise<Order> {
    idempotencyKey(key);
    const now = this.ctx.clock.now();
    const { spec, ttlMs, startAfter, startBefore } = this.checkSpec(specIn, now);
    const sha = createHash("sha256").update(toBinary(OrderSpecSchema, spec)).digest("hex");
    const orderId = `ord-${randomUUID()}`;
    const started = performance.now();
    const batched = await this.matcher.submit({
      orderId,
      tenantId: tenant,
      idempotencyKey: key,
      requestSha256: sha,
      specJson: JSON.stringify(toJson(OrderSpecSchema, spec)),
      classId: this.ctx.catalog.resolve(spec.gpuClass).id,
      escrowAccountId: accountIds.escrow(orderId),
      startAfter: startAfter ?? null,
      startBefore: startBefore ?? null,
      gang: this.gangOf(spec, Math.max(now.getTime(), startAfter?.getTime() ?? 0)),
      ttlMs,
    });
    if (batched.kind === "reserved") {
      this.recordReserved(started);
      return orderView(batched.row, spec, []);
    }
    return this.createMatchingInSql(tenant, spec, key, sha, orderId, startAfter, startBefore, started);
  }

  private recordReserved(started: number): void {
    marketMetrics.matches.add(1, { outcome: "reserved" });
    marketMetrics.matchDuration.record((performance.now() - started) / 1000, { outcome: "reserved" });
  }

  /** The SQL path of `create`: insert the order and match it under row locks (first attempt in the same transaction). */
  private async createMatchingInSql(
    tenant: string,
    spec: OrderSpec,
    key: string,
    sha: string,
    orderId: string,
    startAfter: Date | undefined,
    startBefore: Date | undefined,
    started: number,
  ): Promise<Order> {
    const now = this.ctx.clock.now();
    const escrow = accountIds.escrow(orderId);
    const created = await this.ctx.db.transaction().execute(async (trx) => {
      const row = (
        await sql<OrderRow>`
          insert into orders (order_id, tenant_id, idempotency_key, request_sha256, spec, class_id, state, escrow_account_id,
                              start_after, start_before, created_at, updated_at)
          values (${orderId}, ${tenant}, ${key}, ${sha}, ${JSON.stringify(toJson(OrderSpecSchema, spec))}::jsonb,
                  ${this.ctx.catalog.resolve(spec.gpuClass).id}, 'matching', ${escrow}, ${startAfter ?? null}, ${startBefore ?? null}, ${now}, ${now})
          on conflict (tenant_id, idempotency_key) do nothing
          returning *`.execute(trx)
      ).rows[0];
      if (!row) return undefined;
      await createAccount(trx, this.ctx.clock, {
        id: escrow,
        ledger: this.ctx.params.currency,
        kind: "escrow",
        flags: { debitsMustNotExceedCredits: true },
      });
      await sql`insert into escrow_owners (account_id, owner_id, order_id) values (${escrow}, ${tenant}, ${orderId})`.execute(trx);
      // First match attempt in the creating transaction (one commit for the common case); the
      // row is not visible to anyone else yet, so it needs no lock of its own.
      const g = this.gangOfRow(row);
      const first = matchGang(await this.lockedCandidates(trx, g, false), g);
      if (first.matched) await this.reserve(trx, row, first.plan);
      return { row, reserved: first.matched };
    });
    if (!created) {
      const existing = (await this.ctx.db
        .selectFrom("orders")
        .selectAll()
        .where("tenant_id", "=", tenant)
        .where("idempotency_key", "=", key)
        .executeTakeFirstOrThrow()) as OrderRow;
      if (existing.request_sha256 !== sha)
        throw new AlreadyExistsError(`idempotency_key ${key} was used for a different order (${existing.order_id})`, {
          orderId: existing.order_id,
        });
      return this.get(existing.order_id);
    }
    if (created.reserved) {
      this.recordReserved(started);
    } else {
      await this.match(orderId);
    }
    return this.get(orderId);
  }

  async get(orderId: string, viewer?: string): Promise<Order> {
    if (!orderId) throw new InvalidArgumentError("order_id is required", { field: "order_id" });
    const row = (await this.ctx.db.selectFrom("orders").selectAll().where("order_id", "=", orderId).executeTakeFirst()) as
      OrderRow | undefined;
    if (!row) throw new NotFoundError(`order ${orderId} not found`);
    void viewer;
    const leases = await this.ctx.db
      .selectFrom("leases")
      .select("lease_id")
      .where("order_id", "=", orderId)
      .orderBy("group_index")
      .execute();
    return orderView(
      row,
      fromJson(OrderSpecSchema, row.spec as JsonValue),
      leases.map((l) => l.lease_id as string),
    );
  }

  /** Candidate offers for `g`, filters pushed into SQL, cheapest first, locked (skipping busy rows unless `wait`). */
  async lockedCandidates(trx: Trx, g: GangRequest, wait: boolean): Promise<OfferCandidate[]> {
    const minStake = g.minStake > this.ctx.params.minStake ? g.minStake : this.ctx.params.minStake;
    // `nodes_free > 0` repeats the partial index's predicate so the planner walks it in price order.
    const limit = g.distinctProviders ? g.groups * 8 + 32 : g.groups * 2 + 8;
    const r = await sql<CandidateRow>`
      select ${candidateColumns}
      from gpu_offers o join providers p on p.provider_id = o.provider_id
      where o.class_id = ${g.classId} and o.state = 'active' and o.nodes_free > 0 and o.price <= ${g.maxPricePerGpuHour.toString()}::numeric
        and o.nodes_free >= (${g.gpusPerGroup}::int + o.gpus_per_node - 1) / o.gpus_per_node
        and o.bandwidth_mbps >= ${g.minBandwidthMbps} and o.min_lease_ms <= ${g.durationMs}
        and (o.available_until is null or o.available_until >= ${new Date(g.startAtMs + g.durationMs)})
        and (cardinality(${[...g.regions]}::text[]) = 0 or o.region = any(${[...g.regions]}::text[]))
        and not (o.provider_id = any(${[...g.excludedProviders]}::text[]))
        and p.status = 'active' and p.stake >= ${minStake.toString()}::numeric and p.reliability >= ${g.minReliability}
      order by o.price, o.offer_id
      limit ${limit}
      for update of o ${wait ? sql`` : sql`skip locked`}`.execute(trx);
    return r.rows.map((row) => this.candidate(row));
  }

  private candidate(row: CandidateRow): OfferCandidate {
    return candidateOf(row, this.ctx.params.minStake);
  }

  /** Every non-withdrawn offer of the class, unlocked: what an explanation is computed over. */
  async snapshot(classId: string): Promise<OfferCandidate[]> {
    const r = await sql<CandidateRow>`
      select ${candidateColumns}
      from gpu_offers o join providers p on p.provider_id = o.provider_id
      where o.class_id = ${classId} and o.state <> 'withdrawn'`.execute(this.ctx.db);
    return r.rows.map((row) => this.candidate(row));
  }

  /**
   * Matches an order that is matching or unmatched: reserves every group or records why not.
   * Safe to call concurrently for one order (the order row is locked) and from any replica.
   */
  async match(orderId: string): Promise<MatchOutcome> {
    const started = performance.now();
    const r = await this.matchOnce(orderId);
    if (r.state !== "skipped") {
      marketMetrics.matches.add(1, { outcome: r.state });
      marketMetrics.matchDuration.record((performance.now() - started) / 1000, { outcome: r.state });
    }
    return r;
  }

  private async matchOnce(orderId: string): Promise<MatchOutcome> {
    let wait = false;
    for (let attempt = 1; ; attempt++) {
      let outcome: MatchOutcome | undefined;
      try {
        outcome = await this.ctx.db.transaction().execute(async (trx) => {
          const order = (await sql<OrderRow>`select * from orders where order_id = ${orderId} for update`.execute(trx)).rows[0];
          if (!order) throw new NotFoundError(`order ${orderId} not found`);
          if (order.state !== "matching" && order.state !== "unmatched") return { state: "skipped" } as const;
          const g = this.gangOfRow(order);
          const result = matchGang(await this.lockedCandidates(trx, g, wait), g);
          if (!result.matched) throw new Busy();
          await this.reserve(trx, order, result.plan);
          return { state: "reserved", plan: result.plan } as const;
        });
      } catch (e) {
        if (!(e instanceof Busy) && !isLockConflict(e)) throw e;
      }
      if (outcome) return outcome;
      const order = (await this.ctx.db
        .selectFrom("orders")
        .selectAll()
        .where("order_id", "=", orderId)
        .executeTakeFirstOrThrow()) as OrderRow;
      const g = this.gangOfRow(order);
      const full = matchGang(await this.snapshot(g.classId), g);
      if (full.matched && attempt < MATCH_ATTEMPTS) {
        // Capacity exists but was locked by concurrent matches: wait for the locks next time.
        wait = attempt >= 2;
        continue;
      }
      const explanation: Explanation = full.matched
        ? {
            dimensions: [
              {
                code: "gang_incomplete",
                offersExcluded: 0,
                providersExcluded: 0,
                message: "capacity was taken by concurrent matches; retried later",
              },
            ],
            freeCapacity: [],
            eligibleFreeGpus: 0,
            neededGpus: g.gpusPerGroup * g.groups,
            groupsPlaceable: 0,
            offersConsidered: full.offersConsidered,
          }
        : full.explanation;
      return this.ctx.db.transaction().execute(async (trx) => {
        const cur = (await sql<OrderRow>`select * from orders where order_id = ${orderId} for update`.execute(trx)).rows[0]!;
        if (cur.state !== "matching" && cur.state !== "unmatched") return { state: "skipped" } as const;
        await transitionRow(trx, orderStates, {
          table: "orders",
          key: { order_id: orderId },
          to: "unmatched",
          set: { explanation: JSON.stringify(explanation), attempts: cur.attempts + 1, updated_at: this.ctx.clock.now() },
        });
        await this.ctx.events.orderUnmatched(trx, orderId, cur.tenant_id, cur.attempts + 1, reasonsOf(explanation));
        return { state: "unmatched", explanation } as const;
      });
    }
  }

  private gangOfRow(order: OrderRow): GangRequest {
    const spec = fromJson(OrderSpecSchema, order.spec as JsonValue);
    const startAt = Math.max(this.ctx.clock.nowMs(), order.start_after?.getTime() ?? 0);
    return this.gangOf(spec, startAt);
  }

  /** Holds the plan's nodes: subtracts them from the locked offers and records one allocation per group. */
  private async reserve(trx: Trx, order: OrderRow, plan: readonly GroupMatch[]): Promise<void> {
    const now = this.ctx.clock.now();
    const spec = fromJson(OrderSpecSchema, order.spec as JsonValue);
    const ttlMs =
      durationOf(spec.reservationTtl, "spec.reservation_ttl", this.ctx.params.maxReservationTtlMs) ?? this.ctx.params.reservationTtlMs;
    const until = new Date(now.getTime() + ttlMs);
    const perOffer = new Map<string, number>();
    for (const g of plan) perOffer.set(g.offerId, (perOffer.get(g.offerId) ?? 0) + g.nodes);
    await sql`
      update gpu_offers o set nodes_free = o.nodes_free - d.n
      from (select unnest(${[...perOffer.keys()]}::text[]) as id, unnest(${[...perOffer.values()]}::int[]) as n) d
      where o.offer_id = d.id`.execute(trx);
    const rows = plan.map((g) => ({
      allocation_id: `alloc-${randomUUID()}`,
      order_id: order.order_id,
      group_index: g.group,
      offer_id: g.offerId,
      provider_id: g.providerId,
      nodes: g.nodes,
      gpus: g.gpus,
      price: g.pricePerGpuHour.toString(),
      score: JSON.stringify(g.score),
      state: "reserved",
      reserved_until: until,
      created_at: now,
    }));
    await trx.insertInto("allocations").values(rows).execute();
    await transitionRow(trx, orderStates, {
      table: "orders",
      key: { order_id: order.order_id },
      to: "reserved",
      set: { reserved_until: until, attempts: order.attempts + 1, explanation: null, updated_at: now },
    });
    const matches = plan.map((g) => matchView(g, until, this.ctx.params.currency));
    await this.ctx.events.orderMatched(trx, order.order_id, order.tenant_id, order.attempts + 1, matches);
  }

  async listMatches(orderId: string): Promise<ListMatchesResponse> {
    if (!orderId) throw new InvalidArgumentError("order_id is required", { field: "order_id" });
    const order = (await this.ctx.db.selectFrom("orders").selectAll().where("order_id", "=", orderId).executeTakeFirst()) as
      OrderRow | undefined;
    if (!order) throw new NotFoundError(`order ${orderId} not found`);
    const view = orderView(order, fromJson(OrderSpecSchema, order.spec as JsonValue), []);
    const allocations = (await this.ctx.db
      .selectFrom("allocations")
      .selectAll()
      .where("order_id", "=", orderId)
      .where("state", "<>", "released")
      .orderBy("group_index")
      .execute()) as AllocationRow[];
    const matches = allocations.map((a) =>
      matchView(
        {
          group: a.group_index,
          offerId: a.offer_id,
          providerId: a.provider_id,
          nodes: a.nodes,
          gpus: a.gpus,
          pricePerGpuHour: BigInt(a.price),
          costPerHour: 0n,
          score: a.score,
        },
        a.reserved_until,
        this.ctx.params.currency,
      ),
    );
    const e = order.explanation as Explanation | null;
    return create(ListMatchesResponseSchema, {
      state: view.state,
      matches,
      reasons: e ? reasonsOf(e) : [],
      offersConsidered: e?.offersConsidered ?? 0,
      explanation: e ? explanationView(e) : undefined,
    });
  }

  /** Reservations past their TTL: released, order expired. Returns how many orders expired. */
  async expireReservations(limit = 200): Promise<number> {
    const now = this.ctx.clock.now();
    return this.ctx.db.transaction().execute(async (trx) => {
      const due = await sql<{ order_id: string }>`
        select order_id from orders where state = 'reserved' and reserved_until <= ${now}
        order by reserved_until limit ${limit} for update skip locked`.execute(trx);
      for (const { order_id } of due.rows) {
        await releaseAllocations(trx, this.ctx, order_id, ["reserved"], "reservation expired");
        await transitionRow(trx, orderStates, {
          table: "orders",
          key: { order_id },
          from: ["reserved"],
          to: "expired",
          set: { updated_at: now },
        });
      }
      // Unmatched orders whose start window closed.
      const late = await sql<{ order_id: string }>`
        select order_id from orders where state in ('matching', 'unmatched') and start_before <= ${now}
        limit ${limit} for update skip locked`.execute(trx);
      for (const { order_id } of late.rows) {
        await transitionRow(trx, orderStates, {
          table: "orders",
          key: { order_id },
          from: ["unmatched"],
          to: "expired",
          set: { updated_at: now },
        }).catch(() => undefined);
      }
      return due.rows.length;
    });
  }

  /** Matches unmatched orders again (offers change); oldest attempt first. */
  async rematch(limit = 50): Promise<number> {
    const rows = await this.ctx.db
      .selectFrom("orders")
      .select("order_id")
      .where("state", "in", ["matching", "unmatched"])
      .orderBy("updated_at")
      .limit(limit)
      .execute();
    let reserved = 0;
    for (const r of rows) if ((await this.match(r.order_id as string)).state === "reserved") reserved++;
    return reserved;
  }
}

/** Releases an order's live allocations in `from` states and gives their nodes back to the offers, at once. */
export async function releaseAllocations(
  trx: Trx,
  ctx: MarketContext,
  orderId: string,
  from: readonly ("reserved" | "leased")[],
  reason: string,
  allocationIds?: readonly string[],
): Promise<number> {
  const now = ctx.clock.now();
  const released = await sql<{ offer_id: string; nodes: number }>`
    update allocations set state = 'released', released_at = ${now}, release_reason = ${reason}
    where order_id = ${orderId} and state = any(${[...from]}::text[])
      ${allocationIds ? sql`and allocation_id = any(${[...allocationIds]}::text[])` : sql``}
    returning offer_id, nodes`.execute(trx);
  const perOffer = new Map<string, number>();
  for (const r of released.rows) perOffer.set(r.offer_id, (perOffer.get(r.offer_id) ?? 0) + r.nodes);
  if (perOffer.size > 0) {
    await sql`
      update gpu_offers o set nodes_free = o.nodes_free + d.n
      from (select unnest(${[...perOffer.keys()]}::text[]) as id, unnest(${[...perOffer.values()]}::int[]) as n order by 1) d
      where o.offer_id = d.id`.execute(trx);
  }
  return released.rows.length;
}

function reasonsOf(e: Explanation): NoMatchReason[] {
  return e.dimensions
    .filter((d) => d.offersExcluded > 0 || d.code === "gang_incomplete" || d.code === "no_offers_for_class")
    .map((d) => create(NoMatchReasonSchema, { code: NO_MATCH[d.code], offersRejected: d.offersExcluded, message: d.message }));
}
