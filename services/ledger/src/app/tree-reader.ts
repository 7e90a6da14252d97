// Proofs from stored hash tiles: each proof reads the few tiles its plan touches (O(log n)
// rows at any tree size), in one query, then folds them.
//
// Two things keep a proof cheap: hashing is native (node:crypto, not the portable pure-JS
// hashes of @deai/proofs), and what never changes is kept. A perfect subtree's hash is fixed
// once the subtree is complete, whatever the tree grows to; and a tile only ever grows at its
// end (the integrator appends to it), so the first w hashes of a tile read once serve any
// later request for width ≤ the bytes held. Both are cached (bounded), so the shared upper part
// of every proof is folded once, and a proof whose tiles are all cached needs no query.
import { hash } from "node:crypto";

import type { Kysely } from "kysely";

import {
  compactRangeHash,
  consistencyPlan,
  HASH_SIZE,
  inclusionPlan,
  tileSpanOf,
  tilesForPlan,
  TILE_WIDTH,
  type NodeId,
  type ProofPlan,
  type Tile,
} from "@deai/proofs";

import type { LedgerDb } from "../store/tables.js";
import { readTiles } from "../store/tree.js";

/** A bounded map that forgets everything when full (cheap, and enough for immutable data). */
class BoundedCache<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly max: number) {}
  get(key: string): V | undefined {
    return this.map.get(key);
  }
  set(key: string, value: V): void {
    if (this.map.size >= this.max) this.map.clear();
    this.map.set(key, value);
  }
}

const scratch = Buffer.alloc(1 + 2 * HASH_SIZE);
scratch[0] = 0x01;

/** RFC 6962 interior node hash, native. */
function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  scratch.set(left, 1);
  scratch.set(right, 1 + HASH_SIZE);
  return hash("sha256", scratch, "buffer");
}

/** The RFC 6962 hash of a perfect subtree given its `count` (a power of 2) hashes, packed. */
function foldPerfect(hashes: Buffer, count: number): Buffer {
  let level: Buffer[] = [];
  for (let i = 0; i < count; i += 2) {
    level.push(nodeHash(hashes.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE), hashes.subarray((i + 1) * HASH_SIZE, (i + 2) * HASH_SIZE)));
  }
  while (level.length > 1) {
    const up: Buffer[] = [];
    for (let i = 0; i < level.length; i += 2) up.push(nodeHash(level[i]!, level[i + 1]!));
    level = up;
  }
  return level[0]!;
}

function tileKey(t: { level: number; index: number }): string {
  return `${t.level}/${t.index}`;
}

/**
 * Proofs over one log's tiles, with that log's caches (a process may serve several logs:
 * tests do, so nothing is cached across instances).
 */
export class TreeReader {
  // Tiles as last read (each a prefix of what it will hold): 4,096 × 8 KiB = 32 MiB at most,
  // the level-0 tiles of a 1M-entry log.
  private readonly tiles = new BoundedCache<Buffer>(4096);
  // Folded perfect subtrees (≥ 2 hashes of their tile): 32 bytes each.
  private readonly subtrees = new BoundedCache<Buffer>(262_144);

  constructor(private readonly db: Kysely<LedgerDb>) {}

  /** Inclusion proofs for several leaves in the tree of `size`, with at most one tile read. */
  async inclusionProofs(indexes: readonly number[], size: number): Promise<Uint8Array[][]> {
    return this.resolvePlans(
      size,
      indexes.map((i) => inclusionPlan(i, size)),
    );
  }

  /** Consistency proof from `first` to `second` (0 < first ≤ second ≤ integrated size). */
  async consistencyProof(first: number, second: number): Promise<Uint8Array[]> {
    const [proof] = await this.resolvePlans(second, [consistencyPlan(first, second)]);
    return proof!;
  }

  /** Resolves proof plans against the tree of `size` (≤ the integrated size). */
  async resolvePlans(size: number, plans: readonly ProofPlan[]): Promise<Uint8Array[][]> {
    // Which tiles the plans need, and which of those the cache does not hold wide enough.
    const wanted = new Map<string, Tile>();
    for (const plan of plans) for (const t of tilesForPlan(plan, size)) wanted.set(tileKey(t), t);
    const data = new Map<string, Buffer>();
    const missing: Tile[] = [];
    for (const [key, t] of wanted) {
      const cached = this.tiles.get(key);
      if (cached && cached.length >= t.width * HASH_SIZE) data.set(key, cached);
      else missing.push(t);
    }
    if (missing.length > 0) {
      const stored = await readTiles(this.db, missing);
      for (const t of missing) {
        const key = tileKey(t);
        const bytes = stored.get(key);
        if (bytes === undefined || bytes.length < t.width * HASH_SIZE) {
          throw new Error(`tile ${key} is missing or shorter than ${t.width} hashes: the tile store is behind the tree state`);
        }
        if (bytes.length <= TILE_WIDTH * HASH_SIZE && bytes.length % HASH_SIZE === 0) this.tiles.set(key, bytes);
        data.set(key, bytes);
      }
    }
    const hashAt = (node: NodeId): Uint8Array => {
      const { tile, first, count } = tileSpanOf(node, size);
      const bytes = data.get(tileKey(tile))!;
      if (count === 1) return bytes.subarray(first * HASH_SIZE, (first + 1) * HASH_SIZE);
      // Complete (tileSpanOf checked it), so its hash is the same in every larger tree.
      const key = `${node.level}/${node.index}`;
      let h = this.subtrees.get(key);
      if (h === undefined) {
        h = foldPerfect(bytes.subarray(first * HASH_SIZE, (first + count) * HASH_SIZE), count);
        this.subtrees.set(key, h);
      }
      return h;
    };
    return plans.map((plan) =>
      plan.map((element) => (element.length === 1 ? Buffer.from(hashAt(element[0]!)) : compactRangeHash(element.map(hashAt)))),
    );
  }
}
