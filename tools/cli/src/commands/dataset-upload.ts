// deai dataset upload <file|-> --key FILE [--name ...] [--resume ID] [--segment-mib N] [--log-key KEY]
//
// create (declaring size and contentDigest for a file) → one signed PUT per segment, resumed
// from the upload's durable offset after a network or 5xx failure → complete → check that the
// statement the service asks us to sign commits to the bytes we sent → sign it (DSSE) →
// complete with the envelope → the dataset, its ledger receipt (verified offline with --log-key).
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { Readable } from "node:stream";

import { bytesEqual, checkEnvelopeSignatures, hexEncode, leafHash, parseManifestStatement } from "@deai/proofs";

import { readKeyFile, signDigestHeaders, type ActorKey } from "../actor-key.js";
import { ApiError, Unreachable, type ApiClient } from "../api-client.js";
import { CheckFailed, count, flag, list, requireStr, str, UsageError, verifierKeyArg, type Context } from "../cli.js";
import {
  stateName,
  u64,
  type ChunksJson,
  type CompleteJson,
  type DatasetJson,
  type DigestJson,
  type EnvelopeJsonForm,
  type ManifestJson,
  type UploadJson,
} from "../dataset-api.js";
import { CommitmentHasher, fileCommitments, fileRangeDigest, type Commitments, type Geometry } from "../dataset-commitments.js";
import { envelopeLeaf, signStatement } from "../envelope.js";
import { backoffMs, retriesOf, sleep } from "../retry.js";
import { formatBytes, Progress } from "../progress.js";
import { reportDataset } from "./dataset-report.js";

const MiB = 1024 * 1024;

/** The bytes being uploaded: a file (random access) or stdin (read once, the unacknowledged tail kept). */
interface Source {
  readonly label: string;
  /** Known up front for a file. */
  readonly size: number | undefined;
  /** Makes bytes up to `end` available; returns the end actually available (smaller at EOF). */
  fill(end: number): Promise<number>;
  /** RFC 9530 Content-Digest of [start, end). */
  digest(start: number, end: number): Promise<string>;
  /** The bytes [start, end) as a stream. */
  open(start: number, end: number): Readable;
  /** The service holds everything before `offset` durably: bytes before it are no longer needed. */
  release(offset: number): void;
}

function fileSource(path: string, size: number): Source {
  return {
    label: path,
    size,
    fill: async (end) => Math.min(end, size),
    digest: (start, end) => fileRangeDigest(path, start, end),
    open: (start, end) => createReadStream(path, { start, end: end - 1, highWaterMark: MiB }),
    release: () => undefined,
  };
}

/** stdin, hashed as it is read; keeps bytes from the last durable offset so a failed segment can be re-sent. */
class StdinSource implements Source {
  readonly label = "stdin";
  readonly size = undefined;
  private readonly input: AsyncIterator<Buffer> = (process.stdin as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  /** Bytes [base, read) still held. */
  private held: Buffer[] = [];
  private base = 0;
  private read = 0;
  private eof = false;

  constructor(readonly hasher: CommitmentHasher) {}

  /** Reads and hashes the stream up to `offset` without holding it (resuming: the service has those bytes). */
  async skip(offset: number): Promise<void> {
    await this.fill(offset);
    if (this.read < offset) throw new CheckFailed(`stdin ended after ${this.read} bytes, before the upload's durable offset ${offset}`);
    this.release(offset);
  }

  async fill(end: number): Promise<number> {
    while (this.read < end && !this.eof) {
      const r = await this.input.next();
      if (r.done) {
        this.eof = true;
        break;
      }
      this.hasher.update(r.value);
      this.held.push(r.value);
      this.read += r.value.length;
    }
    return Math.min(end, this.read);
  }

  /** Everything read so far, once stdin has ended. */
  async drain(): Promise<number> {
    for (;;) {
      const got = await this.fill(this.read + 64 * MiB);
      this.release(got);
      if (this.eof) return this.read;
    }
  }

  private bytes(start: number, end: number): Buffer {
    if (start < this.base) throw new CheckFailed(`cannot re-send bytes from ${start}: stdin was read past them (held from ${this.base})`);
    if (this.held.length > 1) this.held = [Buffer.concat(this.held)];
    return (this.held[0] ?? Buffer.alloc(0)).subarray(start - this.base, end - this.base);
  }

  async digest(start: number, end: number): Promise<string> {
    return `sha-256=:${createHash("sha256").update(this.bytes(start, end)).digest("base64")}:`;
  }

  open(start: number, end: number): Readable {
    const b = this.bytes(start, end);
    return Readable.from(
      (function* () {
        for (let at = 0; at < b.length; at += MiB) yield b.subarray(at, at + MiB);
      })(),
    );
  }

  release(offset: number): void {
    const drop = Math.min(offset, this.read) - this.base;
    if (drop <= 0) return;
    const all = Buffer.concat(this.held);
    this.held = [all.subarray(drop)];
    this.base += drop;
  }
}

/** Whether a failed request is worth retrying from the durable offset. */
function retryable(e: unknown): boolean {
  if (e instanceof Unreachable) return true;
  if (!(e instanceof ApiError)) return false;
  if (e.status >= 500) return true;
  // The service may still be winding down the broken request, or our offset is stale.
  return e.code === "failed_precondition" && /already receiving a stream|still receiving a stream|does not continue upload/.test(e.message);
}

interface Options {
  readonly geometry: Geometry;
  readonly segment: number;
  readonly spec: Record<string, unknown>;
  readonly checkShardRoot: boolean;
}

function parseOptions(ctx: Context): Options {
  const k = count(str(ctx, "k"), "--k") ?? 8;
  const m = count(str(ctx, "m"), "--m") ?? 4;
  const shardSize = count(str(ctx, "shard-size"), "--shard-size") ?? 256 * 1024;
  if (k < 1 || k > 24) throw new UsageError("--k must be from 1 to 24");
  if (m < 1 || m > 6) throw new UsageError("--m must be from 1 to 6");
  if (shardSize < 8 || shardSize % 8 !== 0) throw new UsageError("--shard-size must be a positive multiple of 8 bytes");
  const segText = str(ctx, "segment-mib") ?? "64";
  const segMib = Number(segText);
  if (!/^[0-9]+(\.[0-9]+)?$/.test(segText) || !(segMib > 0)) throw new UsageError("--segment-mib must be a positive number of MiB");
  const segment = Math.max(1, Math.round(segMib * MiB));
  const parents: DigestJson[] = list(ctx, "parent").map((p) => {
    const hex = p.replace(/^sha256:/, "").toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(hex)) throw new UsageError(`--parent ${p}: give the parent's contentDigest as 64 hex digits (sha256)`);
    return { algorithm: "sha256", hex };
  });
  const provenance: Record<string, string> = {};
  for (const kv of list(ctx, "provenance")) {
    const at = kv.indexOf("=");
    if (at < 1) throw new UsageError(`--provenance ${kv}: use key=value`);
    provenance[kv.slice(0, at)] = kv.slice(at + 1);
  }
  const spec: Record<string, unknown> = { k, m, shardSize, parents, provenance };
  for (const [flagName, field] of [
    ["name", "name"],
    ["media-type", "mediaType"],
    ["license", "license"],
    ["usage-terms", "usageTerms"],
  ] as const) {
    const v = str(ctx, flagName);
    if (v !== undefined) spec[field] = v;
  }
  return { geometry: { k, m, shardSize }, segment, spec, checkShardRoot: flag(ctx, "check-shard-root") };
}

/** Runs `step`, retrying network and server failures with backoff. */
async function withRetries<T>(ctx: Context, what: string, step: () => Promise<T>): Promise<T> {
  const retries = retriesOf(ctx);
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (e) {
      if (!retryable(e) || attempt > retries) throw e;
      const wait = backoffMs(attempt);
      ctx.warn(`${what}: ${(e as Error).message}; retrying in ${(wait / 1000).toFixed(1)} s (${attempt}/${retries})`);
      await sleep(wait);
    }
  }
}

/** Streams the source from the upload's durable offset to the end, one signed PUT per segment. */
async function streamBytes(
  ctx: Context,
  client: ApiClient,
  key: ActorKey,
  upload: UploadJson,
  src: Source,
  segment: number,
  progress: Progress,
): Promise<number> {
  const id = upload.uploadId;
  let off = u64(upload.durableOffset);
  let failures = 0;
  const retries = retriesOf(ctx);
  progress.set(off);
  const lines = process.stderr.isTTY !== true;
  for (;;) {
    const end = await src.fill(off + segment);
    if (end <= off) return off;
    const path = `/v1/uploads/${encodeURIComponent(id)}/data/${off}`;
    try {
      const digest = await src.digest(off, end);
      const headers = signDigestHeaders(key, "PUT", client.authority, path, digest);
      let sent = off;
      const r = await client.putStream<ChunksJson>(path, headers, src.open(off, end), end - off, (n) => progress.set((sent += n)));
      const received = u64(r.receivedOffset);
      if (received !== end) throw new CheckFailed(`the service received up to ${received} after a segment ending at ${end}`);
      src.release(u64(r.durableOffset));
      if (lines) ctx.warn(`sent ${off}-${end - 1} (${formatBytes(end - off)}), durable offset ${u64(r.durableOffset)}`);
      off = end;
      failures = 0;
    } catch (e) {
      if (!retryable(e) || ++failures > retries) throw e;
      const wait = backoffMs(failures);
      progress.clear();
      ctx.warn(
        `segment at ${off}: ${(e as Error).message}; resuming from the durable offset in ${(wait / 1000).toFixed(1)} s (${failures}/${retries})`,
      );
      await sleep(wait);
      const u = await withRetries(ctx, `upload ${id}`, () =>
        client.getJson<{ upload: UploadJson }>(`/v1/uploads/${encodeURIComponent(id)}`),
      );
      if (u.upload.state !== "UPLOAD_STATE_OPEN") {
        throw new CheckFailed(`upload ${id} is ${stateName(u.upload.state)}${u.upload.error ? `: ${u.upload.error}` : ""}; cannot resume`);
      }
      off = u64(u.upload.durableOffset);
      progress.set(off);
    }
  }
}

function manifestMismatch(
  statement: ReturnType<typeof parseManifestStatement>,
  manifest: ManifestJson | undefined,
  local: Commitments,
  owner: string,
  o: Options,
  declared: boolean,
): string | undefined {
  if (statement.contentDigest !== local.contentDigest) {
    return `the statement commits to contentDigest sha256:${statement.contentDigest}, but the bytes sent hash to sha256:${local.contentDigest}`;
  }
  if (statement.size !== local.size) return `the statement says ${statement.size} bytes, but ${local.size} were sent`;
  if (manifest?.contentDigest?.hex !== local.contentDigest || u64(manifest.size) !== local.size) {
    return `the upload's manifest (sha256:${manifest?.contentDigest?.hex}, ${u64(manifest?.size)} bytes) is not the bytes sent (sha256:${local.contentDigest}, ${local.size} bytes)`;
  }
  if (statement.owner !== owner) return `the statement names owner ${statement.owner}, not this key (${owner})`;
  if (local.shardRoot && hexEncode(local.shardRoot) !== statement.shardRoot) {
    return `the statement commits to shardRoot ${statement.shardRoot}, but the bytes give ${hexEncode(local.shardRoot)}`;
  }
  if (!declared) return undefined;
  const g = o.geometry;
  if (statement.k !== g.k || statement.m !== g.m || statement.shardSize !== g.shardSize) {
    return `the statement's coding (k=${statement.k} m=${statement.m} S=${statement.shardSize}) is not the one asked for (k=${g.k} m=${g.m} S=${g.shardSize})`;
  }
  const p = statement.manifest;
  const wanted = o.spec;
  for (const field of ["name", "license", "usageTerms", "mediaType"] as const) {
    if (wanted[field] !== undefined && (p[field] ?? "") !== wanted[field]) {
      return `the statement's ${field} is ${JSON.stringify(p[field] ?? "")}, not ${JSON.stringify(wanted[field])}`;
    }
  }
  const parents = (p.parents ?? []).map((d) => `${d.algorithm}:${d.hex}`).join(",");
  const wantedParents = (wanted.parents as DigestJson[]).map((d) => `${d.algorithm}:${d.hex}`).join(",");
  if (parents !== wantedParents) return `the statement's parents are [${parents}], not [${wantedParents}]`;
  const prov = JSON.stringify(Object.entries(p.provenance ?? {}).sort());
  if (prov !== JSON.stringify(Object.entries(wanted.provenance as Record<string, string>).sort())) {
    return `the statement's provenance ${prov} is not the one declared`;
  }
  return undefined;
}

export async function upload(ctx: Context, client: ApiClient): Promise<void> {
  const [input, ...rest] = ctx.positionals;
  if (input === undefined || rest.length > 0) throw new UsageError("dataset upload takes one file (or - for stdin)");
  const o = parseOptions(ctx);
  const keyPath = requireStr(ctx, "key");
  const logKey = str(ctx, "log-key");
  const log = logKey === undefined ? undefined : verifierKeyArg(logKey, "--log-key");
  const resume = str(ctx, "resume");
  const key = await readKeyFile(keyPath);
  const geometry = o.checkShardRoot ? o.geometry : undefined;

  // 1. Local commitments first (a file), so the service can refuse a mismatch and dedupe.
  let local: Commitments | undefined;
  let src: Source;
  let stdin: StdinSource | undefined;
  if (input === "-") {
    src = stdin = new StdinSource(new CommitmentHasher(geometry));
  } else {
    let size: number;
    try {
      const st = await stat(input);
      if (!st.isFile()) throw new Error("not a regular file");
      size = st.size;
    } catch (e) {
      throw new CheckFailed(`cannot read ${input}: ${(e as Error).message}`, { cause: e });
    }
    if (size === 0) throw new CheckFailed(`${input} is empty: a dataset holds at least one byte`);
    const hashing = new Progress("hashing  ", size);
    local = await fileCommitments(input, geometry, (n) => hashing.add(n));
    hashing.finish();
    src = fileSource(input, size);
    ctx.warn(`${input}: ${size} bytes, sha256 ${local.contentDigest}`);
  }

  // 2. The upload: a new one, or the one to resume.
  let up: UploadJson;
  const declared = resume === undefined;
  if (resume !== undefined) {
    up = (await withRetries(ctx, "get upload", () => client.getJson<{ upload: UploadJson }>(`/v1/uploads/${encodeURIComponent(resume)}`)))
      .upload;
    const spec = up.spec ?? {};
    if (spec.owner !== undefined && spec.owner !== key.id)
      throw new CheckFailed(`upload ${resume} belongs to ${spec.owner}, not to this key (${key.id})`);
    if (local && spec.size !== undefined && u64(spec.size) !== local.size) {
      throw new CheckFailed(`upload ${resume} declared ${spec.size} bytes; ${input} has ${local.size}: not the same data`);
    }
    if (local && spec.contentDigest && spec.contentDigest.hex !== local.contentDigest) {
      throw new CheckFailed(`upload ${resume} declared sha256:${spec.contentDigest.hex}; ${input} hashes to sha256:${local.contentDigest}`);
    }
    if (o.checkShardRoot && (spec.k !== o.geometry.k || spec.m !== o.geometry.m || spec.shardSize !== o.geometry.shardSize)) {
      throw new UsageError(`--check-shard-root needs the upload's coding: --k ${spec.k} --m ${spec.m} --shard-size ${spec.shardSize}`);
    }
    ctx.warn(`resuming upload ${resume} (${stateName(up.state)}, durable offset ${u64(up.durableOffset)})`);
  } else {
    const spec: Record<string, unknown> = {
      ...o.spec,
      ...(local ? { size: String(local.size), contentDigest: { algorithm: "sha256", hex: local.contentDigest } } : {}),
    };
    if (spec.name === undefined && input !== "-") spec.name = input.split("/").pop();
    up = (await withRetries(ctx, "create upload", () => client.postSigned<{ upload: UploadJson }>("/v1/uploads", { spec }, key))).upload;
    if (up.state === "UPLOAD_STATE_OPEN") {
      ctx.warn(
        `upload ${up.uploadId} created on ${up.placements?.length ?? 0} providers; if interrupted, resume with --resume ${up.uploadId}`,
      );
    }
  }
  const id = up.uploadId;
  const uploadPath = `/v1/uploads/${encodeURIComponent(id)}`;

  // 3. The bytes.
  // Completed right away: the service already has these bytes from this owner (or, resuming, it is done).
  let deduplicated = up.state === "UPLOAD_STATE_COMPLETED" && declared;
  if (up.state === "UPLOAD_STATE_OPEN") {
    if (stdin) await stdin.skip(u64(up.durableOffset));
    const progress = new Progress("uploading", src.size);
    const started = Date.now();
    const end = await streamBytes(ctx, client, key, up, src, o.segment, progress);
    progress.finish();
    const s = (Date.now() - started) / 1000;
    ctx.warn(`streamed ${formatBytes(end)} in ${s.toFixed(1)} s`);
    up = (await withRetries(ctx, "complete", () => client.postSigned<CompleteJson>(`${uploadPath}/complete`, {}, key))).upload;
    // Finishing found the same bytes from this owner: the existing dataset stands.
    deduplicated = up.state === "UPLOAD_STATE_COMPLETED";
  } else if (up.state === "UPLOAD_STATE_COMPLETED") {
    if (!declared) ctx.warn(`upload ${id} is already completed`);
  } else if (up.state !== "UPLOAD_STATE_AWAITING_SIGNATURE") {
    throw new CheckFailed(`upload ${id} is ${stateName(up.state)}${up.error ? `: ${up.error}` : ""}`);
  }
  if (stdin) {
    await stdin.drain();
    local = stdin.hasher.digest();
  }
  local = local!;

  // 4. Sign what the service built, only if it commits to the bytes sent.
  let dataset: DatasetJson;
  let envelope: EnvelopeJsonForm;
  if (up.state === "UPLOAD_STATE_AWAITING_SIGNATURE") {
    const bytes = Buffer.from(up.manifestStatement ?? "", "base64");
    let statement;
    try {
      statement = parseManifestStatement(bytes);
    } catch (e) {
      throw new CheckFailed(`refusing to sign the manifest of upload ${id}: ${(e as Error).message}`);
    }
    const why = manifestMismatch(statement, up.manifest, local, key.id, o, declared);
    if (why) throw new CheckFailed(`refusing to sign the manifest of upload ${id}: ${why}`);
    envelope = signStatement(bytes, key) as EnvelopeJsonForm;
    const done = await withRetries(ctx, "anchor", () =>
      client.postSigned<CompleteJson>(`${uploadPath}/complete`, { manifestEnvelope: envelope }, key),
    );
    if (!done.datasetId || !done.receipt)
      throw new CheckFailed(`upload ${id}: the service anchored no dataset (state ${stateName(done.upload.state)})`);
    const receiptLeaf = Buffer.from(done.receipt.leafHash ?? "", "base64");
    if (!bytesEqual(receiptLeaf, leafHash(envelopeLeaf(envelope)))) {
      throw new CheckFailed(`the ledger receipt is for leaf ${receiptLeaf.toString("hex")}, not for the envelope signed here`);
    }
    dataset = { datasetId: done.datasetId, manifest: statement.manifest, manifestEnvelope: envelope, receipt: done.receipt };
  } else if (up.state === "UPLOAD_STATE_COMPLETED" && up.datasetId) {
    dataset = (
      await withRetries(ctx, "get dataset", () =>
        client.getJson<{ dataset: DatasetJson }>(`/v1/datasets/${encodeURIComponent(up.datasetId!)}`),
      )
    ).dataset;
    // Only what this key signed over these bytes counts as the dataset.
    try {
      const signed = parseManifestStatement(Buffer.from(dataset.manifestEnvelope?.payload ?? "", "base64"));
      if (signed.owner !== key.id) throw new Error(`its owner is ${signed.owner}, not this key (${key.id})`);
      checkEnvelopeSignatures(dataset.manifestEnvelope!, key.id);
      if (signed.contentDigest !== local.contentDigest || signed.size !== local.size) {
        throw new Error(`it is sha256:${signed.contentDigest} (${signed.size} bytes), not the bytes sent (sha256:${local.contentDigest})`);
      }
      dataset = { ...dataset, manifest: signed.manifest };
    } catch (e) {
      throw new CheckFailed(`the service answered with dataset ${dataset.datasetId}, but ${(e as Error).message}`);
    }
    if (deduplicated) ctx.warn(`the same bytes from this owner are already dataset ${dataset.datasetId}: nothing new anchored`);
  } else {
    throw new CheckFailed(`upload ${id} is ${stateName(up.state)}${up.error ? `: ${up.error}` : ""}`);
  }
  await reportDataset(ctx, dataset, { uploadId: id, deduplicated, log });
}
