/**
 * The matcher's in-memory view of GPU capacity (pure): every offer with its provider's
 * standing as last read from Postgres, the nodes this process holds for plans not yet
 * committed, and per class the offers with free nodes in price order, so planning a gang
 * walks from the cheapest instead of scanning every offer.
 *
 * It is a cache, never the arbiter: the batch commit re-reads the planned offers under row
 * locks and the CHECK on `nodes_free` backs that up. `version` names the row as read (the
 * writing transactions of the offer and of its provider): a batch commits an order only while
 * every offer it planned on still has the version it was planned with.
 */
import { offerFilter, type GangRequest, type OfferCandidate } from "./matching.js";

interface Entry {
  offer: OfferCandidate;
  version: string;
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

  /** Records an offer as last read from Postgres at `version` (its nodes free before this process's holds). */
  apply(offer: OfferCandidate, version: string): void {
    const e = this.entries.get(offer.offerId);
    if (!e) {
      const fresh: Entry = { offer, version, held: 0, listed: false };
      this.entries.set(offer.offerId, fresh);
      this.relist(fresh);
      return;
    }
    this.unlist(e);
    e.offer = offer;
    e.version = version;
    this.relist(e);
  }

  /** An offer as last read from Postgres (nodes free before holds) and its version; undefined when unknown. */
  known(offerId: string): { readonly offer: OfferCandidate; readonly version: string } | undefined {
    const e = this.entries.get(offerId);
    return e && { offer: e.offer, version: e.version };
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
    e.held += nodes;
    // Its place in the list depends on price and id only: move it only when it gains or loses free nodes.
    const free = e.offer.matchable && e.offer.nodesFree - e.held > 0;
    if (free && !e.listed) this.relist(e);
    else if (!free && e.listed) this.unlist(e);
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
