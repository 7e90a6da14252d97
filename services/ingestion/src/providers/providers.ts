/**
 * Storage providers and placement. Today the providers come from configuration; the
 * marketplace will supply them (with stake and reliability) through the same
 * `PlacementPolicy` interface, so nothing else in the service changes.
 */
import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { PassThrough, type Readable } from "node:stream";

import type { Client } from "minio";

import { s3Client } from "@deai/kit";

import { FailedPreconditionError, InvalidArgumentError, UnavailableError } from "@deai/kit/errors";

export interface ProviderConfig {
  readonly id: string;
  readonly endpoint: string;
  readonly bucket: string;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly region: string;
  /** Reputation mean, 0..1 (DA sampling will feed this); default 1. */
  readonly reliability: number;
  /** Bonded stake in base units; default 1. */
  readonly stake: number;
}

/** Parses INGESTION_PROVIDERS; throws naming the first bad entry. */
export function parseProviders(json: string): ProviderConfig[] {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (e) {
    throw new Error(`is not JSON: ${(e as Error).message}`, { cause: e });
  }
  if (!Array.isArray(raw)) throw new Error("must be a JSON array of providers");
  const seen = new Set<string>();
  return raw.map((p: unknown, i) => {
    const o = (p ?? {}) as Record<string, unknown>;
    const str = (k: string, def?: string): string => {
      const v = o[k] ?? def;
      if (typeof v !== "string" || v === "") throw new Error(`provider [${i}]: ${k} must be a non-empty string`);
      return v;
    };
    const id = str("id");
    if (seen.has(id)) throw new Error(`provider [${i}]: duplicate id ${id}`);
    seen.add(id);
    const endpoint = str("endpoint");
    if (!/^https?:\/\/[^/]+\/?$/.test(endpoint)) throw new Error(`provider ${id}: endpoint must be http(s)://host[:port], got ${endpoint}`);
    const num = (k: string, def: number, max = Infinity): number => {
      const v = o[k] ?? def;
      const n = typeof v === "string" ? Number(v) : v;
      if (typeof n !== "number" || !Number.isFinite(n) || n < 0 || n > max)
        throw new Error(`provider ${id}: ${k} must be a number in [0, ${max}]`);
      return n;
    };
    return {
      id,
      endpoint: endpoint.replace(/\/$/, ""),
      bucket: str("bucket"),
      accessKey: str("accessKey"),
      secretKey: str("secretKey"),
      region: str("region", "us-east-1"),
      reliability: num("reliability", 1, 1),
      stake: num("stake", 1),
    };
  });
}

/** One multipart part being streamed. */
export interface PartWriter {
  /** Resolves when the bytes are accepted (backpressure); rejects when the PUT failed. */
  write(chunk: Buffer): Promise<void>;
  /** Ends the body; resolves with the part's ETag. */
  end(): Promise<string>;
  /** Drops the request (the part is simply not completed). */
  abort(): void;
}

/** One provider's S3 bucket, through the minio client. */
export class Provider {
  readonly client: Client;
  /** Unix ms until which the provider is considered down (set by failed calls). */
  private downUntil = 0;

  constructor(readonly config: ProviderConfig) {
    // A retried request would re-pipe a half-consumed part stream; callers retry whole steps.
    this.client = s3Client(config, { retryOptions: { disableRetry: true } });
    // Over plain http the client would SHA-256 every part on the event loop to sign its payload
    // (1.5× the dataset's bytes). Shards are committed by their own leaves, checked on every
    // read, so parts go as UNSIGNED-PAYLOAD, as the client already does over https.
    (this.client as unknown as { enableSHA256: boolean }).enableSHA256 = false;
  }

  get id(): string {
    return this.config.id;
  }

  /** Whether a recent call failed (reads skip such providers first; placement avoids them). */
  get suspectedDown(): boolean {
    return Date.now() < this.downUntil;
  }

  markDown(ms = 10_000): void {
    this.downUntil = Date.now() + ms;
  }

  markUp(): void {
    this.downUntil = 0;
  }

  /** A cheap liveness probe: the bucket exists and answers within `timeoutMs`. */
  async ping(timeoutMs = 2000): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const ok = await Promise.race([
      this.client.bucketExists(this.config.bucket).catch(() => false),
      new Promise<false>((r) => (timer = setTimeout(() => r(false), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (ok) this.markUp();
    else this.markDown();
    return ok;
  }

  /** Creates the bucket if missing (local and demo setups). */
  async ensureBucket(): Promise<void> {
    if (!(await this.client.bucketExists(this.config.bucket))) {
      await this.client.makeBucket(this.config.bucket, this.config.region).catch(async (e: unknown) => {
        if (!(await this.client.bucketExists(this.config.bucket))) throw e;
      });
    }
  }

  initiateMultipart(key: string): Promise<string> {
    return this.wrap(`start multipart upload of ${key}`, () =>
      this.client.initiateNewMultipartUpload(this.config.bucket, key, { "Content-Type": "application/octet-stream" }),
    );
  }

  async uploadPart(key: string, uploadId: string, partNumber: number, body: Buffer): Promise<string> {
    const r = await this.wrap(`upload part ${partNumber} of ${key}`, () =>
      this.client.uploadPart(
        { bucketName: this.config.bucket, objectName: key, uploadID: uploadId, partNumber, headers: { "Content-Length": body.length } },
        body,
      ),
    );
    return r.etag;
  }

  /**
   * Streams one multipart part of exactly `length` bytes: shards are written as they are
   * encoded (the socket's backpressure reaches the caller), so no part is ever buffered whole.
   */
  openPart(key: string, uploadId: string, partNumber: number, length: number): PartWriter {
    const body = new PassThrough({ highWaterMark: 1024 * 1024 });
    const client = this.client as unknown as {
      makeRequestStreamAsync(
        o: { method: string; bucketName: string; objectName: string; query: string; headers: Record<string, number | string> },
        body: Readable,
        sha256sum: string,
        statusCodes: number[],
        region: string,
      ): Promise<IncomingMessage>;
    };
    const response = this.wrap(`upload part ${partNumber} of ${key}`, async () => {
      const res = await client.makeRequestStreamAsync(
        {
          method: "PUT",
          bucketName: this.config.bucket,
          objectName: key,
          query: `uploadId=${uploadId}&partNumber=${partNumber}`,
          headers: { "Content-Length": length },
        },
        body,
        "",
        [200],
        this.config.region,
      );
      res.resume();
      const etag = String(res.headers.etag ?? "").replace(/^"|"$/g, "");
      if (!etag) throw new Error("no ETag in the response");
      return etag;
    });
    let failed: Error | undefined;
    response.catch((e: unknown) => {
      failed = e instanceof Error ? e : new Error(String(e));
      body.destroy();
    });
    let written = 0;
    return {
      write: async (chunk) => {
        if (failed) throw failed;
        written += chunk.length;
        if (written > length) throw new Error(`part ${partNumber} of ${key} overruns its ${length} bytes`);
        if (!body.write(chunk)) {
          await new Promise<void>((resolve, reject) => {
            const done = (): void => {
              body.off("drain", done);
              body.off("close", done);
              if (failed) reject(failed);
              else resolve();
            };
            body.on("drain", done);
            body.on("close", done);
          });
        }
        if (failed) throw failed;
      },
      end: async () => {
        body.end();
        return response;
      },
      abort: () => {
        body.destroy();
        response.catch(() => undefined);
      },
    };
  }

  completeMultipart(key: string, uploadId: string, etags: readonly string[]): Promise<unknown> {
    return this.wrap(`complete multipart upload of ${key}`, () =>
      this.client.completeMultipartUpload(
        this.config.bucket,
        key,
        uploadId,
        etags.map((etag, i) => ({ part: i + 1, etag })),
      ),
    );
  }

  /** Aborts a multipart upload; an upload already gone is not an error. */
  async abortMultipart(key: string, uploadId: string): Promise<void> {
    await this.client.abortMultipartUpload(this.config.bucket, key, uploadId).catch((e: unknown) => {
      if (/NoSuchUpload/i.test(String((e as { code?: string }).code ?? (e as Error).message))) return;
      throw e;
    });
  }

  /** Deletes an object; one already gone is not an error. */
  async remove(key: string): Promise<void> {
    await this.client.removeObject(this.config.bucket, key);
  }

  /** Range read as a stream. */
  getRange(key: string, offset: number, length: number): Promise<Readable> {
    return this.wrap(`read ${key}`, () => this.client.getPartialObject(this.config.bucket, key, offset, length));
  }

  /** Whether an object exists. */
  async exists(key: string): Promise<boolean> {
    try {
      await this.client.statObject(this.config.bucket, key);
      return true;
    } catch {
      return false;
    }
  }

  private async wrap<T>(what: string, f: () => Promise<T>): Promise<T> {
    try {
      const r = await f();
      this.markUp();
      return r;
    } catch (e) {
      const code = (e as { code?: string }).code;
      const transport =
        code === undefined || /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|socket|EHOSTUNREACH/i.test(`${code} ${(e as Error).message}`);
      if (transport) {
        this.markDown();
        throw new UnavailableError(
          `storage provider ${this.id} (${this.config.endpoint}) is unreachable: could not ${what}: ${(e as Error).message}`,
        );
      }
      throw new UnavailableError(`storage provider ${this.id} refused to ${what}: ${code}: ${(e as Error).message}`);
    }
  }
}

/** The providers this service knows, by id. */
export class ProviderRegistry {
  private readonly byId = new Map<string, Provider>();

  constructor(configs: readonly ProviderConfig[]) {
    for (const c of configs) this.byId.set(c.id, new Provider(c));
  }

  get all(): Provider[] {
    return [...this.byId.values()];
  }

  get(id: string): Provider {
    const p = this.byId.get(id);
    if (!p) throw new FailedPreconditionError(`unknown storage provider ${id}`);
    return p;
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }
}

/** Chooses where the n shard slots of a dataset go. The marketplace will implement this too. */
export interface PlacementPolicy {
  /**
   * Returns n distinct providers, slot order, for the dataset `seed` (an upload id: spreads
   * load deterministically). `require` pins providers the caller asked for.
   */
  place(n: number, opts: { seed: string; require?: readonly string[] }): Promise<Provider[]>;
}

/**
 * Default placement: probe every provider, drop the unreachable ones, then rank the live ones by
 * stake × reliability with a per-dataset hash as tie-breaker (so equal providers share load) and
 * take the top n. Fewer than n live providers is a clear error, never a partial placement.
 */
export class WeightedPlacement implements PlacementPolicy {
  constructor(private readonly registry: ProviderRegistry) {}

  async place(n: number, opts: { seed: string; require?: readonly string[] }): Promise<Provider[]> {
    const all = this.registry.all;
    if (all.length === 0) throw new FailedPreconditionError("no storage providers are configured (INGESTION_PROVIDERS)");
    for (const id of opts.require ?? []) {
      if (!this.registry.has(id)) throw new InvalidArgumentError(`unknown storage provider ${id}`);
    }
    if (n > all.length) {
      throw new FailedPreconditionError(`k + m = ${n} shard slots need ${n} distinct storage providers; ${all.length} are configured`);
    }
    const live = (await Promise.all(all.map(async (p) => ((await p.ping()) ? p : undefined)))).filter(
      (p): p is Provider => p !== undefined,
    );
    const down = all.filter((p) => !live.includes(p)).map((p) => p.id);
    if (live.length < n) {
      throw new UnavailableError(
        `k + m = ${n} shard slots need ${n} distinct storage providers; only ${live.length} of ${all.length} are reachable (down: ${down.join(", ")})`,
      );
    }
    const required = new Set(opts.require ?? []);
    for (const id of required) {
      if (!live.some((p) => p.id === id)) throw new UnavailableError(`storage provider ${id} is unreachable`);
    }
    const tie = (p: Provider): number => createHash("sha256").update(`${opts.seed}/${p.id}`).digest().readUInt32BE(0) / 2 ** 32;
    const score = (p: Provider): number => (required.has(p.id) ? Infinity : p.config.stake * p.config.reliability * (0.9 + 0.2 * tie(p)));
    return [...live].sort((a, b) => score(b) - score(a) || a.id.localeCompare(b.id)).slice(0, n);
  }
}
