import { createHash, randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, open, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";

import S3rver from "s3rver";

export interface TestS3 {
  /** http://127.0.0.1:<port> */
  readonly endpoint: string;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly region: string;
  /** Stops answering (simulates a provider going down); `start()` brings it back on the same port with its data. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops and deletes its data. */
  destroy(): Promise<void>;
  /** Ids of the multipart uploads in progress in `bucket` (initiated, neither completed nor aborted), of keys under `prefix`. */
  multipartUploads(bucket: string, prefix?: string): Promise<string[]>;
}

const NO_SUCH_UPLOAD =
  `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist. ` +
  `The upload ID may be invalid, or the upload may have been aborted or completed.</Message></Error>`;

function noSuchUpload(req: IncomingMessage, res: ServerResponse): void {
  // Read the rest of the request (a part body), then answer as S3 does.
  const answer = (): void => {
    if (!res.headersSent) res.writeHead(404, { "content-type": "application/xml", "x-amz-error-code": "NoSuchUpload" });
    res.end(NO_SUCH_UPLOAD);
  };
  if (req.complete) answer();
  else
    req
      .on("end", answer)
      .on("error", () => res.destroy())
      .resume();
}

/** A part being written: abort() makes it drop its bytes and its file; `released` resolves when the file is gone. */
interface PartWrite {
  abort(): void;
  readonly released: Promise<void>;
}

/**
 * Multipart uploads as S3 runs them, in front of s3rver: s3rver has no AbortMultipartUpload
 * (DELETE ?uploadId=), and its part writes race an abort (a part file created while the upload
 * directory is removed: an uncaught ENOTEMPTY that takes the process down, and a late part
 * silently recreating an aborted upload). Here:
 * - a part is written to a temporary file and renamed into place only when whole, and only
 *   while its upload exists;
 * - an abort wins: parts in flight stop writing and drop their files before the upload's
 *   directory goes; their requests (and any later part, completion or abort) get 404
 *   NoSuchUpload; no error of these escapes as an exception.
 */
function addMultipartGuards(s: S3rver, directory: string): void {
  const server = s as unknown as { callback(): (req: IncomingMessage, res: ServerResponse) => void };
  const original = server.callback.bind(s);
  const aborting = new Set<string>();
  const writing = new Map<string, Set<PartWrite>>();
  const uploadDir = (bucket: string, id: string): string => join(directory, bucket, "._S3rver_uploads", id);
  const live = (bucket: string, id: string): boolean =>
    /^[A-Za-z0-9._-]+$/.test(id) && !aborting.has(id) && existsSync(join(uploadDir(bucket, id), "key"));

  const putPart = (req: IncomingMessage, res: ServerResponse, bucket: string, id: string, partNumber: string): void => {
    const dir = uploadDir(bucket, id);
    const tmp = join(dir, `.${partNumber}.${randomUUID()}.part`);
    const md5 = createHash("md5");
    let aborted = false;
    // File operations run one after another; an abort queues the file's removal behind them.
    const opened = open(tmp, "wx");
    let file: Promise<void> = opened.then(() => undefined);
    const drop = (): Promise<void> =>
      opened
        .then(
          (f) => f.close().catch(() => undefined),
          () => undefined,
        )
        .then(() => rm(tmp, { force: true }).catch(() => undefined));
    let released: Promise<void> | undefined;
    const write: PartWrite = {
      abort: () => {
        aborted = true;
        released ??= file.catch(() => undefined).then(drop);
      },
      get released() {
        return released ?? Promise.resolve();
      },
    };
    const set = writing.get(id) ?? new Set<PartWrite>();
    writing.set(id, set.add(write));
    const done = (): void => {
      set.delete(write);
      if (set.size === 0) writing.delete(id);
    };
    void (async () => {
      try {
        await pipeline(
          req,
          new Writable({
            write(chunk: Buffer, _enc, cb) {
              // An aborted part reads its body to the end and keeps none of it.
              if (aborted) return cb();
              md5.update(chunk);
              file = file.then(async () => void (await (await opened).write(chunk)));
              file.then(() => cb(), cb);
            },
          }),
        );
        await file;
        if (aborted) throw new Error("aborted");
        await (await opened).close();
        const etag = md5.digest("hex");
        await writeFile(join(dir, `${partNumber}.md5`), etag);
        await rename(tmp, join(dir, partNumber));
        done();
        res.writeHead(200, { etag: `"${etag}"`, "content-length": 0 }).end();
      } catch {
        done();
        await (released ?? drop());
        if (req.destroyed && !req.complete) res.destroy();
        else noSuchUpload(req, res);
      }
    })();
  };

  const abortUpload = (req: IncomingMessage, res: ServerResponse, bucket: string, id: string): void => {
    if (!live(bucket, id)) return noSuchUpload(req, res);
    aborting.add(id);
    const inFlight = [...(writing.get(id) ?? [])];
    inFlight.forEach((w) => w.abort());
    void Promise.all(inFlight.map((w) => w.released))
      .then(() => rm(uploadDir(bucket, id), { recursive: true, force: true, maxRetries: 5 }))
      .then(
        () => res.writeHead(204).end(),
        (e: unknown) => {
          res.writeHead(500, { "content-type": "application/xml" });
          res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>${String(e)}</Message></Error>`);
        },
      )
      .finally(() => aborting.delete(id));
  };

  server.callback = () => {
    const handle = original();
    return (req, res) => {
      const url = new URL(req.url ?? "/", "http://localhost");
      const uploadId = url.searchParams.get("uploadId");
      if (!uploadId) return handle(req, res);
      const bucket = decodeURIComponent(url.pathname.split("/")[1] ?? "");
      if (req.method === "DELETE") return abortUpload(req, res, bucket, uploadId);
      if (!live(bucket, uploadId)) return noSuchUpload(req, res);
      const partNumber = url.searchParams.get("partNumber");
      if (req.method === "PUT" && partNumber && /^[1-9][0-9]{0,4}$/.test(partNumber) && !req.headers["x-amz-copy-source"]) {
        return putPart(req, res, bucket, uploadId, partNumber);
      }
      return handle(req, res);
    };
  };
}

/**
 * An S3-compatible server in this process (s3rver), on a free port, with its own
 * temporary directory. Run node with --openssl-legacy-provider: s3rver's list
 * continuation tokens use DES.
 */
export async function startS3(opts: { buckets?: string[] } = {}): Promise<TestS3> {
  const directory = await mkdtemp(join(tmpdir(), "deai-s3-"));
  let port = 0;
  let server: S3rver | undefined;
  const start = async (): Promise<void> => {
    const s = new S3rver({
      address: "127.0.0.1",
      port,
      silent: true,
      directory,
      resetOnClose: false,
      configureBuckets: (opts.buckets ?? []).map((name) => ({ name })),
    });
    addMultipartGuards(s, directory);
    const addr = await s.run();
    port = addr.port;
    server = s;
  };
  await start();
  const stop = async (): Promise<void> => {
    const s = server;
    server = undefined;
    if (!s) return;
    const closed = s.close();
    // A provider that goes down drops its connections too: close() alone waits for every
    // keep-alive connection to go idle, and a client reading every second keeps it open (and served).
    (s as unknown as { httpServer?: { closeAllConnections?: () => void } }).httpServer?.closeAllConnections?.();
    await closed;
  };
  return {
    get endpoint() {
      return `http://127.0.0.1:${port}`;
    },
    accessKey: "S3RVER",
    secretKey: "S3RVER",
    region: "us-east-1",
    stop,
    start,
    multipartUploads: async (bucket, prefix = "") => {
      const dir = join(directory, bucket, "._S3rver_uploads");
      if (!existsSync(dir)) return [];
      const ids: string[] = [];
      for (const id of await readdir(dir)) {
        const key = await readFile(join(dir, id, "key"), "utf8").catch(() => "");
        if (key.startsWith(prefix)) ids.push(id);
      }
      return ids.sort();
    },
    destroy: async () => {
      await stop();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/**
 * INGESTION_PROVIDERS for a set of S3 servers used as storage providers: ids p0, p1, ... and
 * one bucket each.
 */
export function storageProvidersJson(servers: readonly TestS3[], bucket = "shards"): string {
  return JSON.stringify(
    servers.map((p, i) => ({
      id: `p${i}`,
      endpoint: p.endpoint,
      bucket,
      accessKey: p.accessKey,
      secretKey: p.secretKey,
      region: p.region,
    })),
  );
}
