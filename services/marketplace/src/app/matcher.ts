// The batch gang matcher: plans orders against an in-memory capacity index and commits them
// in batches (group commit), so one transaction reserves many gangs.
//
// One loop per process: read what changed in Postgres since the last read (the change feed
// of store/capacity.ts), plan every queued order in arrival order against the index (each
// plan holds its nodes in memory so the next order plans around it), then commit the batch
// in one transaction: lock the planned offers in id order, re-check every plan against the
// locked rows (free nodes, filters, ask), and write the orders that still fit — orders,
// allocations, nodes taken, escrow accounts and owners, events — in a few multi-row
// statements. An order is acknowledged only after its batch committed (durable).
//
// The index is a cache: Postgres stays the arbiter. Replicas each keep their own; a plan made
// on a stale view loses at the locked re-check (the CHECK on nodes_free backs that up), and
// only the losers are planned again, on the freshly locked values. Orders the index cannot
// place, and losers after a few attempts, go back to the caller, which matches them with the
// SQL path (and explains a miss from a full snapshot).
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { randomUUID } from "node:crypto";

import { MatchSchema, MatchScoreSchema, type Match } from "@deai/contracts/deai/marketplace/v1/marketplace_pb";

import { accountsInsert, outboxInsert } from "@deai/kit";

import { matchGang, type GangRequest, type GroupMatch, type OfferCandidate } from "../domain/matching.js";
import { CapacityIndex, recheck } from "../domain/capacity-index.js";
import { candidateOf, insertReservedOrders, lockOffers, readCapacity, type ReservedOrderInsert } from "../store/capacity.js";
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
  resolve(o: BatchOutcome): void;
  reject(e: unknown): void;
}

/** Candidate offers a plan considers: what the SQL candidate query's limit is. */
export function candidateLimit(g: GangRequest): number {
  return g.distinctProviders ? g.groups * 8 + 32 : g.groups * 2 + 8;
}

export class GangMatcher {
  private readonly index = new CapacityIndex();
  private watermark: string | undefined;
  private queue: Pending[] = [];
  /** A read and plan is under way (one at a time: plans must see each other's holds). */
  private planning = false;
  private inflight = 0;
  /** Commits finished so far, and per offer the count when one last wrote it (a read started before must not undo it). */
  private commits = 0;
  private readonly committedAt = new Map<string, number>();
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
    let planned: Pending[] = [];
    try {
      await this.fresh();
      planned = this.plan(this.queue.splice(0, this.maxBatch));
    } catch (e) {
      for (const p of this.queue.splice(0, this.maxBatch)) p.reject(e);
    } finally {
      this.planning = false;
    }
    if (planned.length === 0) return this.kick();
    this.inflight++;
    this.kick();
    try {
      await this.commit(planned);
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
    const { rows, watermark } = await readCapacity(this.ctx.db, this.watermark);
    for (const row of rows) {
      const o = candidateOf(row, this.ctx.params.minStake);
      // A commit of ours that finished while this read ran may be newer than what the read saw;
      // commits only take nodes, so the smaller count is the newer one (anything else that
      // changed after the read's snapshot comes again in the next read).
      const raced = (this.committedAt.get(o.offerId) ?? 0) > started;
      this.index.apply(raced ? { ...o, nodesFree: Math.min(o.nodesFree, this.index.known(o.offerId) ?? o.nodesFree) } : o);
    }
    this.watermark = watermark;
  }

  /** Plans each order on the index, holding its nodes; orders the index cannot place are handed back. */
  private plan(batch: Pending[]): Pending[] {
    const planned: Pending[] = [];
    for (const p of batch) {
      const g = p.order.gang;
      const r = matchGang(this.index.candidates(g, candidateLimit(g)), g);
      if (!r.matched) {
        p.resolve({ kind: "fallback" });
        continue;
      }
      p.plan = r.plan;
      for (const m of r.plan) this.index.hold(m.offerId, m.nodes);
      planned.push(p);
    }
    return planned;
  }

  private async commit(batch: Pending[]): Promise<void> {
    if (batch.length === 0) return;
    const now = this.ctx.clock.now();
    let locked: OfferCandidate[] = [];
    let winners: Pending[] = [];
    let losers: Pending[] = [];
    let inserted: OrderRow[] = [];
    try {
      await this.ctx.db.transaction().execute(async (trx) => {
        locked = (await lockOffers(trx, batch.flatMap((p) => p.plan!.map((m) => m.offerId)))).map((row) =>
          candidateOf(row, this.ctx.params.minStake),
        );
        ({ winners, losers } = recheck(batch, locked));
        const inserts = winners.map((p) => reservedInsert(p, now));
        const { rows, accountsCreated } = await insertReservedOrders(trx, inserts, now, {
          accounts: accountsInsert(
            this.ctx.clock,
            inserts.map((o) => ({ id: o.escrowAccountId, ledger: this.ctx.params.currency, kind: "escrow", flags: { debitsMustNotExceedCredits: true } })),
          ),
          events: outboxInsert(
            this.ctx.events.ordersMatchedOutbox(
              inserts.map((o, i) => ({ orderId: o.orderId, tenantId: o.tenantId, attempt: 1, matches: matchesOf(winners[i]!.plan!, o.reservedUntil, this.ctx.params.currency) })),
            ),
          ),
        });
        // A key seen before (or an escrow account that exists): the accounts and events of every
        // order were written, so undo the batch and leave those orders to the SQL path.
        if (rows.length < inserts.length || accountsCreated < inserts.length) throw new Skipped(rows.map((r) => r.order_id));
        inserted = rows;
      });
    } catch (e) {
      this.unhold(batch);
      if (e instanceof Skipped) {
        // Winners that were inserted go again; the others take the SQL path (which returns the existing order).
        const again = new Set(e.inserted);
        for (const p of batch) if (!again.has(p.order.orderId) && winners.includes(p)) p.resolve({ kind: "fallback" });
        this.retry(batch.filter((p) => again.has(p.order.orderId) || !winners.includes(p)));
        return;
      }
      if (isLockConflict(e)) {
        this.retry(batch);
        return;
      }
      for (const p of batch) p.reject(e);
      return;
    }
    // Committed: the locked rows less what the inserted orders took are what Postgres holds now.
    this.unhold(batch);
    const rows = new Map(inserted.map((o) => [o.order_id, o]));
    const taken = new Map<string, number>();
    for (const p of winners) if (rows.has(p.order.orderId)) for (const m of p.plan!) taken.set(m.offerId, (taken.get(m.offerId) ?? 0) + m.nodes);
    this.commits++;
    for (const o of locked) {
      this.index.apply({ ...o, nodesFree: o.nodesFree - (taken.get(o.offerId) ?? 0) });
      this.committedAt.set(o.offerId, this.commits);
    }
    for (const p of winners) {
      const row = rows.get(p.order.orderId);
      p.resolve(row ? { kind: "reserved", row, plan: p.plan! } : { kind: "fallback" });
    }
    this.retry(losers);
  }

  private unhold(batch: readonly Pending[]): void {
    for (const p of batch) for (const m of p.plan ?? []) this.index.hold(m.offerId, -m.nodes);
  }

  /** Losers go to the front of the queue for the next batch, or back to the caller after too many attempts. */
  private retry(losers: readonly Pending[]): void {
    const again: Pending[] = [];
    for (const p of losers) {
      p.plan = undefined;
      if (++p.attempts >= this.attempts) p.resolve({ kind: "fallback" });
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

class Skipped extends Error {
  constructor(readonly inserted: readonly string[]) {
    super("batch rolled back: some orders were not inserted");
  }
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

/** A deadlock, serialization failure or lock timeout: the transaction may simply run again. */
export function isLockConflict(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === "40P01" || code === "40001" || code === "55P03";
}
