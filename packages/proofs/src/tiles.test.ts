import { consistencyPlan, consistencyProof } from "./consistency.js";
import { inclusionPlan, inclusionProof, verifyInclusion } from "./inclusion.js";
import { rootFromSubtreeHashes, subtreeHashAccessor } from "./rfc6962.js";
import {
  buildTile,
  decodeEntryBundle,
  encodeEntryBundle,
  encodeTileIndex,
  entryBundleFor,
  entryBundlePath,
  MAX_ENTRY_SIZE,
  parseTilePath,
  tileAt,
  tileHashAccessor,
  tilePath,
  tilesForConsistencyProof,
  tilesForInclusionProof,
  tilesForPlan,
  type Tile,
} from "./tiles.js";
import { leafHashes } from "../test/trees.js";
import { codeOf } from "../test/error-code.js";

describe("paths", () => {
  test.each([
    [0, "000"],
    [7, "007"],
    [999, "999"],
    [1000, "x001/000"],
    [1234067, "x001/x234/067"],
    [1_000_000_000, "x001/x000/x000/000"],
  ])("tile index %d → %s", (n, s) => {
    expect(encodeTileIndex(n)).toBe(s);
  });

  test.each([
    [{ level: 0, index: 1234067, width: 256 }, "tile/0/x001/x234/067"],
    [{ level: 1, index: 0, width: 17 }, "tile/1/000.p/17"],
    [{ level: 2, index: 1000, width: 1 }, "tile/2/x001/000.p/1"],
    [{ level: 63, index: 5, width: 255 }, "tile/63/005.p/255"],
  ] as [Tile, string][])("%j ↔ %s", (tile, path) => {
    expect(tilePath(tile)).toBe(path);
    expect(parseTilePath(path)).toEqual({ kind: "hashes", ...tile });
  });

  test("entry bundle paths", () => {
    expect(entryBundlePath(1234067)).toBe("tile/entries/x001/x234/067");
    expect(entryBundlePath(3, 112)).toBe("tile/entries/003.p/112");
    expect(parseTilePath("tile/entries/x001/x234/067")).toEqual({ kind: "entries", index: 1234067, width: 256 });
    expect(parseTilePath("tile/entries/003.p/112")).toEqual({ kind: "entries", index: 3, width: 112 });
  });

  test.each([
    "tile/00/000",
    "tile/64/000",
    "tile/0/0",
    "tile/0/1234",
    "tile/0/x000/001",
    "tile/0/001/002",
    "tile/0/x001",
    "tile/0/000.p/0",
    "tile/0/000.p/256",
    "tile/0/000.p/017",
    "tile/0/000.p/",
    "/tile/0/000",
    "tile/0/000/",
    "tile/data/000",
    "tile/-1/000",
  ])("rejects %s", (path) => {
    expect(codeOf(() => parseTilePath(path))).toBe("malformed-tile");
  });

  test("refuses to format what it would not parse", () => {
    expect(codeOf(() => tilePath({ level: 64, index: 0, width: 256 }))).toBe("malformed-tile");
    expect(codeOf(() => tilePath({ level: 0, index: 0, width: 0 }))).toBe("malformed-tile");
    expect(codeOf(() => entryBundlePath(0, 257))).toBe("malformed-tile");
    expect(codeOf(() => encodeTileIndex(-1))).toBe("invalid-argument");
  });
});

describe("tiles of a tree", () => {
  test("the spec's example: a tree of 70,000", () => {
    expect(tileAt(0, 272, 70_000)).toEqual({ level: 0, index: 272, width: 256 });
    expect(tileAt(0, 273, 70_000)).toEqual({ level: 0, index: 273, width: 112 });
    expect(tileAt(1, 0, 70_000)).toEqual({ level: 1, index: 0, width: 256 });
    expect(tileAt(1, 1, 70_000)).toEqual({ level: 1, index: 1, width: 17 });
    expect(tileAt(2, 0, 70_000)).toEqual({ level: 2, index: 0, width: 1 });
    expect(codeOf(() => tileAt(0, 274, 70_000))).toBe("malformed-tile");
    expect(codeOf(() => tileAt(3, 0, 70_000))).toBe("malformed-tile");
    // "a tree of size 256 will be represented by a full level 0 tile and a partial level 1 tile of width 1"
    expect(tileAt(0, 0, 256).width).toBe(256);
    expect(tileAt(1, 0, 256).width).toBe(1);
    expect(entryBundleFor(69_999, 70_000)).toEqual({ index: 273, width: 112 });
    expect(entryBundleFor(255, 70_000)).toEqual({ index: 0, width: 256 });
  });

  const N = 70_000;
  const leaves = leafHashes(N);
  const at = subtreeHashAccessor(leaves);

  test("proofs read from tiles equal proofs from the full tree, and only the listed tiles are read", () => {
    for (const size of [1, 255, 256, 257, 65_536, 65_537, 69_999, 70_000]) {
      const root = rootFromSubtreeHashes(size, at);
      for (const index of [0, Math.floor(size / 3), size - 1]) {
        const read: string[] = [];
        const fromTiles = tileHashAccessor(size, (tile) => {
          read.push(tilePath(tile));
          return buildTile(tile, at);
        });
        const proof = inclusionProof(index, size, fromTiles);
        expect(proof).toEqual(inclusionProof(index, size, at));
        verifyInclusion(index, size, leaves[index]!, proof, root);
        expect(new Set(read).size).toBe(read.length); // each tile fetched once
        expect(read.sort()).toEqual(tilesForInclusionProof(index, size).map(tilePath).sort());
      }
    }
  });

  test("consistency proofs read from tiles too", () => {
    for (const [size1, size2] of [
      [1, 70_000],
      [300, 65_537],
      [65_536, 70_000],
      [69_999, 70_000],
    ] as const) {
      const read = new Set<string>();
      const fromTiles = tileHashAccessor(size2, (tile) => {
        read.add(tilePath(tile));
        return buildTile(tile, at);
      });
      expect(consistencyProof(size1, size2, fromTiles)).toEqual(consistencyProof(size1, size2, at));
      expect([...read].sort()).toEqual(tilesForConsistencyProof(size1, size2).map(tilePath).sort());
      expect(tilesForPlan(consistencyPlan(size1, size2), size2).length).toBe(read.size);
    }
  });

  test("a proof in a big tree needs a handful of tiles", () => {
    const tiles = tilesForPlan(inclusionPlan(123_456_789, 1_000_000_000), 1_000_000_000);
    expect(tiles.length).toBeLessThanOrEqual(2 * Math.ceil(30 / 8));
  });

  test("a tile of the wrong length is refused", () => {
    const fromTiles = tileHashAccessor(1000, (tile) => buildTile(tile, at).subarray(32));
    expect(codeOf(() => fromTiles(0, 5))).toBe("malformed-tile");
  });
});

describe("entry bundles", () => {
  test("round trip", () => {
    const entries = [new Uint8Array(), new Uint8Array([1, 2, 3]), new Uint8Array(MAX_ENTRY_SIZE).fill(9)];
    const bundle = encodeEntryBundle(entries);
    expect(Array.from(bundle.subarray(0, 7))).toEqual([0, 0, 0, 3, 1, 2, 3]);
    expect(bundle.length).toBe(2 + 5 + 2 + MAX_ENTRY_SIZE);
    expect(decodeEntryBundle(bundle)).toEqual(entries);
    expect(decodeEntryBundle(bundle, 3)).toHaveLength(3);
  });

  test("rejects oversize entries and truncated or miscounted bundles", () => {
    expect(codeOf(() => encodeEntryBundle([new Uint8Array(MAX_ENTRY_SIZE + 1)]))).toBe("malformed-tile");
    const bundle = encodeEntryBundle([new Uint8Array([1, 2, 3]), new Uint8Array([4])]);
    expect(codeOf(() => decodeEntryBundle(bundle.subarray(0, bundle.length - 1)))).toBe("malformed-tile");
    expect(codeOf(() => decodeEntryBundle(bundle.subarray(0, 6)))).toBe("malformed-tile");
    expect(codeOf(() => decodeEntryBundle(bundle, 3))).toBe("malformed-tile");
  });
});
