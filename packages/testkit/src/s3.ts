import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";

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
}

/**
 * s3rver has no AbortMultipartUpload (DELETE ?uploadId=): answer it here, removing the
 * upload's parts where s3rver keeps them, so cleanup code is tested against real deletes.
 */
function addAbortMultipart(s: S3rver, directory: string): void {
  const server = s as unknown as { callback(): (req: IncomingMessage, res: ServerResponse) => void };
  const original = server.callback.bind(s);
  server.callback = () => {
    const handle = original();
    return (req, res) => {
      const url = new URL(req.url ?? "/", "http://localhost");
      const uploadId = url.searchParams.get("uploadId");
      if (req.method !== "DELETE" || !uploadId) return handle(req, res);
      const bucket = decodeURIComponent(url.pathname.split("/")[1] ?? "");
      const dir = join(directory, bucket, "._S3rver_uploads", uploadId);
      if (!/^[A-Za-z0-9._-]+$/.test(uploadId) || !existsSync(dir)) {
        res.writeHead(404, { "content-type": "application/xml" });
        res.end(
          `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist.</Message></Error>`,
        );
        return;
      }
      void rm(dir, { recursive: true, force: true }).then(() => res.writeHead(204).end());
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
    addAbortMultipart(s, directory);
    const addr = await s.run();
    port = addr.port;
    server = s;
  };
  await start();
  const stop = async (): Promise<void> => {
    const s = server;
    server = undefined;
    await s?.close();
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
