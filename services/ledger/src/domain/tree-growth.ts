// Extends the stored tree by a batch of leaf hashes: the new frontier, root, and the tile
// hashes the batch completes (every node at a tree level divisible by 8).
import { HASH_SIZE, MerkleFrontier, TILE_HEIGHT, TILE_WIDTH } from "@deai/proofs";

/** New hashes for one tile, starting at position `first` within it. */
export interface TileGrowth {
  readonly level: number;
  readonly index: number;
  readonly first: number;
  readonly hashes: Uint8Array[];
}

/** Splits stored frontier bytes into hashes. */
export function frontierHashes(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += HASH_SIZE) out.push(bytes.slice(i, i + HASH_SIZE));
  return out;
}

/** Appends leaves to the tree of `size` with `frontier`; returns the grown frontier and tile growth. */
export function growTree(
  size: number,
  frontier: Uint8Array,
  leafHashes: readonly Uint8Array[],
): { frontier: MerkleFrontier; tiles: TileGrowth[] } {
  const f = MerkleFrontier.restore(size, frontierHashes(frontier));
  const tiles = new Map<string, TileGrowth>();
  f.appendAll(leafHashes, (node, hash) => {
    if (node.level % TILE_HEIGHT !== 0) return;
    const level = node.level / TILE_HEIGHT;
    const index = Math.floor(node.index / TILE_WIDTH);
    const key = `${level}/${index}`;
    let t = tiles.get(key);
    if (t === undefined) {
      t = { level, index, first: node.index % TILE_WIDTH, hashes: [] };
      tiles.set(key, t);
    }
    t.hashes.push(hash);
  });
  return { frontier: f, tiles: [...tiles.values()] };
}
