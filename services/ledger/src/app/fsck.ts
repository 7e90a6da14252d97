// fsck: recompute the tree from the stored entries and check everything derived from them:
// leaf hashes, hash tiles, the saved tree state, and every published checkpoint (root and
// log signature).
import type { Kysely } from "kysely";

import {
  bytesEqual,
  HASH_SIZE,
  hexEncode,
  leafHash,
  MerkleFrontier,
  openCheckpoint,
  TILE_HEIGHT,
  TILE_WIDTH,
  type NoteVerifier,
} from "@deai/proofs";

import { leavesFrom } from "../store/entries.js";
import type { LedgerDb } from "../store/tables.js";
import { allCheckpoints, readTiles, readTreeState } from "../store/tree.js";

export interface FsckReport {
  readonly entries: number;
  readonly checkpoints: number;
  readonly treeSize: number;
  readonly problems: string[];
}

/** Checks the whole log; `problems` is empty when it is sound. */
export async function fsck(db: Kysely<LedgerDb>, verifier: NoteVerifier, origin: string): Promise<FsckReport> {
  const problems: string[] = [];
  const checkpoints = await allCheckpoints(db);
  const state = await readTreeState(db);
  const frontier = MerkleFrontier.empty();
  const pendingTiles = new Map<string, Uint8Array[]>();
  let cpi = 0;
  const checkCheckpoints = (): void => {
    while (cpi < checkpoints.length && checkpoints[cpi]!.tree_size === frontier.size) {
      const cp = checkpoints[cpi++]!;
      try {
        const v = openCheckpoint(cp.note, { log: verifier, origin });
        if (v.checkpoint.size !== cp.tree_size) problems.push(`checkpoint ${cp.tree_size}: note says size ${v.checkpoint.size}`);
        if (!bytesEqual(v.checkpoint.rootHash, frontier.root())) {
          problems.push(
            `checkpoint ${cp.tree_size}: root ${hexEncode(v.checkpoint.rootHash)} but the entries give ${hexEncode(frontier.root())}`,
          );
        }
        if (!bytesEqual(cp.root_hash, v.checkpoint.rootHash))
          problems.push(`checkpoint ${cp.tree_size}: stored root differs from its note`);
      } catch (e) {
        problems.push(`checkpoint ${cp.tree_size}: ${(e as Error).message}`);
      }
    }
  };
  checkCheckpoints();
  const chunk = 10_000;
  for (let from = 0; ; from += chunk) {
    const rows = await leavesFrom(db, from, chunk);
    for (const r of rows) {
      if (r.idx !== frontier.size) {
        problems.push(`entry index ${frontier.size} is missing (next stored is ${r.idx})`);
        return { entries: frontier.size, checkpoints: cpi, treeSize: state.size, problems };
      }
      const h = leafHash(r.leaf);
      if (!bytesEqual(h, r.leaf_hash)) problems.push(`entry ${r.idx}: stored leaf hash does not match its leaf`);
      frontier.append(h, (node, hash) => {
        if (node.level % TILE_HEIGHT !== 0 || frontier.size + 1 > state.size) return;
        const key = `${node.level / TILE_HEIGHT}/${Math.floor(node.index / TILE_WIDTH)}`;
        const list = pendingTiles.get(key) ?? [];
        list.push(hash);
        pendingTiles.set(key, list);
      });
      checkCheckpoints();
    }
    await compareTiles(db, pendingTiles, problems);
    if (rows.length < chunk) break;
  }
  if (cpi < checkpoints.length) problems.push(`${checkpoints.length - cpi} checkpoint(s) are beyond the ${frontier.size} stored entries`);
  if (state.size > frontier.size) problems.push(`tree state size ${state.size} exceeds the ${frontier.size} stored entries`);
  const latest = checkpoints[checkpoints.length - 1];
  if (latest && latest.tree_size !== state.size)
    problems.push(`tree state size ${state.size} is not the latest checkpoint's ${latest.tree_size}`);
  return { entries: frontier.size, checkpoints: cpi, treeSize: state.size, problems };
}

// Compares the recomputed tile hashes (only those inside the integrated tree) with the
// stored tiles' prefixes, then forgets the full ones.
async function compareTiles(db: Kysely<LedgerDb>, pending: Map<string, Uint8Array[]>, problems: string[]): Promise<void> {
  const keys = [...pending.keys()].map((k) => {
    const [level, index] = k.split("/").map(Number) as [number, number];
    return { level, index };
  });
  const stored = await readTiles(db, keys);
  for (const { level, index } of keys) {
    const key = `${level}/${index}`;
    const want = Buffer.concat(pending.get(key)!);
    const have = stored.get(key);
    if (have === undefined || have.length < want.length || !bytesEqual(have.subarray(0, want.length), want)) {
      problems.push(`tile ${level}/${index}: stored hashes differ from the recomputed tree`);
    }
    if (want.length === TILE_WIDTH * HASH_SIZE) pending.delete(key);
  }
}
