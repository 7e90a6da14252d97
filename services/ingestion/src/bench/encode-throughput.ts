/**
 * Encode throughput (stripe → RS parity + n leaf hashes, no storage) against node:crypto
 * SHA-256 of the same bytes, measured in the same process. Part of the ingestion benchmark
 * (issue 4); the end-to-end fields come with the upload path.
 *
 *   node services/ingestion/dist/bench/encode-throughput.js [MiB]   (default 256; BENCH_QUICK=1: 64)
 */
import { createHash, randomFillSync } from "node:crypto";
import { cpus } from "node:os";

import { StripeCodec } from "../coding/reed-solomon.js";
import {
  allocParity,
  allocStripe,
  closeStripeEncoder,
  encodeStripe,
  leafHashWorkers,
  releaseStripeBuffer,
} from "../coding/stripe-encoder.js";

const mib = Number(process.argv[2] ?? (process.env.BENCH_QUICK === "1" ? 64 : 256));
const k = 8;
const m = 4;
const S = 256 * 1024;
const stripeBytes = k * S;
const stripes = Math.ceil((mib * 1024 * 1024) / stripeBytes);
const codec = new StripeCodec(k, m, S);
// A pool of distinct stripes, reused, so generating data is not what we measure. They are the
// buffers the upload path encodes from (allocStripe: shared memory the hash workers read in
// place). The baseline hashes plain-Buffer copies of the same bytes, and encoding those is
// measured too, for information.
const pool = Array.from({ length: 8 }, () => randomFillSync(allocStripe(codec)));
const plainPool = pool.map((b) => Buffer.from(b));
const total = stripes * stripeBytes;

function baselineSha256(): number {
  const t0 = performance.now();
  const h = createHash("sha256");
  for (let i = 0; i < stripes; i++) h.update(plainPool[i % pool.length]!);
  h.digest();
  return total / 2 ** 20 / ((performance.now() - t0) / 1000);
}

/**
 * MiB/s of stripes encoded with `inFlight` stripes at a time, each shard's memory released once
 * "copied out" as the upload path does. `plain`: plain Buffers in, parity in fresh Buffers out.
 */
async function encode(inFlight: number, plain = false): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < stripes) {
      const i = next++;
      if (plain) {
        await encodeStripe(codec, plainPool[i % pool.length]!);
      } else {
        const parity = allocParity(codec);
        await encodeStripe(codec, pool[i % pool.length]!, parity);
        releaseStripeBuffer(parity);
      }
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  return total / 2 ** 20 / ((performance.now() - t0) / 1000);
}

await encode(2); // warm up
await encode(2, true);
const rounds = 3;
const base: number[] = [];
const enc: number[] = [];
const plain: number[] = [];
for (let r = 0; r < rounds; r++) {
  base.push(baselineSha256());
  enc.push(await encode(4));
  plain.push(await encode(4, true));
}
await closeStripeEncoder();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const result = {
  machine: {
    cpus: cpus().length,
    model: cpus()[0]?.model,
    node: process.version,
    uvThreadpool: process.env.UV_THREADPOOL_SIZE ?? "4 (default)",
  },
  inputs: { mib: total / 2 ** 20, k, m, shardSize: S, stripesInFlight: 4, rounds, hashWorkers: leafHashWorkers() },
  encodeMiBps: Math.round(median(enc)),
  baselineSha256MiBps: Math.round(median(base)),
  ratio: Math.round((median(enc) / median(base)) * 100) / 100,
  plainBufferEncodeMiBps: Math.round(median(plain)),
  goal: "encodeMiBps >= 0.8 x baselineSha256MiBps",
};
console.log(JSON.stringify(result, null, 2));
