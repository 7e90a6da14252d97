/**
 * The storage provider client: one provider's S3 bucket (through the minio client), with a
 * deadline on every call, a cached liveness probe, streamed multipart parts, and verified
 * reads of one shard. Ingestion writes through it; the DA sampler and repair read through it.
 *
 * Deadlines: every request the minio client makes inside a call carries that call's
 * AbortSignal (a transport that reads it from AsyncLocalStorage), so a provider that accepts a
 * connection and then stalls costs at most the deadline, and the socket is closed, not leaked.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { createHash } from "node:crypto";
import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import { PassThrough, type Readable } from "node:stream";

import type { Client } from "minio";

import { s3Client } from "../blobs/blob-store.js";
import { FailedPreconditionError, InvalidArgumentError, UnavailableError } from "../errors.js";
import { systemClock, type Clock } from "../time/clock.js";
import { choosePlacement, type PlacementCandidate } from "./placement.js";

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

/** Deadlines of provider calls (milliseconds). */
export interface ProviderTimeouts {
  /**
   * Multipart create/complete/abort, deletes, stat.
   * @default 30000
   */
  readonly callMs: number;
  /**
   * One range read, from request to last byte.
   * @default 10000
   */
  readonly readMs: number;
  /**
   * A streamed part PUT that accepts no bytes (or gives no answer after its last byte) for this long fails.
   * @default 30000
   */
  readonly partIdleMs: number;
  /**
   * The liveness probe.
   * @default 2000
   */
  readonly probeMs: number;
  /**
   * How long a probe result is reused; one probe is in flight per provider at a time.
   * @default 5000
   */
  readonly probeTtlMs: number;
}

export const DEFAULT_PROVIDER_TIMEOUTS: ProviderTimeouts = {
  callMs: 30_000,
  readMs: 10_000,
  partIdleMs: 30_000,
  probeMs: 2_000,
  probeTtlMs: 5_000,
};

/** Parses a JSON list of providers (e.g. INGESTION_PROVIDERS); throws naming the first bad entry. */
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
  /** Resolves when the bytes are accepted (backpressure); rejects when the PUT failed or stalled past its deadline. */
  write(chunk: Buffer): Promise<void>;
  /** Ends the body; resolves with the part's ETag. */
  end(): Promise<string>;
  /** Drops the request (the part is simply not completed). */
  abort(): void;
}

/** A shard whose bytes do not hash to its leaf in the leaf table. */
export class ShardMismatchError extends Error {
  constructor(
    message: string,
    readonly expected: Uint8Array,
    readonly observed: Uint8Array,
  ) {
    super(message);
    this.name = "ShardMismatchError";
  }
}

/** SHA-256(0x00 ‖ shard): a shard's leaf (ARCHITECTURE.md, "Commitment"). */
export function shardLeafHash(shard: Uint8Array): Buffer {
  return createHash("sha256").update(Buffer.of(0)).update(shard).digest();
}

/** The signal of the provider call in progress (read by the transport). */
const callSignal = new AsyncLocalStorage<AbortSignal>();

/** An http(s) transport for the minio client that gives every request the current call's signal. */
function deadlineTransport(base: typeof http | typeof https): { request: typeof http.request } {
  return {
    request: ((opts: http.RequestOptions, cb?: (res: IncomingMessage) => void) => {
      const signal = callSignal.getStore();
      return base.request(signal ? { ...opts, signal } : opts, cb);
    }) as typeof http.request,
  };
}

class CallTimeout extends Error {}

/** One provider's S3 bucket. */
export class StorageProvider {
  readonly client: Client;
  readonly timeouts: ProviderTimeouts;
  private readonly clock: Clock;
  /** Unix ms until which the provider is considered down (set by failed calls). */
  private downUntil = 0;
  private probe: { at: number; live: Promise<boolean>; settled?: boolean } | undefined;
  /** Probes actually sent (for tests and metrics). */
  probesSent = 0;

  constructor(
    readonly config: ProviderConfig,
    opts: { timeouts?: Partial<ProviderTimeouts>; clock?: Clock } = {},
  ) {
    this.timeouts = { ...DEFAULT_PROVIDER_TIMEOUTS, ...opts.timeouts };
    this.clock = opts.clock ?? systemClock;
    const transport = deadlineTransport(config.endpoint.startsWith("https:") ? https : http);
    // A retried request would re-pipe a half-consumed part stream; callers retry whole steps.
    this.client = s3Client(config, { retryOptions: { disableRetry: true }, transport });
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
    return this.clock.nowMs() < this.downUntil;
  }

  markDown(ms = 10_000): void {
    this.downUntil = this.clock.nowMs() + ms;
    // A call just failed: a cached "live" is stale, so the next probe asks again.
    if (this.probe && this.probe.settled === true) this.probe = undefined;
  }

  markUp(): void {
    this.downUntil = 0;
  }

  /**
   * Liveness: the bucket exists and answers within the probe deadline. The answer is cached
   * for `probeTtlMs` and concurrent callers share one probe, so unauthenticated listings and
   * placements cost at most one probe per provider per TTL.
   */
  ping(): Promise<boolean> {
    const now = this.clock.nowMs();
    if (this.probe && now - this.probe.at < this.timeouts.probeTtlMs) return this.probe.live;
    const live = this.call("probe the bucket", this.timeouts.probeMs, () => this.client.bucketExists(this.config.bucket)).then(
      (ok) => ok,
      () => false,
    );
    this.probesSent++;
    this.probe = { at: now, live };
    void live.then((ok) => {
      // The TTL runs from the answer, so a slow probe is not repeated at once.
      if (this.probe?.live === live) this.probe = { at: this.clock.nowMs(), live, settled: ok };
      if (ok) this.markUp();
      else this.downUntil = this.clock.nowMs() + 10_000;
    });
    return live;
  }

  /** Creates the bucket if missing (local and demo setups). */
  async ensureBucket(): Promise<void> {
    await this.call("create the bucket", this.timeouts.callMs, async () => {
      if (!(await this.client.bucketExists(this.config.bucket))) {
        await this.client.makeBucket(this.config.bucket, this.config.region).catch(async (e: unknown) => {
          if (!(await this.client.bucketExists(this.config.bucket))) throw e;
        });
      }
    });
  }

  initiateMultipart(key: string): Promise<string> {
    return this.call(`start multipart upload of ${key}`, this.timeouts.callMs, () =>
      this.client.initiateNewMultipartUpload(this.config.bucket, key, { "Content-Type": "application/octet-stream" }),
    );
  }

  async uploadPart(key: string, uploadId: string, partNumber: number, body: Buffer): Promise<string> {
    const r = await this.call(`upload part ${partNumber} of ${key}`, this.timeouts.callMs, () =>
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
   * A provider that takes no bytes for `partIdleMs` (or gives no answer that long after the
   * last byte) fails the part, and its socket is closed.
   */
  openPart(key: string, uploadId: string, partNumber: number, length: number): PartWriter {
    const body = new PassThrough({ highWaterMark: 1024 * 1024 });
    const what = `upload part ${partNumber} of ${key}`;
    const idle = new AbortController();
    let cancel: (() => void) | undefined;
    const arm = (): void => {
      cancel?.();
      cancel = this.timer(this.timeouts.partIdleMs, () => idle.abort(new CallTimeout()));
    };
    const client = this.client as unknown as {
      makeRequestStreamAsync(
        o: { method: string; bucketName: string; objectName: string; query: string; headers: Record<string, number | string> },
        body: Readable,
        sha256sum: string,
        statusCodes: number[],
        region: string,
      ): Promise<IncomingMessage>;
    };
    arm();
    const response = this.run(what, idle.signal, this.timeouts.partIdleMs, async () => {
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
    }).finally(() => cancel?.());
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
        arm();
      },
      end: async () => {
        arm();
        body.end();
        return response;
      },
      abort: () => {
        idle.abort(new Error("aborted"));
        body.destroy();
        response.catch(() => undefined);
      },
    };
  }

  completeMultipart(key: string, uploadId: string, etags: readonly string[]): Promise<unknown> {
    return this.call(`complete multipart upload of ${key}`, this.timeouts.callMs, () =>
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
    await this.call(`abort multipart upload of ${key}`, this.timeouts.callMs, () =>
      this.client.abortMultipartUpload(this.config.bucket, key, uploadId).catch((e: unknown) => {
        if (/NoSuchUpload/i.test(String((e as { code?: string }).code ?? (e as Error).message))) return;
        throw e;
      }),
    );
  }

  /** Deletes an object; one already gone is not an error. */
  async remove(key: string): Promise<void> {
    await this.call(`delete ${key}`, this.timeouts.callMs, () => this.client.removeObject(this.config.bucket, key));
  }

  /**
   * Reads `length` bytes at `offset`, all of them within the read deadline; `signal` cancels
   * early (a hedged read that is no longer needed).
   */
  async readRange(key: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    const out = Buffer.allocUnsafe(length);
    await this.readRangeInto(key, offset, length, (chunk, at) => chunk.copy(out, at), signal);
    return out;
  }

  /**
   * Like readRange, but hands each chunk to `sink` with its offset in the range as it arrives
   * (the caller lays the bytes out where it needs them: one copy, no buffer of the whole range).
   */
  readRangeInto(
    key: string,
    offset: number,
    length: number,
    sink: (chunk: Buffer, at: number) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    return this.call(
      `read ${key}`,
      this.timeouts.readMs,
      async () => {
        const stream = await this.client.getPartialObject(this.config.bucket, key, offset, length);
        let at = 0;
        for await (const chunk of stream as AsyncIterable<Buffer>) {
          if (at + chunk.length > length) throw new Error(`range read returned more than ${length} bytes`);
          sink(chunk, at);
          at += chunk.length;
        }
        if (at !== length) throw new Error(`range read returned ${at} of ${length} bytes`);
      },
      signal,
    );
  }

  /**
   * Reads shard `stripe` of the slot object `key` and checks it against `expectedLeaf` (its
   * entry in the manifest's leaf table). Throws ShardMismatchError (evidence) when it does
   * not match, UnavailableError when it cannot be read in time.
   */
  async readShard(key: string, stripe: number, shardSize: number, expectedLeaf: Uint8Array, signal?: AbortSignal): Promise<Buffer> {
    const shard = await this.readRange(key, stripe * shardSize, shardSize, signal);
    const observed = shardLeafHash(shard);
    if (!observed.equals(expectedLeaf)) {
      throw new ShardMismatchError(
        `storage provider ${this.id}: shard ${stripe} of ${key} does not match its leaf`,
        expectedLeaf,
        observed,
      );
    }
    return shard;
  }

  /** Whether an object exists. */
  async exists(key: string): Promise<boolean> {
    try {
      await this.call(`stat ${key}`, this.timeouts.callMs, () => this.client.statObject(this.config.bucket, key));
      return true;
    } catch {
      return false;
    }
  }

  /** Runs one provider call with a deadline of `ms` (and an optional caller signal). */
  private call<T>(what: string, ms: number, f: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const deadline = new AbortController();
    const cancel = this.timer(ms, () => deadline.abort(new CallTimeout()));
    const signals = signal ? AbortSignal.any([deadline.signal, signal]) : deadline.signal;
    return this.run(what, signals, ms, f).finally(cancel);
  }

  /** Calls `fire` after `ms` of the provider's clock (tests move it); returns the cancel. */
  private timer(ms: number, fire: () => void): () => void {
    const stop = new AbortController();
    this.clock.sleep(ms, stop.signal).then(fire, () => undefined);
    return () => stop.abort();
  }

  private async run<T>(what: string, signal: AbortSignal, ms: number, f: () => Promise<T>): Promise<T> {
    try {
      // Rejects at the deadline even if the client never looks at the signal.
      const r = await callSignal.run(signal, () =>
        Promise.race([
          f(),
          new Promise<never>((_, reject) => {
            if (signal.aborted) reject(signal.reason as Error);
            signal.addEventListener("abort", () => reject(signal.reason as Error), { once: true });
          }),
        ]),
      );
      this.markUp();
      return r;
    } catch (e) {
      if (signal.reason instanceof CallTimeout) {
        this.markDown();
        throw new UnavailableError(
          `storage provider ${this.id} (${this.config.endpoint}) did not answer within ${ms} ms: could not ${what}`,
        );
      }
      if (signal.aborted) throw new UnavailableError(`${what} on storage provider ${this.id} was cancelled`);
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

/** The providers a service knows, by id. */
export class ProviderRegistry {
  private readonly byId = new Map<string, StorageProvider>();

  constructor(configs: readonly ProviderConfig[], opts: { timeouts?: Partial<ProviderTimeouts>; clock?: Clock } = {}) {
    for (const c of configs) this.byId.set(c.id, new StorageProvider(c, opts));
  }

  get all(): StorageProvider[] {
    return [...this.byId.values()];
  }

  get(id: string): StorageProvider {
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
  place(n: number, opts: { seed: string; require?: readonly string[] }): Promise<StorageProvider[]>;
}

/**
 * Default placement: probe every provider (cached probes), then `choosePlacement` (pure):
 * stake × reliability with a per-dataset tie-breaker. Fewer than n live providers is a clear
 * error, never a partial placement.
 */
export class WeightedPlacement implements PlacementPolicy {
  constructor(
    private readonly registry: ProviderRegistry,
    private readonly what = "INGESTION_PROVIDERS",
  ) {}

  async place(n: number, opts: { seed: string; require?: readonly string[] }): Promise<StorageProvider[]> {
    const all = this.registry.all;
    if (all.length === 0) throw new FailedPreconditionError(`no storage providers are configured (${this.what})`);
    const candidates: PlacementCandidate[] = await Promise.all(
      all.map(async (p) => ({ id: p.id, stake: p.config.stake, reliability: p.config.reliability, live: await p.ping() })),
    );
    const r = choosePlacement(candidates, n, opts);
    if ("ids" in r) return r.ids.map((id) => this.registry.get(id));
    const { kind, message } = r.shortfall;
    if (kind === "unknown_required") throw new InvalidArgumentError(message);
    if (kind === "too_few_known") throw new FailedPreconditionError(message);
    throw new UnavailableError(message);
  }
}
