/**
 * Plain HTTP routes beside the transcoded API (the kit's App.http hook):
 *
 * - `PUT /v1/uploads/{upload_id}/data/{offset}`: the REST upload stream. The body is streamed
 *   into the upload (constant memory, backpressure through TCP). The request is signed
 *   (RFC 9421) by the upload's owner; its signed `Content-Digest` is checked against the body
 *   as it streams, and the bytes of this request only count when it matches: a mismatch, a
 *   broken body or a crash rolls progress back to `offset` (rounded down to a part group).
 *   Responds with the UploadChunksResponse JSON.
 * - `GET /v1/datasets/{dataset_id}/content`: verified bytes, with single `Range` requests
 *   (206). A full read checks contentDigest at the end; on a mismatch the connection is cut
 *   so the client never sees a clean end.
 * - `GET /v1/datasets/{dataset_id}/leaves`: the leaf table (32-byte leaves, (stripe, slot) order).
 * - `GET /v1/datasets/{dataset_id}/reader-manifest`: the trainer's manifest JSON.
 */
import { create, toJson } from "@bufbuild/protobuf";

import { UploadChunksResponseSchema } from "@deai/contracts/deai/ingestion/v1/ingestion_pb";
import { sendError, toConnectError, verifyRequest, type Logger, type NodeRequest, type NodeResponse, type NonceStore } from "@deai/kit";
import { InvalidArgumentError } from "@deai/kit/errors";

import type { Datasets } from "../app/datasets.js";
import type { Uploads } from "../app/uploads.js";

const UPLOAD = /^\/v1\/uploads\/([^/]+)\/data\/(\d{1,16})$/;
const DATASET = /^\/v1\/datasets\/([^/]+)\/(content|leaves|reader-manifest)$/;

/** Parses a single `bytes=` range against `size`; undefined = whole; throws on unsatisfiable. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === ""))
    throw new InvalidArgumentError(`unsupported Range ${JSON.stringify(header)}: use one bytes=first-last range`);
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0) throw new RangeNotSatisfiable(size);
    return { start: Math.max(0, size - suffix), end: size };
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size : Math.min(size, Number(m[2]) + 1);
  if (start >= size || end <= start) throw new RangeNotSatisfiable(size);
  return { start, end };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new InvalidArgumentError(`malformed percent-encoding in ${JSON.stringify(s)}`);
  }
}

export class RangeNotSatisfiable extends Error {
  constructor(readonly size: number) {
    super(`range not satisfiable: the dataset has ${size} bytes`);
  }
}

export function ingestionRoutes(opts: {
  uploads: Uploads;
  datasets: Datasets;
  nonces: NonceStore;
  maxAgeS: number;
  logger: Logger;
}): (req: NodeRequest, res: NodeResponse) => Promise<boolean> {
  const json = (res: NodeResponse, status: number, body: unknown): void => {
    const bytes = Buffer.from(JSON.stringify(body));
    res.writeHead(status, { "content-type": "application/json", "content-length": String(bytes.length) });
    res.end(bytes);
  };
  return async (req, res) => {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    const up = UPLOAD.exec(path);
    const ds = up ? undefined : DATASET.exec(path);
    if (!up && !ds) return false;
    try {
      if (up) {
        if (req.method !== "PUT") {
          res.writeHead(405, { allow: "PUT" }).end();
          return true;
        }
        const header = (n: string): string | undefined => {
          const v = req.headers[n];
          return Array.isArray(v) ? v.join(", ") : v;
        };
        const actor = await verifyRequest(
          { method: "PUT", path, body: "deferred", header },
          { nonces: opts.nonces, maxAgeS: opts.maxAgeS },
        );
        const bodyDigest = header("content-digest")!.trim();
        if (!/^sha-256=:[A-Za-z0-9+/]{43}=:$/.test(bodyDigest))
          throw new InvalidArgumentError("Content-Digest must be one sha-256 value (RFC 9530)");
        const r = await opts.uploads.receive(actor, safeDecode(up[1]!), BigInt(up[2]!), req as AsyncIterable<Uint8Array>, {
          bodyDigest,
        });
        json(res, 200, toJson(UploadChunksResponseSchema, create(UploadChunksResponseSchema, r)));
        return true;
      }
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.writeHead(405, { allow: "GET, HEAD" }).end();
        return true;
      }
      const datasetId = safeDecode(ds![1]!);
      if (ds![2] === "leaves") {
        const leaves = await opts.datasets.leafTable(datasetId);
        res.writeHead(200, {
          "content-type": "application/octet-stream",
          "content-length": String(leaves.length),
          "cache-control": "public, max-age=31536000, immutable",
        });
        if (req.method === "HEAD") res.end();
        else res.end(leaves);
        return true;
      }
      if (ds![2] === "reader-manifest") {
        json(res, 200, await opts.datasets.readerManifest(datasetId));
        return true;
      }
      const { manifest } = await opts.datasets.layout(datasetId);
      const size = Number(manifest.size);
      let range: { start: number; end: number } | undefined;
      try {
        range = parseRange(req.headers.range, size);
      } catch (e) {
        if (!(e instanceof RangeNotSatisfiable)) throw e;
        res.writeHead(416, { "content-range": `bytes */${size}`, "content-type": "text/plain" }).end(`${e.message}\n`);
        return true;
      }
      const start = range?.start ?? 0;
      const end = range?.end ?? size;
      const headers: Record<string, string> = {
        "content-type": manifest.mediaType || "application/octet-stream",
        "content-length": String(end - start),
        "accept-ranges": "bytes",
        etag: `"sha256:${manifest.contentDigest?.hex}"`,
        "x-deai-content-digest": `sha256:${manifest.contentDigest?.hex}`,
        "x-deai-shard-root": Buffer.from(manifest.shardRoot).toString("hex"),
      };
      if (range) headers["content-range"] = `bytes ${start}-${end - 1}/${size}`;
      if (req.method === "HEAD") {
        res.writeHead(range ? 206 : 200, headers).end();
        return true;
      }
      const r = await opts.datasets.read(datasetId, BigInt(start), BigInt(end - start));
      // The first window is read and verified before the status goes out: a dataset that
      // cannot be read answers an error status, not a 200 with a cut body.
      const first = await r.chunks.next();
      res.writeHead(range ? 206 : 200, headers);
      const rest = async function* (): AsyncGenerator<Buffer> {
        if (!first.done) yield first.value;
        yield* r.chunks;
      };
      try {
        for await (const piece of rest()) {
          if (!(res as { write(b: Buffer): boolean }).write(piece)) {
            // A client that goes away never drains: stop reading.
            const gone = await new Promise<boolean>((ok) => {
              const drained = (): void => {
                res.off("close", closed);
                ok(false);
              };
              const closed = (): void => {
                res.off("drain", drained);
                ok(true);
              };
              res.once("drain", drained);
              res.once("close", closed);
            });
            if (gone) {
              await r.chunks.return(undefined);
              return true;
            }
          }
        }
        res.end();
      } catch (e) {
        // Unreadable data (providers stalled or down past the read deadline) is the providers'
        // fault, not ours: a warning, and the body ends at once as an error (cut connection).
        opts.logger.warn({ err: e, datasetId }, "download failed mid-stream; cutting the connection");
        (res as { destroy?: (e?: Error) => void }).destroy?.(e as Error);
      }
      return true;
    } catch (e) {
      const ce = toConnectError(e);
      // An upload body not read to its end cannot leave the connection reusable: say so, so a
      // pooling client does not send its next request on a socket about to close.
      if (!res.headersSent && !(req as { complete?: boolean }).complete) res.setHeader("connection", "close");
      if (!res.headersSent) sendError(res, ce);
      else (res as { destroy?: () => void }).destroy?.();
      // An upload body may still be arriving: drain it so the connection can be reused or closed.
      req.resume();
      return true;
    }
  };
}
