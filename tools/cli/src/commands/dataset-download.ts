// deai dataset download <datasetId> [-o FILE|-] [--range FIRST-LAST]
//
// Nothing the service says is taken on trust: the manifest comes from the owner-signed statement.
// A full download is hashed as it streams and must equal its contentDigest and size. A range is
// widened to whole data shards, and each shard is checked against the leaf table, whose RFC 6962
// root must be the signed shardRoot. A break mid-stream resumes with a Range request. The bytes
// go to FILE.partial and are renamed into place only once they check out.
import { createHash } from "node:crypto";
import { once } from "node:events";
import { createWriteStream, existsSync, type WriteStream } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { basename } from "node:path";

import { checkEnvelopeSignatures, parseManifestStatement, shardRoot, type ManifestStatement } from "@deai/proofs";

import { ApiError, Unreachable, type ApiClient } from "../api-client.js";
import { CheckFailed, str, UsageError, type Context } from "../cli.js";
import { u64, type DatasetJson } from "../dataset-api.js";
import { ShardChecker } from "../dataset-commitments.js";
import { formatBytes, Progress } from "../progress.js";
import { backoffMs, retriesOf, sleep } from "../retry.js";

function parseRange(text: string, size: number): { start: number; end: number } {
  const m = /^(\d+)-(\d*)$/.exec(text);
  if (!m) throw new UsageError("--range must be FIRST-LAST or FIRST- (byte offsets, LAST inclusive)");
  const start = Number(m[1]);
  const end = m[2] === "" ? size : Number(m[2]) + 1;
  if (end <= start) throw new UsageError(`--range ${text}: LAST must not be before FIRST`);
  if (start >= size) throw new CheckFailed(`--range ${text}: the dataset has ${size} bytes`);
  return { start, end: Math.min(end, size) };
}

async function write(out: WriteStream | NodeJS.WriteStream, chunk: Uint8Array): Promise<void> {
  if (!out.write(chunk)) await once(out, "drain");
}

/** The leaf table, checked against the signed shardRoot. */
async function checkedLeaves(client: ApiClient, id: string, st: ManifestStatement): Promise<Buffer> {
  const res = await client.getStream(`/v1/datasets/${encodeURIComponent(id)}/leaves`);
  const leaves = Buffer.from(await res.arrayBuffer());
  const count = st.stripes * (st.k + st.m);
  if (leaves.length !== count * 32) throw new CheckFailed(`the leaf table has ${leaves.length / 32} leaves; the manifest needs ${count}`);
  const leafList = Array.from({ length: count }, (_, i) => leaves.subarray(i * 32, i * 32 + 32));
  if (Buffer.from(shardRoot(leafList)).toString("hex") !== st.shardRoot)
    throw new CheckFailed("the leaf table does not hash to the signed shardRoot");
  return leaves;
}

export async function download(ctx: Context, client: ApiClient): Promise<void> {
  const [id, ...rest] = ctx.positionals;
  if (id === undefined || rest.length > 0) throw new UsageError("dataset download takes one dataset id");
  const outArg = str(ctx, "out");
  const rangeArg = str(ctx, "range");
  if (outArg === "-" && ctx.json) throw new UsageError("--json prints a JSON document on stdout; with -o - stdout carries the bytes");
  const { dataset } = await client.getJson<{ dataset: DatasetJson }>(`/v1/datasets/${encodeURIComponent(id)}`);
  // What the owner signed: the statement in the envelope, checked against its owner's key.
  const envelope = dataset.manifestEnvelope;
  if (!envelope) throw new CheckFailed(`dataset ${id} has no signed manifest envelope`);
  let st;
  try {
    st = parseManifestStatement(Buffer.from(envelope.payload, "base64"));
    checkEnvelopeSignatures(envelope, st.owner);
  } catch (e) {
    throw new CheckFailed(`dataset ${id}: the signed manifest does not check out: ${(e as Error).message}`);
  }
  if (dataset.manifest?.contentDigest?.hex !== st.contentDigest || u64(dataset.manifest.size) !== st.size) {
    throw new CheckFailed(`dataset ${id}: the service's manifest is not the one its owner signed`);
  }
  const { start, end } = rangeArg === undefined ? { start: 0, end: st.size } : parseRange(rangeArg, st.size);
  const full = start === 0 && end === st.size;
  const target = outArg ?? basename(st.manifest.name || id);
  if (outArg === undefined && (target === "" || target === "." || target === ".." || existsSync(target))) {
    throw new UsageError(`${target} exists (or is not a file name); choose the output with -o FILE (or -o - for stdout)`);
  }
  const toStdout = target === "-";
  const partial = `${target}.partial`;
  const out = toStdout ? process.stdout : createWriteStream(partial);
  const hash = createHash("sha256");
  const progress = new Progress("download", end - start);
  // A range: fetch whole data shards and check each one.
  const S = st.shardSize;
  const checker = full ? undefined : new ShardChecker(st, await checkedLeaves(client, id, st), Math.floor(start / S) * S);
  const fetchEnd = full ? end : Math.min(st.size, Math.ceil(end / S) * S);
  let at = checker?.at ?? start;
  let failures = 0;
  const retries = retriesOf(ctx);
  const started = Date.now();
  const emit = async (offset: number, bytes: Uint8Array): Promise<void> => {
    const piece = bytes.subarray(Math.max(0, start - offset), Math.max(0, end - offset));
    if (piece.length === 0) return;
    hash.update(piece);
    await write(out, piece);
    progress.set(Math.min(end, offset + bytes.length) - start);
  };
  try {
    while (at < fetchEnd) {
      try {
        const whole = at === 0 && fetchEnd === st.size;
        const res = await client.getStream(
          `/v1/datasets/${encodeURIComponent(id)}/content`,
          whole ? {} : { range: `bytes=${at}-${fetchEnd - 1}` },
        );
        if (!whole && res.status !== 206)
          throw new CheckFailed(`asked for bytes ${at}-${fetchEnd - 1}, got HTTP ${res.status} without a range`);
        if (res.headers.get("x-deai-content-digest") !== `sha256:${st.contentDigest}`) {
          throw new CheckFailed(`the service serves content ${res.headers.get("x-deai-content-digest")}, not sha256:${st.contentDigest}`);
        }
        const body = (res.body as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
        for (;;) {
          let next: IteratorResult<Uint8Array>;
          try {
            next = await body.next();
          } catch (e) {
            throw client.unreachable(e as Error);
          }
          if (next.done) break;
          const take = next.value.subarray(0, Math.max(0, fetchEnd - at));
          if (take.length === 0) continue;
          const from = at;
          at += take.length;
          if (!checker) await emit(from, take);
          else for (const shard of checker.push(take, at === fetchEnd)) await emit(shard.offset, shard.bytes);
        }
        if (at < fetchEnd) throw new Unreachable(`the stream ended at byte ${at} of ${fetchEnd}`);
        failures = 0;
      } catch (e) {
        const retry = e instanceof Unreachable || (e instanceof ApiError && e.status >= 500);
        if (!retry || ++failures > retries) throw e;
        if (checker) {
          checker.reset();
          at = checker.at;
        }
        const wait = backoffMs(failures);
        progress.clear();
        ctx.warn(
          `download broke at byte ${at}: ${(e as Error).message}; resuming in ${(wait / 1000).toFixed(1)} s (${failures}/${retries})`,
        );
        await sleep(wait);
      }
    }
    progress.finish();
    const got = hash.digest("hex");
    if (full && got !== st.contentDigest) {
      throw new CheckFailed(
        `DOWNLOAD CORRUPT: the ${at} bytes received hash to sha256:${got}, but the manifest's contentDigest is sha256:${st.contentDigest}`,
      );
    }
    if (!toStdout) {
      await new Promise<void>((ok, fail) => (out as WriteStream).end((e?: Error | null) => (e ? fail(e) : ok())));
      await rename(partial, target);
    }
    const s = (Date.now() - started) / 1000;
    const what = full
      ? `sha256 ${got} = contentDigest`
      : `bytes ${start}-${end - 1} of ${st.size}, every data shard they lie in checked against the signed shardRoot (sha256 ${got})`;
    ctx.warn(`downloaded and verified ${formatBytes(end - start)} in ${s.toFixed(1)} s: ${what}`);
    ctx.emit({
      ok: true,
      datasetId: id,
      out: target,
      start,
      end,
      bytes: end - start,
      sha256: got,
      verified: full ? "contentDigest" : "shardRoot",
      contentDigest: st.contentDigest,
    });
    if (!toStdout)
      ctx.say(`${target}: ${end - start} bytes, sha256 ${got}${full ? " (= contentDigest)" : " (shards checked against shardRoot)"}`);
  } catch (e) {
    progress.clear();
    if (!toStdout) {
      (out as WriteStream).destroy();
      await rm(partial, { force: true });
    }
    throw e;
  }
}
