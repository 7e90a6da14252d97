/** S3-compatible object storage through the minio client (MinIO in clusters, an in-process server in tests). */
import http from "node:http";
import https from "node:https";
import type { Readable } from "node:stream";

import { Client } from "minio";

import { tracedS3Transport } from "./s3-telemetry.js";

export interface BlobStoreOptions {
  endpoint: string;
  bucket: string;
  accessKey: string;
  secretKey: string;
  region: string;
}

/**
 * A minio client for an S3-compatible endpoint URL (path-style addressing, TLS from the
 * scheme), whose every request is an S3 client span (s3-telemetry.ts).
 */
export function s3Client(opts: Omit<BlobStoreOptions, "bucket">, extra: Partial<ConstructorParameters<typeof Client>[0]> = {}): Client {
  const u = new URL(opts.endpoint);
  const useSSL = u.protocol === "https:";
  const { transport, ...rest } = extra;
  return new Client({
    endPoint: u.hostname,
    port: u.port ? Number(u.port) : useSSL ? 443 : 80,
    useSSL,
    accessKey: opts.accessKey,
    secretKey: opts.secretKey,
    region: opts.region,
    pathStyle: true,
    ...rest,
    transport: tracedS3Transport(transport ?? (useSSL ? https : http)),
  });
}

export class BlobStore {
  readonly client: Client;
  readonly bucket: string;

  constructor(opts: BlobStoreOptions) {
    this.client = s3Client(opts);
    this.bucket = opts.bucket;
  }

  /** Creates the bucket when it does not exist. */
  async ensureBucket(): Promise<void> {
    if (!(await this.client.bucketExists(this.bucket))) {
      await this.client.makeBucket(this.bucket).catch(async (e: unknown) => {
        if (!(await this.client.bucketExists(this.bucket))) throw e;
      });
    }
  }

  /** Writes an object (multipart for streams and large buffers, handled by the client). */
  async put(key: string, body: Buffer | Readable, size?: number, contentType = "application/octet-stream"): Promise<{ etag: string }> {
    const r = await this.client.putObject(this.bucket, key, body, size, { "Content-Type": contentType });
    return { etag: r.etag };
  }

  /** Reads a whole object as a stream. */
  get(key: string): Promise<Readable> {
    return this.client.getObject(this.bucket, key);
  }

  /** Reads `length` bytes at `offset`. */
  getRange(key: string, offset: number, length: number): Promise<Readable> {
    return this.client.getPartialObject(this.bucket, key, offset, length);
  }

  /** Reads a whole object into memory (small objects only). */
  async getBytes(key: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of await this.get(key)) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  async stat(key: string): Promise<{ size: number; etag: string } | undefined> {
    try {
      const s = await this.client.statObject(this.bucket, key);
      return { size: s.size, etag: s.etag };
    } catch (e) {
      if ((e as { code?: string }).code === "NotFound" || (e as { code?: string }).code === "NoSuchKey") return undefined;
      throw e;
    }
  }

  async remove(key: string): Promise<void> {
    await this.client.removeObject(this.bucket, key);
  }

  /** True when the endpoint answers and the bucket exists. */
  async ping(): Promise<boolean> {
    return this.client.bucketExists(this.bucket).catch(() => false);
  }
}
