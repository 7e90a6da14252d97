import type { PlacementReason } from "@deai/proofs";

/** A slot as sampling sees it. */
export interface WatchedSlot {
  readonly datasetId: string;
  readonly slot: number;
  readonly providerId: string;
  /** slot_states.state: available | suspect | unavailable (unavailable = quorum evidence). */
  readonly state: string;
  readonly lastOutcome: string | null;
}

/** Since when a slot has been seen unavailable (repair_watch). */
export interface WatchRow {
  readonly datasetId: string;
  readonly slot: number;
  readonly providerId: string;
  readonly since: Date;
}

export interface TriggerInput {
  readonly slots: readonly WatchedSlot[];
  readonly watch: readonly WatchRow[];
  /** Providers slashing excluded: jailed or tombstoned. */
  readonly excluded: ReadonlyMap<string, "jailed" | "tombstoned">;
  /** Datasets with a repair job in progress (nothing new is started for them). */
  readonly busy: ReadonlySet<string>;
  readonly now: Date;
  readonly graceMs: number;
}

/** A slot to rebuild, and why. */
export interface DueSlot {
  readonly slot: number;
  readonly providerId: string;
  readonly reason: PlacementReason;
}

export interface TriggerDecision {
  /** Slots newly seen unavailable: watch them from now. */
  readonly startWatching: readonly WatchRow[];
  /** Watched slots that are available again (a short outage), or whose provider changed: forget them. */
  readonly stopWatching: readonly { datasetId: string; slot: number }[];
  /** Per dataset, every slot to rebuild now (one job rebuilds them together). */
  readonly due: ReadonlyMap<string, readonly DueSlot[]>;
}

const key = (d: string, s: number): string => `${d}\u0000${s}`;

/**
 * Which slots need repair. A slot whose provider slashing jailed or tombstoned: now. A slot
 * the quorum proved unavailable (`unavailable`, the state only evidence sets) whose last
 * failure was wrong bytes (`invalid`): now — the provider answers, with bad data. Any other
 * unavailable slot: only once it has stayed unavailable for the grace period, so a short
 * outage (the provider back, a passing round clears the state) never causes a repair. A
 * suspect slot (a re-check without its quorum) is never repaired: one sampler's failure is
 * not enough. Pure.
 */
export function decideRepairs(i: TriggerInput): TriggerDecision {
  const watched = new Map(i.watch.map((w) => [key(w.datasetId, w.slot), w]));
  const startWatching: WatchRow[] = [];
  const stopWatching: { datasetId: string; slot: number }[] = [];
  const due = new Map<string, DueSlot[]>();
  const add = (d: string, s: DueSlot): void => void (due.get(d) ?? due.set(d, []).get(d)!).push(s);
  const seen = new Set<string>();
  for (const s of i.slots) {
    const k = key(s.datasetId, s.slot);
    seen.add(k);
    const w = watched.get(k);
    const unavailable = s.state === "unavailable";
    if (w && (!unavailable || w.providerId !== s.providerId)) stopWatching.push({ datasetId: s.datasetId, slot: s.slot });
    const current = w && unavailable && w.providerId === s.providerId ? w : undefined;
    if (unavailable && !current) startWatching.push({ datasetId: s.datasetId, slot: s.slot, providerId: s.providerId, since: i.now });
    if (i.busy.has(s.datasetId)) continue;
    const status = i.excluded.get(s.providerId);
    if (status) add(s.datasetId, { slot: s.slot, providerId: s.providerId, reason: status });
    else if (unavailable && s.lastOutcome === "invalid") add(s.datasetId, { slot: s.slot, providerId: s.providerId, reason: "invalid" });
    else if (current && i.now.getTime() - current.since.getTime() >= i.graceMs)
      add(s.datasetId, { slot: s.slot, providerId: s.providerId, reason: "unavailable" });
  }
  for (const w of i.watch) if (!seen.has(key(w.datasetId, w.slot))) stopWatching.push({ datasetId: w.datasetId, slot: w.slot });
  for (const list of due.values()) list.sort((a, b) => a.slot - b.slot);
  return { startWatching, stopWatching, due };
}

/**
 * The slots a stripe is rebuilt from: the surviving ones (not being repaired), data slots
 * first (systematic: no decode for them), in slot order; the first k are read, the rest only
 * for the stripes where one of those failed its read or leaf check.
 */
export function sourceSlots(n: number, lost: readonly number[]): number[] {
  const gone = new Set(lost);
  return Array.from({ length: n }, (_, s) => s).filter((s) => !gone.has(s));
}

/**
 * Stripes per part group: one multipart part of each new slot object per group, at least
 * `partBytes` (the S3 minimum part is 5 MiB) and few enough that a slot needs at most 10,000
 * parts (S3's limit).
 */
export function stripesPerGroup(partBytes: number, shardSize: number, stripes: number): number {
  return Math.max(1, Math.floor(partBytes / shardSize), Math.ceil(stripes / 10_000));
}

/**
 * The read windows of stripes [from, stripes): `perWindow` stripes each (one range read per
 * source slot), never crossing the end of a part group of `perGroup` stripes, so a group's
 * part is written from whole windows. `from` is a group boundary (where a run resumes).
 */
export function readWindows(from: number, stripes: number, perGroup: number, perWindow: number): { from: number; to: number }[] {
  const w = Math.max(1, Math.min(perGroup, perWindow));
  const out: { from: number; to: number }[] = [];
  for (let g = from; g < stripes; g += perGroup) {
    const end = Math.min(stripes, g + perGroup);
    for (let s = g; s < end; s += w) out.push({ from: s, to: Math.min(end, s + w) });
  }
  return out;
}

/** The object key of a repaired slot: new per placement version, so it never meets an older copy. */
export function repairedKey(datasetId: string, slot: number, version: number): string {
  return `datasets/${datasetId}/slot-${String(slot).padStart(3, "0")}-v${version}`;
}
