// C2SP tlog-tiles read paths: `<prefix>/checkpoint`, `<prefix>/tile/<L>/<N>[.p/<W>]` and
// `<prefix>/tile/entries/<N>[.p/<W>]`, served from the same tables as the API. Everything
// but the checkpoint is immutable once it exists, so caches may keep it forever. Every read
// carries CORS, an ETag (If-None-Match → 304) and, for entry bundles, gzip on request
// (web-reads.ts); the REST reads of the API (GET /v1/ledger/...) get the same CORS.
import type { Kysely } from "kysely";

import type { NodeRequest, NodeResponse } from "@deai/kit";
import { encodeEntryBundle, HASH_SIZE, parseTilePath, ProofError, TILE_WIDTH, tileAt, type TilePath } from "@deai/proofs";

import { leavesFrom } from "../store/entries.js";
import type { LedgerDb } from "../store/tables.js";
import { latestCheckpoint, readTiles, type CheckpointRow } from "../store/tree.js";
import { CORS_READ, sendPreflight, sendRead } from "./web-reads.js";

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
  send(res, 404, why + "\n", { ...CORS_READ, "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" }, head);
}

/** The API's public reads (REST GETs under /v1/ledger/): CORS like the tiles; its writes are POSTs and get none. */
const API_READS = "/v1/ledger/";

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
    if (path.startsWith(API_READS)) {
      if (req.method === "OPTIONS") {
        sendPreflight(res);
        return true;
      }
      // The gateway answers; the header set here goes out with its answer.
      if (req.method === "GET" || req.method === "HEAD") for (const [k, v] of Object.entries(CORS_READ)) res.setHeader(k, v);
      return false;
    }
    if (!path.startsWith(prefix + "/")) return false;
    const rest = path.slice(prefix.length + 1);
    if (rest !== "checkpoint" && rest !== "log-checkpoint" && !rest.startsWith("tile/")) return false;
    const head = req.method === "HEAD";
    if (req.method === "OPTIONS") {
      sendPreflight(res);
      return true;
    }
    if (req.method !== "GET" && !head) {
      send(res, 405, "method not allowed\n", { allow: "GET, HEAD, OPTIONS", "content-type": "text/plain; charset=utf-8" }, false);
      return true;
    }
    const cp = await latestCheckpoint(db);
    if (rest === "checkpoint" || rest === "log-checkpoint") {
      const served = rest === "checkpoint" ? (await published.published())?.row : cp;
      if (!served)
        notFound(res, rest === "checkpoint" && cp ? "no checkpoint has reached the witness quorum yet" : "no checkpoint yet", head);
      // no-cache: a client revalidates each time, and an unchanged checkpoint costs a 304.
      else
        sendRead(
          req,
          res,
          Buffer.from(served.note),
          { "content-type": "text/plain; charset=utf-8", "cache-control": "no-cache" },
          {
            compressible: false,
            head,
          },
        );
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
      sendRead(
        req,
        res,
        encodeEntryBundle(rows.map((r) => r.leaf)),
        { "content-type": "application/octet-stream", "cache-control": cache },
        { compressible: true, head },
      );
      return true;
    }
    const stored = (await readTiles(db, [{ level: tp.level, index: tp.index }])).get(`${tp.level}/${tp.index}`);
    if (stored === undefined || stored.length < tp.width * HASH_SIZE)
      throw new Error(`tile ${tp.level}/${tp.index} is behind the tree state`);
    sendRead(
      req,
      res,
      stored.subarray(0, tp.width * HASH_SIZE),
      { "content-type": "application/octet-stream", "cache-control": cache },
      { compressible: false, head },
    );
    return true;
  };
}
