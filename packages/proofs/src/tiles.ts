// C2SP tlog-tiles (c2sp.org/tlog-tiles): tile and entry-bundle paths, bundle encoding, and
// reading proof hashes out of tiles. Tiles have height 8: a tile at level L holds up to 256
// hashes of tree level 8·L, and a full tile is 8,192 bytes.

import { concatBytes, parseDecimal } from "./encoding.js";
import { ProofError } from "./errors.js";
import { planNodes, type ProofPlan } from "./proof-plan.js";
import { inclusionPlan } from "./inclusion.js";
import { consistencyPlan } from "./consistency.js";
import { HASH_SIZE, nodeHash, type HashAt, type NodeId } from "./rfc6962.js";
import { pow2, requireCount } from "./tree-math.js";

/** Tree levels per tile. */
export const TILE_HEIGHT = 8;
/** Hashes (or entries) in a full tile (or bundle). */
export const TILE_WIDTH = 256;
/** Largest entry an entry bundle can hold (uint16 length prefix). */
export const MAX_ENTRY_SIZE = 0xffff;

/** A hash tile: `level` (tile level, 0..63), `index` within the level, `width` 1..256 (256 = full). */
export interface Tile {
  readonly level: number;
  readonly index: number;
  readonly width: number;
}

/** An entry bundle: `index` of the bundle and its `width` 1..256 (256 = full). */
export interface EntryBundle {
  readonly index: number;
  readonly width: number;
}

/** A parsed tile path. */
export type TilePath = ({ readonly kind: "hashes" } & Tile) | ({ readonly kind: "entries" } & EntryBundle);

function badTile(why: string): ProofError {
  return new ProofError("malformed-tile", why);
}

function requireWidth(width: number): void {
  if (!Number.isInteger(width) || width < 1 || width > TILE_WIDTH) throw badTile(`tile width must be 1..${TILE_WIDTH}, got ${width}`);
}

/** A tile index as 3-digit path elements, all but the last prefixed with "x": 1234067 → "x001/x234/067". */
export function encodeTileIndex(index: number): string {
  requireCount(index, "tile index");
  const groups: string[] = [];
  let n = index;
  do {
    groups.unshift(String(n % 1000).padStart(3, "0"));
    n = Math.floor(n / 1000);
  } while (n > 0);
  return groups.map((g, i) => (i < groups.length - 1 ? "x" + g : g)).join("/");
}

function widthSuffix(width: number): string {
  requireWidth(width);
  return width === TILE_WIDTH ? "" : `.p/${width}`;
}

/** Path of a hash tile, relative to the log prefix: `tile/<L>/<N>[.p/<W>]`. */
export function tilePath(tile: Tile): string {
  if (!Number.isInteger(tile.level) || tile.level < 0 || tile.level > 63) throw badTile(`tile level must be 0..63, got ${tile.level}`);
  return `tile/${tile.level}/${encodeTileIndex(tile.index)}${widthSuffix(tile.width)}`;
}

/** Path of an entry bundle, relative to the log prefix: `tile/entries/<N>[.p/<W>]`. */
export function entryBundlePath(index: number, width: number = TILE_WIDTH): string {
  return `tile/entries/${encodeTileIndex(index)}${widthSuffix(width)}`;
}

/** Parses a canonical tile or entry-bundle path (as produced by `tilePath` / `entryBundlePath`). */
export function parseTilePath(path: string): TilePath {
  const m = /^tile\/(entries|0|[1-9][0-9]?)\/((?:x[0-9]{3}\/)*[0-9]{3})(?:\.p\/([1-9][0-9]{0,2}))?$/.exec(path);
  if (m === null) throw badTile(`not a tile path: ${JSON.stringify(path)}`);
  const [, levelText, indexText, widthText] = m as unknown as [string, string, string, string | undefined];
  const groups = indexText.split("/");
  if (groups.length > 1 && groups[0] === "x000") throw badTile(`tile index has a leading zero group: ${JSON.stringify(path)}`);
  const digits = groups.map((g) => g.replace("x", "")).join("");
  const index = parseDecimal(digits.replace(/^0+(?=[0-9])/, ""));
  if (index === undefined) throw badTile(`tile index out of range: ${JSON.stringify(path)}`);
  const width = widthText === undefined ? TILE_WIDTH : Number(widthText);
  if (widthText !== undefined && width >= TILE_WIDTH) throw badTile(`partial tile width must be 1..255: ${JSON.stringify(path)}`);
  if (levelText === "entries") return { kind: "entries", index, width };
  const level = Number(levelText);
  if (level > 63) throw badTile(`tile level must be 0..63: ${JSON.stringify(path)}`);
  return { kind: "hashes", level, index, width };
}

/** Hashes at tree level 8·`level` in a tree of `treeSize`: how many the tiles of that level hold. */
function hashesAtTileLevel(level: number, treeSize: number): number {
  return Math.floor(treeSize / pow2(TILE_HEIGHT * level));
}

/** The tile `(level, index)` as it exists in a tree of `treeSize`: full, or partial with its width. */
export function tileAt(level: number, index: number, treeSize: number): Tile {
  requireCount(index, "tile index");
  requireCount(treeSize, "tree size");
  const width = Math.min(TILE_WIDTH, hashesAtTileLevel(level, treeSize) - index * TILE_WIDTH);
  if (width < 1) throw badTile(`tile ${level}/${index} does not exist in a tree of size ${treeSize}`);
  return { level, index, width };
}

/** The entry bundle holding entry `entryIndex` in a tree of `treeSize`. */
export function entryBundleFor(entryIndex: number, treeSize: number): EntryBundle {
  requireCount(entryIndex, "entry index");
  if (entryIndex >= treeSize) throw new ProofError("index-out-of-range", `entry ${entryIndex} is not in a tree of size ${treeSize}`);
  const { index, width } = tileAt(0, Math.floor(entryIndex / TILE_WIDTH), treeSize);
  return { index, width };
}

/** Where a node's hash comes from: the tile, and the run of tile hashes whose subtree root it is. */
export function tileSpanOf(node: NodeId, treeSize: number): { tile: Tile; first: number; count: number } {
  const tileLevel = Math.floor(node.level / TILE_HEIGHT);
  const count = pow2(node.level % TILE_HEIGHT);
  const start = node.index * count; // position among the hashes at tree level 8·tileLevel
  if ((node.index + 1) * pow2(node.level) > treeSize) {
    throw new ProofError(
      "index-out-of-range",
      `node (level ${node.level}, index ${node.index}) is not complete in a tree of size ${treeSize}`,
    );
  }
  const tile = tileAt(tileLevel, Math.floor(start / TILE_WIDTH), treeSize);
  return { tile, first: start % TILE_WIDTH, count };
}

function tileKey(t: Tile): string {
  return `${t.level}/${t.index}/${t.width}`;
}

/** The tiles a client must fetch to compute everything a proof plan needs, deduplicated. */
export function tilesForPlan(plan: ProofPlan, treeSize: number): Tile[] {
  const tiles = new Map<string, Tile>();
  for (const node of planNodes(plan)) {
    const { tile } = tileSpanOf(node, treeSize);
    tiles.set(tileKey(tile), tile);
  }
  return [...tiles.values()];
}

/** Tiles needed for the inclusion proof of `index` in a tree of `treeSize`. */
export function tilesForInclusionProof(index: number, treeSize: number): Tile[] {
  return tilesForPlan(inclusionPlan(index, treeSize), treeSize);
}

/** Tiles needed for the consistency proof from `size1` to `size2`. */
export function tilesForConsistencyProof(size1: number, size2: number): Tile[] {
  return tilesForPlan(consistencyPlan(size1, size2), size2);
}

/** The bytes of a tile, built from stored subtree hashes: `width` hashes of tree level 8·level. */
export function buildTile(tile: Tile, hashAt: HashAt): Uint8Array {
  requireWidth(tile.width);
  const level = TILE_HEIGHT * tile.level;
  const hashes: Uint8Array[] = [];
  for (let i = 0; i < tile.width; i++) {
    const h = hashAt(level, tile.index * TILE_WIDTH + i);
    if (h.length !== HASH_SIZE) throw badTile(`hash (level ${level}, index ${tile.index * TILE_WIDTH + i}) is not ${HASH_SIZE} bytes`);
    hashes.push(h);
  }
  return concatBytes(...hashes);
}

/**
 * A HashAt over the tiles of a tree of `treeSize`: each node is read from (and, below a tile
 * level, hashed within) one tile. Tiles are fetched through `readTile` once each and cached.
 */
export function tileHashAccessor(treeSize: number, readTile: (tile: Tile) => Uint8Array): HashAt {
  requireCount(treeSize, "tree size");
  const cache = new Map<string, Uint8Array>();
  return (level, index) => {
    const { tile, first, count } = tileSpanOf({ level, index }, treeSize);
    const key = tileKey(tile);
    let data = cache.get(key);
    if (data === undefined) {
      data = readTile(tile);
      if (data.length !== tile.width * HASH_SIZE) {
        throw badTile(`${tilePath(tile)} is ${data.length} bytes, expected ${tile.width * HASH_SIZE}`);
      }
      cache.set(key, data);
    }
    const hashes: Uint8Array[] = [];
    for (let i = first; i < first + count; i++) hashes.push(data.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE));
    // A run of 2^k hashes is a perfect subtree, so folding pairwise equals the RFC 6962 hash.
    return count === 1 ? hashes[0]!.slice() : foldPerfect(hashes);
  };
}

function foldPerfect(hashes: Uint8Array[]): Uint8Array {
  let level = hashes;
  while (level.length > 1) {
    const up: Uint8Array[] = [];
    for (let i = 0; i < level.length; i += 2) up.push(nodeHash(level[i]!, level[i + 1]!));
    level = up;
  }
  return level[0]!;
}

/** Encodes entries as a bundle: each entry prefixed by its big-endian uint16 length. */
export function encodeEntryBundle(entries: readonly Uint8Array[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const [i, e] of entries.entries()) {
    if (e.length > MAX_ENTRY_SIZE) throw badTile(`entry ${i} is ${e.length} bytes; bundles hold entries up to ${MAX_ENTRY_SIZE}`);
    parts.push(new Uint8Array([e.length >>> 8, e.length & 0xff]), e);
  }
  return concatBytes(...parts);
}

/** Decodes an entry bundle; throws on a truncated bundle or, if given, a count other than `expected`. */
export function decodeEntryBundle(bundle: Uint8Array, expected?: number): Uint8Array[] {
  const entries: Uint8Array[] = [];
  let pos = 0;
  while (pos < bundle.length) {
    if (pos + 2 > bundle.length) throw badTile(`entry bundle truncated in the length of entry ${entries.length}`);
    const length = (bundle[pos]! << 8) | bundle[pos + 1]!;
    pos += 2;
    if (pos + length > bundle.length) throw badTile(`entry bundle truncated in entry ${entries.length}`);
    entries.push(bundle.slice(pos, pos + length));
    pos += length;
  }
  if (expected !== undefined && entries.length !== expected) {
    throw badTile(`entry bundle holds ${entries.length} entries, expected ${expected}`);
  }
  return entries;
}
