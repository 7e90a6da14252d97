// C2SP tlog-tiles read paths: `<prefix>/checkpoint`, `<prefix>/tile/<L>/<N>[.p/<W>]` and
// `<prefix>/tile/entries/<N>[.p/<W>]`, served from the same tables as the API. Everything
// but the checkpoint is immutable once it exists, so caches may keep it forever.
import type { Kysely } from "kysely";

import type { NodeRequest, NodeResponse } from "@deai/kit";
import { encodeEntryBundle, HASH_SIZE, parseTilePath, ProofError, TILE_WIDTH, tileAt, type TilePath } from "@deai/proofs";

import { leavesFrom } from "../store/entries.js";
import type { LedgerDb } from "../store/tables.js";
import { latestCheckpoint, readTiles, type CheckpointRow } from "../store/tree.js";

const IMMUTABLE = "public, max-age=31536000, immutable";
// A partial tile at a given width never changes either, but it is superseded as the tree grows.
const PARTIAL = "public, max-age=60";

function send(res: NodeResponse, status: number, body: string | Uint8Array, headers: Record<string, string>, head: boolean): void {
  const bytes = typeof body === "string" ? Buffer.from(body) : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  res.writeHead(status, { ...headers, "content-length": String(bytes.length) });
  if (head) res.end();
  else res.end(bytes);
}

function notFound(res: NodeResponse, why: string, head: boolean): void {
  send(res, 404, why + "\n", { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" }, head);
}

/**
 * The tlog-tiles handler for the kit's App.http hook; `prefix` is "" or "/something".
 * `/checkpoint` is the published checkpoint (with the witness quorum, when one is required);
 * `/log-checkpoint` is the newest one the log signed, which witnesses follow and cosign.
 */
export function tilesHandler(
  db: Kysely<LedgerDb>,
  prefix: string,
  published: { published(): Promise<{ row: CheckpointRow } | undefined> },
): (req: NodeRequest, res: NodeResponse) => Promise<boolean> {
  return async (req, res) => {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    if (!path.startsWith(prefix + "/")) return false;
    const rest = path.slice(prefix.length + 1);
    if (rest !== "checkpoint" && rest !== "log-checkpoint" && !rest.startsWith("tile/")) return false;
    const head = req.method === "HEAD";
    if (req.method !== "GET" && !head) {
      send(res, 405, "method not allowed\n", { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" }, false);
      return true;
    }
    const cp = await latestCheckpoint(db);
    if (rest === "checkpoint" || rest === "log-checkpoint") {
      const served = rest === "checkpoint" ? (await published.published())?.row : cp;
      if (!served)
        notFound(res, rest === "checkpoint" && cp ? "no checkpoint has reached the witness quorum yet" : "no checkpoint yet", head);
      else send(res, 200, served.note, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-cache" }, head);
      return true;
    }
    let tp: TilePath;
    try {
      tp = parseTilePath(rest);
    } catch (e) {
      if (!(e instanceof ProofError)) throw e;
      notFound(res, e.message, head);
      return true;
    }
    const size = cp?.tree_size ?? 0;
    const level = tp.kind === "entries" ? 0 : tp.level;
    let available: number;
    try {
      available = tileAt(level, tp.index, size).width;
    } catch {
      available = 0;
    }
    if (available < tp.width) {
      notFound(res, `${rest} does not exist in the tree of size ${size}`, head);
      return true;
    }
    const cache = tp.width === TILE_WIDTH ? IMMUTABLE : PARTIAL;
    if (tp.kind === "entries") {
      const rows = await leavesFrom(db, tp.index * TILE_WIDTH, tp.width);
      if (rows.length !== tp.width) throw new Error(`entries of bundle ${tp.index} are missing`);
      send(
        res,
        200,
        encodeEntryBundle(rows.map((r) => r.leaf)),
        { "content-type": "application/octet-stream", "cache-control": cache },
        head,
      );
      return true;
    }
    const stored = (await readTiles(db, [{ level: tp.level, index: tp.index }])).get(`${tp.level}/${tp.index}`);
    if (stored === undefined || stored.length < tp.width * HASH_SIZE)
      throw new Error(`tile ${tp.level}/${tp.index} is behind the tree state`);
    send(res, 200, stored.subarray(0, tp.width * HASH_SIZE), { "content-type": "application/octet-stream", "cache-control": cache }, head);
    return true;
  };
}
