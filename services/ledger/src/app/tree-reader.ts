// Proofs from stored hash tiles: each proof reads the few tiles its plan touches (O(log n)
// rows at any tree size), in one query, then folds them with @deai/proofs.
import type { Kysely } from "kysely";

import {
  consistencyPlan,
  HASH_SIZE,
  inclusionPlan,
  resolvePlan,
  tileHashAccessor,
  tilesForPlan,
  type ProofPlan,
  type Tile,
} from "@deai/proofs";

import type { LedgerDb } from "../store/tables.js";
import { readTiles } from "../store/tree.js";

/** Resolves proof plans against the tree of `size` (≤ the integrated size). */
export async function resolvePlans(db: Kysely<LedgerDb>, size: number, plans: readonly ProofPlan[]): Promise<Uint8Array[][]> {
  const tiles = new Map<string, Tile>();
  for (const plan of plans) for (const t of tilesForPlan(plan, size)) tiles.set(`${t.level}/${t.index}`, t);
  const stored = await readTiles(db, [...tiles.values()]);
  const hashAt = tileHashAccessor(size, (tile) => {
    const data = stored.get(`${tile.level}/${tile.index}`);
    if (data === undefined || data.length < tile.width * HASH_SIZE) {
      throw new Error(
        `tile ${tile.level}/${tile.index} is missing or shorter than ${tile.width} hashes: the tile store is behind the tree state`,
      );
    }
    return data.subarray(0, tile.width * HASH_SIZE);
  });
  return plans.map((p) => resolvePlan(p, hashAt));
}

/** Inclusion proofs for several leaves in the tree of `size`, with one tile read. */
export async function inclusionProofs(db: Kysely<LedgerDb>, indexes: readonly number[], size: number): Promise<Uint8Array[][]> {
  return resolvePlans(
    db,
    size,
    indexes.map((i) => inclusionPlan(i, size)),
  );
}

/** Consistency proof from `first` to `second` (0 < first ≤ second ≤ integrated size). */
export async function consistencyProofOf(db: Kysely<LedgerDb>, first: number, second: number): Promise<Uint8Array[]> {
  const [proof] = await resolvePlans(db, second, [consistencyPlan(first, second)]);
  return proof!;
}
