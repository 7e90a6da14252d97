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
import { encodeStripe } from "../coding/stripe-encoder.js";

const mib = Number(process.argv[2] ?? (process.env.BENCH_QUICK === "1" ? 64 : 256));
const k = 8;
const m = 4;
const S = 256 * 1024;
const stripeBytes = k * S;
const stripes = Math.ceil((mib * 1024 * 1024) / stripeBytes);
// A pool of distinct stripes, reused, so generating data is not what we measure.
const pool = Array.from({ length: 8 }, () => randomFillSync(Buffer.allocUnsafe(stripeBytes)));
const total = stripes * stripeBytes;

function baselineSha256(): number {
  const t0 = performance.now();
  const h = createHash("sha256");
  for (let i = 0; i < stripes; i++) h.update(pool[i % pool.length]!);
  h.digest();
  return total / 2 ** 20 / ((performance.now() - t0) / 1000);
}

async function encode(inFlight: number): Promise<number> {
  const codec = new StripeCodec(k, m, S);
  const t0 = performance.now();
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < stripes) {
      const i = next++;
      await encodeStripe(codec, pool[i % pool.length]!);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  return total / 2 ** 20 / ((performance.now() - t0) / 1000);
}

await encode(2); // warm up
const rounds = 3;
const base: number[] = [];
const enc: number[] = [];
for (let r = 0; r < rounds; r++) {
  base.push(baselineSha256());
  enc.push(await encode(4));
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const result = {
  machine: {
    cpus: cpus().length,
    model: cpus()[0]?.model,
    node: process.version,
    uvThreadpool: process.env.UV_THREADPOOL_SIZE ?? "4 (default)",
  },
  inputs: { mib: total / 2 ** 20, k, m, shardSize: S, stripesInFlight: 4, rounds },
  encodeMiBps: Math.round(median(enc)),
  baselineSha256MiBps: Math.round(median(base)),
  ratio: Math.round((median(enc) / median(base)) * 100) / 100,
  goal: "encodeMiBps >= 0.8 x baselineSha256MiBps",
};
console.log(JSON.stringify(result, null, 2));
