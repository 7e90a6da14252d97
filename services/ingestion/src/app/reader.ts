/**
 * Verified reads (ARCHITECTURE.md: "Reads fetch the fastest k valid shards per stripe, check
 * each leaf, decode, and check contentDigest at the end").
 *
 * Stripes are read in windows of W stripes: one range request per slot covers the window.
 * Data slots are asked first (no decode needed), slots that failed recently last. A window is
 * done when every stripe in it has k shards whose leaf matches the leaf table. A slot that
 * errors, times out (hedge) or returns a shard that fails its leaf check brings in the next
 * slot; a failed leaf check is reported as evidence (`onInvalid`). The next window is fetched
 * while the current one is decoded and consumed.
 */
import { createHash } from "node:crypto";

import { UnavailableError } from "@deai/kit/errors";

import type { StripeCodec } from "../coding/reed-solomon.js";
import { ingestionMetrics } from "./metrics.js";
import { shardLeafHash, systemClock, type Clock, type ProviderRegistry, type StorageProvider } from "@deai/kit";

export interface SlotLocation {
  readonly slot: number;
  readonly providerId: string;
  /** Undefined when the provider is not known to this service (it cannot be read). */
  readonly provider: StorageProvider | undefined;
  readonly key: string;
}

/** Where each slot of a dataset is read from (providers this service does not know cannot be read). */
export function slotLocations(
  placements: readonly { slot: number; providerId: string; key: string }[],
  registry: ProviderRegistry,
): SlotLocation[] {
  return placements.map((p) => ({
    slot: p.slot,
    providerId: p.providerId,
    provider: registry.has(p.providerId) ? registry.get(p.providerId) : undefined,
    key: p.key,
  }));
}

/** A leaf table (32-byte leaves, concatenated) as a list of leaves. */
export function leafList(leaves: Uint8Array): Uint8Array[] {
  return Array.from({ length: leaves.length / 32 }, (_, i) => leaves.subarray(i * 32, i * 32 + 32));
}

export interface ReadLayout {
  readonly datasetId: string;
  readonly k: number;
  readonly m: number;
  readonly shardSize: number;
  readonly size: number;
  readonly stripes: number;
  readonly slots: readonly SlotLocation[];
  /** Leaf table, (stripe, slot) order, 32 bytes each. */
  readonly leaves: Uint8Array;
}

export interface InvalidShard {
  readonly stripe: number;
  readonly slot: number;
  readonly providerId: string;
  readonly expected: Uint8Array;
  readonly observed: Uint8Array;
}

export interface ReadOptions {
  readonly codec: StripeCodec;
  readonly hedgeMs: number;
  readonly windowStripes: number;
  /** Called once per shard that failed its leaf check. */
  readonly onInvalid: (shard: InvalidShard) => void;
  /** Counters for tests and benchmarks. */
  readonly stats?: ReadStats;
  /** Time for the hedge delay and slow-read marking. @default systemClock */
  readonly clock?: Clock;
}

export interface ReadStats {
  rangeRequests: number;
  reconstructedStripes: number;
  invalidShards: number;
}

interface Window {
  readonly first: number;
  readonly count: number;
  /** Per stripe in the window: the n shards, undefined where not (yet) valid. */
  readonly shards: (Buffer | undefined)[][];
}

/** Fetches one window of stripes with at least k valid shards each. */
async function fetchWindow(layout: ReadLayout, first: number, count: number, opts: ReadOptions): Promise<Window> {
  const { k, shardSize: S } = layout;
  const n = layout.k + layout.m;
  const shards: (Buffer | undefined)[][] = Array.from({ length: count }, () => new Array<Buffer | undefined>(n).fill(undefined));
  const readable = layout.slots.filter((s) => s.provider !== undefined);
  const order = [
    ...readable.filter((s) => s.slot < k && !s.provider!.suspectedDown),
    ...readable.filter((s) => s.slot >= k && !s.provider!.suspectedDown),
    ...readable.filter((s) => s.provider!.suspectedDown),
  ];
  const abort = new AbortController();
  const failures: string[] = [];
  let next = 0;
  let inFlight = 0;
  /** Reads in flight, with when they started. */
  const started = new Map<SlotLocation, number>();
  const clock = opts.clock ?? systemClock;
  const enough = (): boolean => shards.every((row) => row.reduce((c, s) => c + (s ? 1 : 0), 0) >= k);
  return new Promise<Window>((resolve, reject) => {
    let settled = false;
    let hedge: AbortController | undefined;
    const finish = (e?: Error): void => {
      if (settled) return;
      settled = true;
      hedge?.abort();
      // A read still out after the hedge delay lost to the others: order its provider last for a
      // while, so the next windows do not wait on it again.
      const now = clock.nowMs();
      for (const [loc, at] of started) if (now - at >= opts.hedgeMs) loc.provider!.markDown();
      abort.abort();
      if (e) reject(e);
      else resolve({ first, count, shards });
    };
    const armHedge = (): void => {
      hedge?.abort();
      const timer = (hedge = new AbortController());
      clock.sleep(opts.hedgeMs, timer.signal).then(
        () => {
          if (!settled && next < order.length) {
            launch();
            armHedge();
          }
        },
        () => undefined,
      );
    };
    const check = (): void => {
      if (settled) return;
      if (enough()) return finish();
      // Every slot still missing somewhere needs another source; bring in as many as are short.
      const short = Math.max(...shards.map((row) => k - row.reduce((c, s) => c + (s ? 1 : 0), 0)));
      while (inFlight < short && next < order.length) launch();
      if (inFlight === 0 && next >= order.length) {
        const worst = shards.findIndex((row) => row.filter(Boolean).length < k);
        const have = shards[worst]!.filter(Boolean).length;
        finish(
          new UnavailableError(
            `dataset ${layout.datasetId} stripe ${first + worst}: only ${have} of the ${k} shards needed could be read and verified (${failures.join("; ") || "no readable slots"})`,
          ),
        );
      }
    };
    const launch = (): void => {
      const loc = order[next++]!;
      inFlight++;
      started.set(loc, clock.nowMs());
      if (opts.stats) opts.stats.rangeRequests++;
      void (async () => {
        try {
          // The read has its own deadline: a stalled slot fails within it, so a window with more
          // than m stalled slots fails promptly instead of waiting for ever.
          const bytes = await loc.provider!.readRange(loc.key, first * S, count * S, abort.signal);
          for (let i = 0; i < count; i++) {
            const shard = bytes.subarray(i * S, (i + 1) * S);
            const stripe = first + i;
            const at = (stripe * n + loc.slot) * 32;
            const expected = layout.leaves.subarray(at, at + 32);
            const observed = shardLeafHash(shard);
            if (observed.equals(expected)) shards[i]![loc.slot] = shard;
            else {
              if (opts.stats) opts.stats.invalidShards++;
              failures.push(`slot ${loc.slot} (${loc.providerId}) stripe ${stripe}: leaf mismatch`);
              opts.onInvalid({ stripe, slot: loc.slot, providerId: loc.providerId, expected: Buffer.from(expected), observed });
            }
          }
        } catch (e) {
          if (!settled) failures.push(`slot ${loc.slot} (${loc.providerId}): ${(e as Error).message}`);
        } finally {
          inFlight--;
          started.delete(loc);
          check();
        }
      })();
    };
    for (let i = 0; i < Math.min(k, order.length); i++) launch();
    armHedge();
    check();
  });
}

/** The stripe's k data shards, decoding when some are missing. */
async function stripeData(window: Window, i: number, layout: ReadLayout, opts: ReadOptions): Promise<Buffer[]> {
  const row = window.shards[i]!;
  const k = layout.k;
  if (row.slice(0, k).every(Boolean)) return row.slice(0, k) as Buffer[];
  // Exactly the valid shards go to the decoder; anything beyond k is not needed.
  if (opts.stats) opts.stats.reconstructedStripes++;
  ingestionMetrics().reconstructions.add(1);
  const all = await opts.codec.reconstruct(row);
  return all.slice(0, k);
}

/**
 * Streams bytes [offset, offset + length) of a dataset, every byte from a shard whose leaf
 * checked. A read of the whole dataset also checks contentDigest (`expectDigestHex`) and
 * throws at the end when it differs.
 */
export async function* readVerified(
  layout: ReadLayout,
  offset: number,
  length: number,
  opts: ReadOptions & { expectDigestHex?: string },
): AsyncGenerator<Buffer> {
  const end = Math.min(layout.size, offset + length);
  if (offset >= end) return;
  const { k, shardSize: S } = layout;
  const stripeBytes = k * S;
  const firstStripe = Math.floor(offset / stripeBytes);
  const lastStripe = Math.floor((end - 1) / stripeBytes);
  const whole = offset === 0 && end === layout.size;
  const hash = whole && opts.expectDigestHex ? createHash("sha256") : undefined;
  const W = Math.max(1, opts.windowStripes);
  let pending: Promise<Window> | undefined = fetchWindow(layout, firstStripe, Math.min(W, lastStripe - firstStripe + 1), opts);
  // Keep the lookahead's rejection from going unhandled while the consumer is slow.
  pending.catch(() => undefined);
  while (pending) {
    const window: Window = await pending;
    const nextFirst = window.first + window.count;
    pending = nextFirst <= lastStripe ? fetchWindow(layout, nextFirst, Math.min(W, lastStripe - nextFirst + 1), opts) : undefined;
    pending?.catch(() => undefined);
    for (let i = 0; i < window.count; i++) {
      const stripe = window.first + i;
      const data = await stripeData(window, i, layout, opts);
      const stripeStart = stripe * stripeBytes;
      for (let j = 0; j < k; j++) {
        const shardStart = stripeStart + j * S;
        const from = Math.max(offset, shardStart);
        const to = Math.min(end, shardStart + S);
        if (from >= to) continue;
        const piece = data[j]!.subarray(from - shardStart, to - shardStart);
        hash?.update(piece);
        yield piece;
      }
    }
  }
  if (hash) {
    const got = hash.digest("hex");
    if (got !== opts.expectDigestHex) {
      throw new UnavailableError(
        `dataset ${layout.datasetId}: verified shards decode to sha256 ${got}, not the manifest's contentDigest ${opts.expectDigestHex}`,
      );
    }
  }
}
