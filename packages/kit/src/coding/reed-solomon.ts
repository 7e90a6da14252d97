/**
 * The one place DeAI OS touches its Reed-Solomon codec: systematic RS over GF(2^8) from the
 * native addon @ronomon/reed-solomon (encodes at GB/s on libuv's thread pool, off the event
 * loop). Ingestion encodes and reads with it, da-sampler's repair rebuilds lost slots with it.
 * Swapping codecs means changing this module only; the layout it produces is fixed by
 * ARCHITECTURE.md (k data shards then m parity shards per stripe).
 */
import { createRequire } from "node:module";

import { InvalidArgumentError } from "../errors.js";

interface NativeCodec {
  MAX_K: number;
  MAX_M: number;
  create(k: number, m: number): unknown;
  encode(
    context: unknown,
    sources: number,
    targets: number,
    buffer: Buffer,
    bufferOffset: number,
    bufferSize: number,
    parity: Buffer,
    parityOffset: number,
    paritySize: number,
    callback: (error?: Error) => void,
  ): void;
}

let native: NativeCodec | undefined;

/** Loads the addon once and proves it computes: a missing or broken build fails loudly here. */
export function nativeCodec(): NativeCodec {
  if (native) return native;
  let codec: NativeCodec;
  try {
    codec = createRequire(import.meta.url)("@ronomon/reed-solomon") as NativeCodec;
  } catch (e) {
    throw new Error(
      "the native Reed-Solomon addon (@ronomon/reed-solomon) did not load: it is built by its install script, which npm must be allowed to run " +
        '(package.json "allowScripts"); run `npm ci` again with python3, make and g++ installed',
      { cause: e },
    );
  }
  if (typeof codec.create !== "function" || typeof codec.encode !== "function")
    throw new Error("@ronomon/reed-solomon loaded but has no encode()");
  native = codec;
  return codec;
}

/** Largest k and m the codec supports. */
export function codecLimits(): { maxK: number; maxM: number } {
  const c = nativeCodec();
  return { maxK: c.MAX_K, maxM: c.MAX_M };
}

/** Checks (k, m, shardSize) against the codec's limits; throws InvalidArgumentError naming the bad value. */
export function checkCodingParameters(k: number, m: number, shardSize: number): void {
  const { maxK, maxM } = codecLimits();
  if (!Number.isInteger(k) || k < 1 || k > maxK) throw new InvalidArgumentError(`k must be an integer from 1 to ${maxK}, got ${k}`);
  if (!Number.isInteger(m) || m < 1 || m > maxM) throw new InvalidArgumentError(`m must be an integer from 1 to ${maxM}, got ${m}`);
  if (!Number.isInteger(shardSize) || shardSize < 8 || shardSize % 8 !== 0 || shardSize > 16 * 1024 * 1024) {
    throw new InvalidArgumentError(`shard size must be a multiple of 8 bytes from 8 B to 16 MiB, got ${shardSize}`);
  }
}

/** Erasure coder for one (k, m, shardSize); safe to use concurrently. */
export class StripeCodec {
  private readonly context: unknown;

  constructor(
    readonly k: number,
    readonly m: number,
    readonly shardSize: number,
  ) {
    checkCodingParameters(k, m, shardSize);
    this.context = nativeCodec().create(k, m);
  }

  /** Computes the m parity shards of a stripe whose k data shards lie contiguously in `data` (k × shardSize bytes). */
  encode(data: Buffer): Promise<Buffer> {
    const parity = Buffer.allocUnsafe(this.m * this.shardSize);
    return this.encodeInto(data, parity).then(() => parity);
  }

  /**
   * Like encode(), but writes the m parity shards into `parity` (m × shardSize bytes, e.g. a
   * reused or SharedArrayBuffer-backed buffer). Neither buffer may be touched until it settles.
   */
  encodeInto(data: Buffer, parity: Buffer): Promise<void> {
    if (data.length !== this.k * this.shardSize)
      throw new InvalidArgumentError(`a stripe is ${this.k * this.shardSize} bytes, got ${data.length}`);
    if (parity.length !== this.m * this.shardSize)
      throw new InvalidArgumentError(`a stripe's parity is ${this.m * this.shardSize} bytes, got ${parity.length}`);
    let sources = 0;
    for (let i = 0; i < this.k; i++) sources |= 1 << i;
    let targets = 0;
    for (let i = this.k; i < this.k + this.m; i++) targets |= 1 << i;
    return this.run(sources, targets, data, parity);
  }

  /**
   * Rebuilds a stripe from any k of its n = k + m shards (undefined = missing). Returns all
   * n shards; the ones given are returned as they were.
   */
  async reconstruct(shards: readonly (Buffer | undefined)[]): Promise<Buffer[]> {
    const n = this.k + this.m;
    if (shards.length !== n) throw new InvalidArgumentError(`a stripe has ${n} shard slots, got ${shards.length}`);
    const present = shards.filter((s) => s !== undefined).length;
    if (present < this.k) throw new InvalidArgumentError(`need at least ${this.k} of ${n} shards to rebuild a stripe, have ${present}`);
    const data = Buffer.alloc(this.k * this.shardSize);
    const parity = Buffer.alloc(this.m * this.shardSize);
    let sources = 0;
    let targets = 0;
    shards.forEach((s, i) => {
      if (s === undefined) {
        targets |= 1 << i;
        return;
      }
      if (s.length !== this.shardSize) throw new InvalidArgumentError(`shard ${i} is ${s.length} bytes, expected ${this.shardSize}`);
      sources |= 1 << i;
      s.copy(i < this.k ? data : parity, (i < this.k ? i : i - this.k) * this.shardSize);
    });
    if (targets !== 0) await this.run(sources, targets, data, parity);
    return Array.from({ length: n }, (_, i) =>
      i < this.k
        ? data.subarray(i * this.shardSize, (i + 1) * this.shardSize)
        : parity.subarray((i - this.k) * this.shardSize, (i - this.k + 1) * this.shardSize),
    );
  }

  /**
   * Rebuilds a stripe in place: `stripe` holds its n shards (k data then m parity, n × shardSize
   * bytes, e.g. laid out by the reads themselves); the slots in `present` (at least k) hold their
   * bytes, every other slot is rebuilt where it lies. Nothing is copied or allocated; `stripe`
   * may not be touched until it settles.
   */
  rebuildInPlace(stripe: Buffer, present: readonly number[]): Promise<void> {
    const n = this.k + this.m;
    if (stripe.length !== n * this.shardSize)
      throw new InvalidArgumentError(`a stripe is ${n * this.shardSize} bytes, got ${stripe.length}`);
    let sources = 0;
    for (const i of present) {
      if (!Number.isInteger(i) || i < 0 || i >= n) throw new InvalidArgumentError(`a stripe has slots 0 to ${n - 1}, got ${i}`);
      sources |= 1 << i;
    }
    let count = 0;
    for (let i = 0; i < n; i++) if (sources & (1 << i)) count++;
    if (count < this.k) throw new InvalidArgumentError(`need at least ${this.k} of ${n} shards to rebuild a stripe, have ${count}`);
    const targets = ((1 << n) - 1) & ~sources;
    if (targets === 0) return Promise.resolve();
    const split = this.k * this.shardSize;
    return this.run(sources, targets, stripe.subarray(0, split), stripe.subarray(split));
  }

  private run(sources: number, targets: number, data: Buffer, parity: Buffer): Promise<void> {
    return new Promise((resolve, reject) =>
      nativeCodec().encode(this.context, sources, targets, data, 0, data.length, parity, 0, parity.length, (error) =>
        error ? reject(error) : resolve(),
      ),
    );
  }
}
