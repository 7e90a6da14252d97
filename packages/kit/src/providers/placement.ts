/**
 * Placement scoring, pure: which n of the candidate storage providers hold the shard slots of
 * one dataset. Shared by ingestion (new uploads), the DA sampler and repair (re-placement), so
 * every one of them ranks providers the same way. No I/O: liveness is an input.
 */

/** What placement knows about a provider. */
export interface PlacementCandidate {
  readonly id: string;
  /** Bonded stake in base units. */
  readonly stake: number;
  /** Reputation mean, 0..1. */
  readonly reliability: number;
  /** Whether its last probe answered. */
  readonly live: boolean;
}

/** Why a placement could not be made: `unavailable` (too few live) or `precondition` (too few known, unknown required). */
export type PlacementShortfall =
  | { readonly kind: "too_few_known"; readonly message: string }
  | { readonly kind: "too_few_live"; readonly message: string }
  | { readonly kind: "unknown_required"; readonly message: string }
  | { readonly kind: "required_down"; readonly message: string };

/** 32-bit FNV-1a: a stable per-(dataset, provider) tie-breaker with no crypto dependency. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** The score of a candidate for dataset `seed`: stake × reliability, ±10 % by a per-dataset hash (so equal providers share load). */
export function placementScore(c: PlacementCandidate, seed: string): number {
  return c.stake * c.reliability * (0.9 + (0.2 * fnv1a(`${seed}/${c.id}`)) / 2 ** 32);
}

/**
 * Chooses n distinct live providers, slot order, for dataset `seed`: the required ones first,
 * then the best scores. Returns the ids, or the shortfall (never a partial placement).
 */
export function choosePlacement(
  candidates: readonly PlacementCandidate[],
  n: number,
  opts: { readonly seed: string; readonly require?: readonly string[] },
): { readonly ids: string[] } | { readonly shortfall: PlacementShortfall } {
  const known = new Set(candidates.map((c) => c.id));
  for (const id of opts.require ?? []) {
    if (!known.has(id)) return { shortfall: { kind: "unknown_required", message: `unknown storage provider ${id}` } };
  }
  if (n > candidates.length) {
    return {
      shortfall: {
        kind: "too_few_known",
        message: `k + m = ${n} shard slots need ${n} distinct storage providers; ${candidates.length} are configured`,
      },
    };
  }
  const live = candidates.filter((c) => c.live);
  if (live.length < n) {
    const down = candidates.filter((c) => !c.live).map((c) => c.id);
    return {
      shortfall: {
        kind: "too_few_live",
        message: `k + m = ${n} shard slots need ${n} distinct storage providers; only ${live.length} of ${candidates.length} are reachable (down: ${down.join(", ")})`,
      },
    };
  }
  const required = new Set(opts.require ?? []);
  for (const id of required) {
    if (!live.some((c) => c.id === id)) return { shortfall: { kind: "required_down", message: `storage provider ${id} is unreachable` } };
  }
  const score = (c: PlacementCandidate): number => (required.has(c.id) ? Infinity : placementScore(c, opts.seed));
  const ids = [...live]
    .sort((a, b) => score(b) - score(a) || a.id.localeCompare(b.id))
    .slice(0, n)
    .map((c) => c.id);
  return { ids };
}
