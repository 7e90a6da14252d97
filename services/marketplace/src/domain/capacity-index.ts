/**
 * The matcher's in-memory view of GPU capacity (pure): every offer with its provider's
 * standing as last read from Postgres, the nodes this process holds for plans not yet
 * committed, and per class the offers with free nodes in price order, so planning a gang
 * walks from the cheapest instead of scanning every offer.
 *
 * It is a cache, never the arbiter: the batch commit re-reads the planned offers under row
 * locks and the CHECK on `nodes_free` backs that up. The matcher's loop applies reads and its
 * own commits one at a time, so the last one applied is the newest.
 */
import { offerFilter, type GangRequest, type GroupMatch, type OfferCandidate } from "./matching.js";

interface Entry {
  offer: OfferCandidate;
  /** Nodes held by planned, uncommitted orders of this process. */
  held: number;
  /** In its class's free list (matchable with free nodes after holds). */
  listed: boolean;
}

function before(a: OfferCandidate, b: OfferCandidate): boolean {
  return a.pricePerGpuHour !== b.pricePerGpuHour ? a.pricePerGpuHour < b.pricePerGpuHour : a.offerId < b.offerId;
}

export class CapacityIndex {
  private readonly entries = new Map<string, Entry>();
  private readonly free = new Map<string, Entry[]>();

  get size(): number {
    return this.entries.size;
  }

  /** Records an offer as last read from Postgres (its nodes free before this process's holds). */
  apply(offer: OfferCandidate): void {
    const e = this.entries.get(offer.offerId);
    if (!e) {
      const fresh: Entry = { offer, held: 0, listed: false };
      this.entries.set(offer.offerId, fresh);
      this.relist(fresh);
      return;
    }
    this.unlist(e);
    e.offer = offer;
    this.relist(e);
  }

  /** Free nodes of an offer as last read from Postgres (before holds); undefined when unknown. */
  known(offerId: string): number | undefined {
    return this.entries.get(offerId)?.offer.nodesFree;
  }

  /** Free nodes of an offer after this process's holds (0 when unknown). */
  available(offerId: string): number {
    const e = this.entries.get(offerId);
    return e ? e.offer.nodesFree - e.held : 0;
  }

  /** Holds (or, negative, gives back) nodes for a planned order until its batch commits. */
  hold(offerId: string, nodes: number): void {
    const e = this.entries.get(offerId);
    if (!e) throw new Error(`capacity index: unknown offer ${offerId}`);
    this.unlist(e);
    e.held += nodes;
    this.relist(e);
  }

  /**
   * The first `limit` offers of `r`'s class in price order that pass every filter of `r`,
   * with free nodes net of holds: what the candidate query returns, from memory.
   */
  candidates(r: GangRequest, limit: number): OfferCandidate[] {
    const list = this.free.get(r.classId) ?? [];
    const fails = offerFilter(r);
    const out: OfferCandidate[] = [];
    for (const e of list) {
      const o = e.held === 0 ? e.offer : { ...e.offer, nodesFree: e.offer.nodesFree - e.held };
      if (fails(o) !== null) continue;
      out.push(o);
      if (out.length >= limit) break;
    }
    return out;
  }

  private relist(e: Entry): void {
    if (!e.offer.matchable || e.offer.nodesFree - e.held <= 0) return;
    let list = this.free.get(e.offer.classId);
    if (!list) this.free.set(e.offer.classId, (list = []));
    list.splice(this.position(list, e.offer), 0, e);
    e.listed = true;
  }

  private unlist(e: Entry): void {
    if (!e.listed) return;
    const list = this.free.get(e.offer.classId)!;
    const i = this.position(list, e.offer);
    if (list[i] !== e) throw new Error(`capacity index: offer ${e.offer.offerId} is not where its price puts it`);
    list.splice(i, 1);
    e.listed = false;
  }

  /** First index whose offer does not sort before `o`. */
  private position(list: readonly Entry[], o: OfferCandidate): number {
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (before(list[mid]!.offer, o)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/**
 * Re-checks the batch's plans in order against the locked rows: a plan wins when every offer
 * it uses still passes the order's filters at the planned ask and has the free nodes (after
 * the earlier winners of the batch); the others lose.
 */
export function recheck<P extends { readonly order: { readonly gang: GangRequest }; readonly plan?: readonly GroupMatch[] }>(
  batch: readonly P[],
  locked: readonly OfferCandidate[],
): { winners: P[]; losers: P[] } {
  const rows = new Map(locked.map((o) => [o.offerId, o]));
  const free = new Map(locked.map((o) => [o.offerId, o.nodesFree]));
  const winners: P[] = [];
  const losers: P[] = [];
  for (const p of batch) {
    const need = new Map<string, number>();
    for (const m of p.plan!) need.set(m.offerId, (need.get(m.offerId) ?? 0) + m.nodes);
    const fails = offerFilter(p.order.gang);
    const fits = p.plan!.every((m) => {
      const o = rows.get(m.offerId);
      if (!o || o.pricePerGpuHour !== m.pricePerGpuHour) return false;
      const left = free.get(m.offerId)!;
      return left >= need.get(m.offerId)! && fails({ ...o, nodesFree: left }) === null;
    });
    if (!fits) {
      losers.push(p);
      continue;
    }
    for (const [id, n] of need) free.set(id, free.get(id)! - n);
    winners.push(p);
  }
  return { winners, losers };
}
