// The batch gang matcher: plans orders against an in-memory capacity index and commits them
// in batches (group commit), so one statement reserves many gangs.
//
// One loop per process: bring the index up to date with what changed in Postgres (the change
// feed of store/capacity.ts, read in the background while batches commit, never older than
// `maxStalenessMs`), plan every queued order in arrival order on the index (each plan holds
// its nodes in memory so the next order plans around it), then commit the batch in one
// statement (store/capacity.ts reserveBatch): it locks the planned offers that still have the
// version they were planned on, and writes the orders all of whose offers it locked — orders,
// allocations, nodes taken, escrow owners, escrow accounts and events. An order is
// acknowledged only after that statement committed (durable).
//
// The index is a cache: Postgres stays the arbiter. Replicas each keep their own; a plan made
// on a stale view finds a changed version and loses (the CHECK on nodes_free backs that up),
// and only the losers are planned again, after a fresh read. Orders the index cannot place,
// losers after a few attempts and keys used before go back to the caller, which matches them
// with the SQL path (and explains a miss from a full snapshot).
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { randomUUID } from "node:crypto";

import { MatchSchema, MatchScoreSchema, type Match } from "@deai/contracts/deai/marketplace/v1/marketplace_pb";

import { accountsInsert, outboxInsert } from "@deai/kit";
import { sql } from "kysely";

import { matchGang, type GangRequest, type GroupMatch } from "../domain/matching.js";
import { CapacityIndex } from "../domain/capacity-index.js";
import { candidateOf, readCapacity, reserveBatch, type PlannedOffer, type ReservedOrderInsert } from "../store/capacity.js";
import type { MarketContext } from "./context.js";
import { money, type OrderRow } from "./views.js";

/** An order to create and reserve, its spec already checked. */
export interface BatchOrder extends Omit<ReservedOrderInsert, "allocations" | "reservedUntil"> {
  readonly gang: GangRequest;
  readonly ttlMs: number;
}

export type BatchOutcome =
  | { readonly kind: "reserved"; readonly row: OrderRow; readonly plan: readonly GroupMatch[] }
  /** Not reserved here (no place in the index, lost too often, or the key exists): the SQL path decides. */
  | { readonly kind: "fallback" };

export interface GangMatcherOptions {
  /** Most orders in one commit. @default 256 */
  readonly maxBatch?: number;
  /** Plans an order may lose at the locked re-check before the SQL path takes it. @default 3 */
  readonly attempts?: number;
  /** Batches committing at once (each on its own connection; a new one is planned while others commit). @default 2 */
  readonly depth?: number;
  /**
   * How old the index may be when a batch is planned: it holds every change committed at
   * least this long before. Reads run in the background while batches commit, at most
   * one per half of it. @default 25
   */
  readonly maxStalenessMs?: number;
}

interface Pending {
  readonly order: BatchOrder;
  attempts: number;
  plan?: readonly GroupMatch[];
  /** The version of each offer of the plan when it was made. */
  versions?: ReadonlyMap<string, string>;
  /** Its plan's nodes are held in the index. */
  held?: boolean;
  resolve(o: BatchOutcome): void;
  reject(e: unknown): void;
}

/** Candidate offers a plan considers: what the SQL candidate query's limit is. */
export function candidateLimit(g: GangRequest): number {
  return g.distinctProviders ? g.groups * 8 + 32 : g.groups * 2 + 8;
}

/** What the matcher did since it started: for the benchmark and metrics. */
export interface MatcherStats {
  /** Batch statements committed. */
  batches: number;
  /** Orders reserved by them. */
  reserved: number;
  /** Plans that lost to a changed version (planned again). */
  lost: number;
  /** Orders handed back to the SQL path. */
  handedBack: number;
  /** Change-feed reads and the offer rows they returned. */
  reads: number;
  rowsRead: number;
}

export class GangMatcher {
  readonly stats: MatcherStats = { batches: 0, reserved: 0, lost: 0, handedBack: 0, reads: 0, rowsRead: 0 };
  private readonly index = new CapacityIndex();
  private watermark: string | undefined;
  private queue: Pending[] = [];
  /** A read and plan is under way (one at a time: plans must see each other's holds). */
  private planning = false;
  private inflight = 0;
  /** Commits finished so far, and per offer the last one that wrote it with the version it replaced (a read started before must not bring that back). */
  private commits = 0;
  private readonly replaced = new Map<string, { at: number; version: string }>();
  /** Our committed batches' transaction ids not yet below the watermark: reads skip the offers they wrote last. */
  private ownXids: string[] = [];
  private readonly maxBatch: number;
  private readonly attempts: number;
  private readonly depth: number;
  private readonly maxStalenessMs: number;
  private reading: Promise<void> | undefined;
  private readingSince = -Infinity;
  /** When the newest read applied to the index began (performance.now()). */
  private readSince = -Infinity;

  constructor(
    private readonly ctx: MarketContext,
    opts: GangMatcherOptions = {},
  ) {
    this.maxBatch = opts.maxBatch ?? 256;
    this.attempts = opts.attempts ?? 3;
    this.depth = opts.depth ?? 2;
    this.maxStalenessMs = opts.maxStalenessMs ?? 25;
  }

  /** Queues an order for the next batch; resolves once its batch committed (or it was handed back). */
  submit(order: BatchOrder): Promise<BatchOutcome> {
    return new Promise((resolve, reject) => {
      this.queue.push({ order, attempts: 0, resolve, reject });
      this.kick();
    });
  }

  /** Reads the index from Postgres now (at start, so the first orders do not wait for it). */
  async warmUp(): Promise<void> {
    await this.read();
  }

  /** Starts a batch when orders wait, no plan is being made and fewer than `depth` commits are in flight. */
  private kick(): void {
    if (this.planning || this.inflight >= this.depth || this.queue.length === 0) return;
    this.planning = true;
    void this.cycle();
  }

  private async cycle(): Promise<void> {
    let planned: Pending[];
    let batch: Pending[] = [];
    try {
      await this.fresh();
      batch = this.queue.splice(0, this.maxBatch);
      planned = this.plan(batch);
    } catch (e) {
      // Postgres unreachable (or a defect): these orders fail, nothing was written for them.
      if (batch.length === 0) batch = this.queue.splice(0, this.maxBatch);
      this.unhold(batch);
      for (const p of batch) p.reject(e);
      planned = [];
    } finally {
      this.planning = false;
    }
    if (planned.length === 0) return this.kick();
    this.inflight++;
    this.kick();
    try {
      await this.commit(planned);
    } catch (e) {
      this.unhold(planned);
      for (const p of planned) p.reject(e);
    } finally {
      this.inflight--;
      this.kick();
    }
  }

  /** Makes sure the index is at most `maxStalenessMs` old, and starts the next read in the background. */
  private async fresh(): Promise<void> {
    const bound = performance.now() - this.maxStalenessMs;
    if (this.readSince < bound) {
      if (this.reading && this.readingSince < bound) await this.reading.catch(() => undefined);
      await this.read();
      return;
    }
    // Our own commits update the index directly; reads are for other writers, so half the bound apart is enough.
    if (this.readSince < performance.now() - this.maxStalenessMs / 2) this.read().catch(() => undefined); // a failure shows in the next read waited for
  }

  /** The read in flight, or a new one. */
  private read(): Promise<void> {
    if (!this.reading) {
      const since = performance.now();
      this.readingSince = since;
      this.reading = this.refresh()
        .then(() => {
          this.readSince = since;
        })
        .finally(() => {
          this.reading = undefined;
        });
    }
    return this.reading;
  }

  /** Brings the index up to date with Postgres: everything at first, then the changes since the last read. */
  private async refresh(): Promise<void> {
    const started = this.commits;
    const { rows, watermark } = await readCapacity(this.ctx.db, this.watermark, this.ownXids);
    this.stats.reads++;
    this.stats.rowsRead += rows.length;
    for (const row of rows) {
      const r = this.replaced.get(row.offer_id);
      if (r && r.at > started && r.version === row.version) continue; // read before our commit landed
      this.index.apply(candidateOf(row, this.ctx.params.minStake), row.version);
    }
    this.watermark = watermark;
    // Our transactions below the watermark cannot match `change_xid >= watermark` any more.
    const w = BigInt(watermark);
    this.ownXids = this.ownXids.filter((x) => BigInt(x) >= w);
  }

  /** Plans each order on the index, holding its nodes; orders the index cannot place are handed back. */
  private plan(batch: Pending[]): Pending[] {
    const planned: Pending[] = [];
    for (const p of batch) {
      const g = p.order.gang;
      const r = matchGang(this.index.candidates(g, candidateLimit(g)), g);
      if (!r.matched) {
        this.handBack(p);
        continue;
      }
      p.plan = r.plan;
      p.versions = new Map(r.plan.map((m) => [m.offerId, this.index.known(m.offerId)!.version]));
      for (const m of r.plan) this.index.hold(m.offerId, m.nodes);
      p.held = true;
      planned.push(p);
    }
    return planned;
  }

  private async commit(batch: Pending[]): Promise<void> {
    const now = this.ctx.clock.now();
    const offers = new Map<string, PlannedOffer>();
    for (const p of batch)
      for (const m of p.plan!) {
        const prev = offers.get(m.offerId);
        offers.set(m.offerId, {
          offerId: m.offerId,
          version: prev?.version ?? p.versions!.get(m.offerId)!,
          nodes: (prev?.nodes ?? 0) + m.nodes,
        });
      }
    const inserts = batch.map((p) => reservedInsert(p, now));
    const events = this.ctx.events.ordersMatchedOutbox(
      inserts.map((o, i) => ({
        orderId: o.orderId,
        tenantId: o.tenantId,
        attempt: 1,
        matches: matchesOf(batch[i]!.plan!, o.reservedUntil, this.ctx.params.currency),
      })),
    );
    let result: Awaited<ReturnType<typeof reserveBatch>>;
    try {
      result = await reserveBatch(this.ctx.db, [...offers.values()], inserts, now, (won) => [
        accountsInsert(
          this.ctx.clock,
          inserts.map((o) => ({
            id: o.escrowAccountId,
            ledger: this.ctx.params.currency,
            kind: "escrow",
            flags: { debitsMustNotExceedCredits: true },
          })),
          won.accountIds,
        ),
        outboxInsert(
          events,
          events.length > 0
            ? sql`select e from unnest(${events.map((e) => e.eventId)}::text[], ${inserts.map((o) => o.orderId)}::text[]) as m (e, o) where o in (${won.orderIds})`
            : undefined,
        ),
      ]);
    } catch (e) {
      this.unhold(batch);
      if (isKeyConflict(e)) return this.dropUsedKeys(batch);
      if (isLockConflict(e)) return this.retry(batch);
      for (const p of batch) p.reject(e);
      return;
    }
    // Committed. A winner's offers were exactly as the index had them: less what the batch took, at our version.
    this.unhold(batch);
    const rows = new Map(result.rows.map((o) => [o.order_id, o]));
    const taken = new Map<string, number>();
    for (const p of batch)
      if (rows.has(p.order.orderId)) for (const m of p.plan!) taken.set(m.offerId, (taken.get(m.offerId) ?? 0) + m.nodes);
    this.commits++;
    this.stats.batches++;
    this.stats.reserved += rows.size;
    this.stats.lost += batch.length - rows.size;
    if (result.xid !== null) this.ownXids.push(result.xid);
    for (const [offerId, nodes] of taken) {
      const k = this.index.known(offerId)!;
      const version = `${result.xid}:${k.version.split(":")[1]}`;
      this.index.apply({ ...k.offer, nodesFree: k.offer.nodesFree - nodes }, version);
      this.replaced.set(offerId, { at: this.commits, version: offers.get(offerId)!.version });
    }
    const losers: Pending[] = [];
    for (const p of batch) {
      const row = rows.get(p.order.orderId);
      if (row) p.resolve({ kind: "reserved", row, plan: p.plan! });
      else losers.push(p);
    }
    // Losers planned on a version that changed: read what changed before planning them again.
    if (losers.length > 0) this.readSince = -Infinity;
    this.retry(losers);
  }

  /** A batch failed on a (tenant, idempotency key) that exists: those orders take the SQL path (which returns the existing order), the rest go again. */
  private async dropUsedKeys(batch: readonly Pending[]): Promise<void> {
    try {
      const used = await sql<{ k: string }>`
        select tenant_id || ' ' || idempotency_key as k from orders
        where (tenant_id, idempotency_key) in (select * from unnest(${batch.map((p) => p.order.tenantId)}::text[], ${batch.map((p) => p.order.idempotencyKey)}::text[]))`.execute(
        this.ctx.db,
      );
      const keys = new Set(used.rows.map((r) => r.k));
      const again: Pending[] = [];
      for (const p of batch) {
        if (keys.has(`${p.order.tenantId} ${p.order.idempotencyKey}`)) this.handBack(p);
        else again.push(p);
      }
      this.retry(again);
    } catch (e) {
      for (const p of batch) p.reject(e);
    }
  }

  private handBack(p: Pending): void {
    this.stats.handedBack++;
    p.resolve({ kind: "fallback" });
  }

  /** Gives back the nodes the batch's plans hold (once per plan). */
  private unhold(batch: readonly Pending[]): void {
    for (const p of batch) {
      if (p.held) for (const m of p.plan ?? []) this.index.hold(m.offerId, -m.nodes);
      p.held = false;
    }
  }

  /** Losers go to the front of the queue for the next batch, or back to the caller after too many attempts. */
  private retry(losers: readonly Pending[]): void {
    const again: Pending[] = [];
    for (const p of losers) {
      p.plan = undefined;
      if (++p.attempts >= this.attempts) this.handBack(p);
      else again.push(p);
    }
    this.queue = [...again, ...this.queue];
  }
}

function reservedInsert(p: Pending, now: Date): ReservedOrderInsert {
  const { gang: _gang, ttlMs, ...o } = p.order;
  return {
    ...o,
    reservedUntil: new Date(now.getTime() + ttlMs),
    allocations: p.plan!.map((m) => ({
      allocationId: `alloc-${randomUUID()}`,
      groupIndex: m.group,
      offerId: m.offerId,
      providerId: m.providerId,
      nodes: m.nodes,
      gpus: m.gpus,
      price: m.pricePerGpuHour.toString(),
      scoreJson: JSON.stringify(m.score),
    })),
  };
}

/** A group's place as the API shows it. */
export function matchView(g: GroupMatch, until: Date, currency: string): Match {
  return create(MatchSchema, {
    group: g.group,
    offerId: g.offerId,
    providerId: g.providerId,
    nodes: g.nodes,
    gpus: g.gpus,
    pricePerGpuHour: money(currency, g.pricePerGpuHour),
    score: create(MatchScoreSchema, g.score),
    reservedUntil: timestampFromDate(until),
  });
}

function matchesOf(plan: readonly GroupMatch[], until: Date, currency: string): Match[] {
  return plan.map((g) => matchView(g, until, currency));
}

/** The batch hit the unique (tenant, idempotency key) of orders. */
function isKeyConflict(e: unknown): boolean {
  const x = e as { code?: unknown; constraint?: unknown } | null;
  return x?.code === "23505" && x.constraint === "orders_tenant_id_idempotency_key_key";
}

/** A deadlock, serialization failure or lock timeout: the transaction may simply run again. */
export function isLockConflict(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === "40P01" || code === "40001" || code === "55P03";
}
