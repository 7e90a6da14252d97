/**
 * Gang matching, pure: filter → score → an all-or-nothing plan for every group of an order,
 * or an explanation with the shortfall per dimension. No I/O: the store passes a snapshot of
 * candidate offers (with their providers' standing) and reserves the plan under row locks.
 *
 * Pricing rule: every group pays its offer's ask (price per GPU-hour × the GPUs of the whole
 * nodes it takes); the plan with the lowest total cost wins. Groups are identical, so the
 * plan is the `groups` cheapest group slots (one offer gives ⌊free nodes / nodes per group⌋
 * slots; with `distinctProviders`, a provider gives at most one): that choice is optimal.
 * Ties go to the higher score (reliability, bandwidth), then the offer id, so every replica
 * computes the same plan from the same snapshot.
 */
import type { NoMatchCodeName } from "./no-match.js";

/** What matching knows about one GPU offer and its provider. */
export interface OfferCandidate {
  readonly offerId: string;
  readonly providerId: string;
  readonly classId: string;
  readonly region: string;
  readonly bandwidthMbps: number;
  /** Ask per GPU-hour, base units. */
  readonly pricePerGpuHour: bigint;
  readonly gpusPerNode: number;
  readonly nodesFree: number;
  /** Shortest lease accepted, ms; 0 = none. */
  readonly minLeaseMs: number;
  /** Offer valid until (epoch ms); null = until withdrawn. */
  readonly availableUntilMs: number | null;
  /** Not jailed, not tombstoned, offer active. */
  readonly matchable: boolean;
  /** Bonded stake, base units. */
  readonly stake: bigint;
  /** Reputation mean in [0, 1] (DA sampler and lease history). */
  readonly reliability: number;
}

/** What an order asks of every group. */
export interface GangRequest {
  readonly classId: string;
  readonly gpusPerGroup: number;
  readonly groups: number;
  readonly maxPricePerGpuHour: bigint;
  readonly durationMs: number;
  /** When the leases would start (epoch ms). */
  readonly startAtMs: number;
  /** Empty = any. */
  readonly regions: readonly string[];
  readonly minBandwidthMbps: number;
  readonly minReliability: number;
  readonly excludedProviders: readonly string[];
  readonly distinctProviders: boolean;
  /** 0 = the service's minimum only (already applied to `matchable`). */
  readonly minStake: bigint;
}

export interface Score {
  readonly total: number;
  readonly price: number;
  readonly reliability: number;
  readonly bandwidth: number;
}

/** One group's place in a plan. */
export interface GroupMatch {
  readonly group: number;
  readonly offerId: string;
  readonly providerId: string;
  readonly nodes: number;
  readonly gpus: number;
  readonly pricePerGpuHour: bigint;
  /** price × gpus: what the group costs per hour. */
  readonly costPerHour: bigint;
  readonly score: Score;
}

export interface DimensionShortfall {
  readonly code: NoMatchCodeName;
  readonly offersExcluded: number;
  readonly providersExcluded: number;
  readonly message: string;
}

export interface FreeCapacity {
  readonly providerId: string;
  readonly region: string;
  readonly freeGpus: number;
  readonly largestBlockGpus: number;
}

export interface Explanation {
  /** Most limiting first. */
  readonly dimensions: readonly DimensionShortfall[];
  readonly freeCapacity: readonly FreeCapacity[];
  readonly eligibleFreeGpus: number;
  readonly neededGpus: number;
  readonly groupsPlaceable: number;
  readonly offersConsidered: number;
}

export type MatchResult =
  | { readonly matched: true; readonly plan: readonly GroupMatch[]; readonly totalCostPerHour: bigint; readonly offersConsidered: number }
  | { readonly matched: false; readonly explanation: Explanation };

/** Nodes of an offer one group takes: whole nodes, co-located in that offer. */
export function nodesPerGroup(gpusPerGroup: number, gpusPerNode: number): number {
  return Math.ceil(gpusPerGroup / gpusPerNode);
}

const HOUR_MS = 3_600_000;

/** Each offer fails at most one filter: the first in this order. */
function firstFailure(
  o: OfferCandidate,
  r: GangRequest,
  excluded: ReadonlySet<string>,
  regions: ReadonlySet<string>,
): NoMatchCodeName | null {
  if (o.classId !== r.classId) return "no_offers_for_class";
  if (!o.matchable || excluded.has(o.providerId)) return "provider_ineligible";
  if (r.minStake > 0n && o.stake < r.minStake) return "stake_below_min";
  if (o.reliability < r.minReliability) return "reliability_below_min";
  if (regions.size > 0 && !regions.has(o.region)) return "region_excluded";
  if (o.bandwidthMbps < r.minBandwidthMbps) return "bandwidth_below_min";
  if (o.pricePerGpuHour > r.maxPricePerGpuHour) return "price_above_max";
  if (o.minLeaseMs > r.durationMs || (o.availableUntilMs !== null && o.availableUntilMs < r.startAtMs + r.durationMs)) {
    return "duration_unsupported";
  }
  if (o.nodesFree < nodesPerGroup(r.gpusPerGroup, o.gpusPerNode)) return "insufficient_capacity";
  return null;
}

/** The filters of `r` as one function: why an offer cannot host a group (the first filter it fails), or null when it can. */
export function offerFilter(r: GangRequest): (o: OfferCandidate) => NoMatchCodeName | null {
  const excluded = new Set(r.excludedProviders);
  const regions = new Set(r.regions);
  return (o) => firstFailure(o, r, excluded, regions);
}

/** Score in [0, 1] per component; the total weighs price 0.6, reliability 0.25, bandwidth 0.15. */
export function scoreOffer(o: OfferCandidate, r: GangRequest): Score {
  const price = r.maxPricePerGpuHour === 0n ? 1 : 1 - Number((o.pricePerGpuHour * 10_000n) / r.maxPricePerGpuHour) / 10_000;
  const reliability = Math.max(0, Math.min(1, o.reliability));
  const floor = Math.max(r.minBandwidthMbps, 1);
  const bandwidth = Math.min(1, o.bandwidthMbps / (floor * 10));
  return { total: 0.6 * price + 0.25 * reliability + 0.15 * bandwidth, price, reliability, bandwidth };
}

interface Slot {
  readonly offer: OfferCandidate;
  readonly nodes: number;
  readonly gpus: number;
  readonly costPerHour: bigint;
  readonly score: Score;
}

function compareSlots(a: Slot, b: Slot): number {
  if (a.costPerHour !== b.costPerHour) return a.costPerHour < b.costPerHour ? -1 : 1;
  if (a.score.total !== b.score.total) return b.score.total - a.score.total;
  return a.offer.offerId < b.offer.offerId ? -1 : a.offer.offerId > b.offer.offerId ? 1 : 0;
}

/** Filter, score and plan every group of `r` over `offers`, all or nothing. */
export function matchGang(offers: readonly OfferCandidate[], r: GangRequest): MatchResult {
  const excluded = new Set(r.excludedProviders);
  const regions = new Set(r.regions);
  const failed = new Map<NoMatchCodeName, { offers: number; providers: Set<string> }>();
  const passing: OfferCandidate[] = [];
  for (const o of offers) {
    const why = firstFailure(o, r, excluded, regions);
    if (why === null) {
      passing.push(o);
      continue;
    }
    const f = failed.get(why) ?? { offers: 0, providers: new Set<string>() };
    f.offers++;
    f.providers.add(o.providerId);
    failed.set(why, f);
  }

  // Group slots: each passing offer can host ⌊free / nodes⌋ groups.
  const slots: Slot[] = [];
  const bestPerProvider = new Map<string, Slot>();
  for (const o of passing) {
    const nodes = nodesPerGroup(r.gpusPerGroup, o.gpusPerNode);
    const gpus = nodes * o.gpusPerNode;
    const slot: Slot = { offer: o, nodes, gpus, costPerHour: o.pricePerGpuHour * BigInt(gpus), score: scoreOffer(o, r) };
    if (r.distinctProviders) {
      const best = bestPerProvider.get(o.providerId);
      if (!best || compareSlots(slot, best) < 0) bestPerProvider.set(o.providerId, slot);
      continue;
    }
    const count = Math.min(Math.floor(o.nodesFree / nodes), r.groups);
    for (let i = 0; i < count; i++) slots.push(slot);
  }
  if (r.distinctProviders) slots.push(...bestPerProvider.values());
  slots.sort(compareSlots);

  if (slots.length >= r.groups) {
    const plan = slots.slice(0, r.groups).map((s, group): GroupMatch => ({
      group,
      offerId: s.offer.offerId,
      providerId: s.offer.providerId,
      nodes: s.nodes,
      gpus: s.gpus,
      pricePerGpuHour: s.offer.pricePerGpuHour,
      costPerHour: s.costPerHour,
      score: s.score,
    }));
    return { matched: true, plan, totalCostPerHour: plan.reduce((sum, g) => sum + g.costPerHour, 0n), offersConsidered: offers.length };
  }
  return { matched: false, explanation: explain(offers, r, failed, passing, slots.length) };
}

function explain(
  offers: readonly OfferCandidate[],
  r: GangRequest,
  failed: ReadonlyMap<NoMatchCodeName, { offers: number; providers: Set<string> }>,
  passing: readonly OfferCandidate[],
  groupsPlaceable: number,
): Explanation {
  const ofClass = offers.filter((o) => o.classId === r.classId);
  const dimensions: DimensionShortfall[] = [];
  for (const [code, f] of failed) {
    dimensions.push({
      code,
      offersExcluded: f.offers,
      providersExcluded: f.providers.size,
      message: messageFor(code, f.offers, ofClass, r),
    });
  }
  if (ofClass.length === 0) {
    dimensions.push({ code: "no_offers_for_class", offersExcluded: 0, providersExcluded: 0, message: `no offer of class ${r.classId}` });
  } else {
    dimensions.push({
      code: "gang_incomplete",
      offersExcluded: passing.length,
      providersExcluded: new Set(passing.map((o) => o.providerId)).size,
      message:
        `${groupsPlaceable} of ${r.groups} groups of ${r.gpusPerGroup} GPUs can be placed` +
        (r.distinctProviders ? " at distinct providers" : "") +
        ` in the ${passing.length} offers that pass every filter`,
    });
  }
  dimensions.sort((a, b) => b.offersExcluded - a.offersExcluded || a.code.localeCompare(b.code));

  // Free GPUs of the class per provider, among offers whose provider could be matched at all.
  const free = new Map<string, FreeCapacity>();
  for (const o of ofClass) {
    if (!o.matchable || o.nodesFree === 0) continue;
    const k = `${o.providerId}\u0000${o.region}`;
    const prev = free.get(k);
    const gpus = o.nodesFree * o.gpusPerNode;
    free.set(k, {
      providerId: o.providerId,
      region: o.region,
      freeGpus: (prev?.freeGpus ?? 0) + gpus,
      largestBlockGpus: Math.max(prev?.largestBlockGpus ?? 0, gpus),
    });
  }
  const freeCapacity = [...free.values()].sort((a, b) => b.freeGpus - a.freeGpus || a.providerId.localeCompare(b.providerId)).slice(0, 20);
  return {
    dimensions,
    freeCapacity,
    eligibleFreeGpus: passing.reduce((s, o) => s + o.nodesFree * o.gpusPerNode, 0),
    neededGpus: r.gpusPerGroup * r.groups,
    groupsPlaceable,
    offersConsidered: offers.length,
  };
}

function messageFor(code: NoMatchCodeName, n: number, ofClass: readonly OfferCandidate[], r: GangRequest): string {
  const offers = `${n} offer${n === 1 ? "" : "s"}`;
  switch (code) {
    case "no_offers_for_class":
      return ofClass.length === 0 ? `no active offer of class ${r.classId}` : `${offers} of other classes`;
    case "provider_ineligible":
      return `${offers} from providers that are jailed, tombstoned, below the minimum stake, paused or excluded`;
    case "stake_below_min":
      return `${offers} from providers with stake below ${r.minStake}`;
    case "reliability_below_min":
      return `${offers} from providers with reliability below ${r.minReliability}`;
    case "region_excluded":
      return `${offers} outside regions ${r.regions.join(", ")}`;
    case "bandwidth_below_min":
      return `${offers} with bandwidth below ${r.minBandwidthMbps} Mbps`;
    case "price_above_max": {
      const cheapest = ofClass.reduce<bigint | null>((m, o) => (m === null || o.pricePerGpuHour < m ? o.pricePerGpuHour : m), null);
      return (
        `${offers} above the maximum ${r.maxPricePerGpuHour} per GPU-hour` +
        (cheapest !== null ? ` (cheapest ask of the class: ${cheapest})` : "")
      );
    }
    case "duration_unsupported":
      return `${offers} whose minimum lease or end does not fit ${Math.round(r.durationMs / HOUR_MS)} h from the start`;
    case "insufficient_capacity":
      return `${offers} with fewer free nodes than one group of ${r.gpusPerGroup} GPUs needs`;
    case "gang_incomplete":
      return `${offers} pass, not enough for every group`;
  }
}
