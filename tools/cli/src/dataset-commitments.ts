// A dataset's commitments recomputed from its bytes (ARCHITECTURE.md, "Data layout and
// commitments"): contentDigest = SHA-256 of the bytes, and shardRoot = the RFC 6962 root over
// leaf = SHA-256(0x00 ‖ shard) of every shard, (stripe, slot) order, where each stripe is k data
// shards of S bytes (the last stripe zero-padded) plus m parity shards from @deai/proofs'
// ErasureCodec, byte-compatible with the service's native codec.
import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";

import { DATASET_CODEC_ID, ErasureCodec, shardLeaf, shardRoot } from "@deai/proofs";

import { CheckFailed } from "./cli.js";

/** The erasure codec every manifest names (the one codec). */
export const CODEC_ID = DATASET_CODEC_ID;

export interface Geometry {
  readonly k: number;
  readonly m: number;
  readonly shardSize: number;
}

export interface Commitments {
  /** Lowercase hex SHA-256 of the bytes. */
  readonly contentDigest: string;
  readonly size: number;
  /** With a geometry: the shardRoot and the number of stripes. */
  readonly shardRoot?: Uint8Array;
  readonly stripes?: number;
}

/** contentDigest, size and, given a geometry, shardRoot of a byte stream, in one pass. */
export class CommitmentHasher {
  private readonly hash: Hash = createHash("sha256");
  private size = 0;
  private readonly stripe?: {
    readonly codec: ErasureCodec;
    readonly buffer: Buffer;
    /** The leaf table so far (32 bytes per shard); its root is proofs' shardRoot. */
    readonly leaves: Uint8Array[];
    fill: number;
    count: number;
  };

  constructor(readonly geometry?: Geometry) {
    if (geometry) {
      this.stripe = {
        codec: new ErasureCodec(geometry.k, geometry.m),
        buffer: Buffer.alloc(geometry.k * geometry.shardSize),
        leaves: [],
        fill: 0,
        count: 0,
      };
    }
  }

  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    const s = this.stripe;
    if (!s) return;
    for (let at = 0; at < chunk.length;) {
      const take = Math.min(chunk.length - at, s.buffer.length - s.fill);
      s.buffer.set(chunk.subarray(at, at + take), s.fill);
      s.fill += take;
      at += take;
      if (s.fill === s.buffer.length) this.encodeStripe();
    }
  }

  /** The commitments of everything written (the hasher is spent). */
  digest(): Commitments {
    const s = this.stripe;
    const contentDigest = this.hash.digest("hex");
    if (!s) return { contentDigest, size: this.size };
    if (s.fill > 0) {
      s.buffer.fill(0, s.fill);
      this.encodeStripe();
    }
    return { contentDigest, size: this.size, shardRoot: shardRoot(s.leaves), stripes: s.count };
  }

  private encodeStripe(): void {
    const s = this.stripe!;
    const S = this.geometry!.shardSize;
    const data = Array.from({ length: this.geometry!.k }, (_, j) => s.buffer.subarray(j * S, (j + 1) * S));
    for (const shard of [...data, ...s.codec.encode(data)]) {
      s.leaves.push(shardLeaf(shard));
    }
    s.fill = 0;
    s.count++;
  }
}

/** Reads a file once and returns its commitments; `onBytes` sees the progress. */
export async function fileCommitments(path: string, geometry?: Geometry, onBytes?: (n: number) => void): Promise<Commitments> {
  const h = new CommitmentHasher(geometry);
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) {
    h.update(chunk as Buffer);
    onBytes?.((chunk as Buffer).length);
  }
  return h.digest();
}

/** RFC 9530 Content-Digest (sha-256) of bytes [start, end) of a file, in one read. */
export async function fileRangeDigest(path: string, start: number, end: number): Promise<string> {
  const h = createHash("sha256");
  if (end > start)
    for await (const chunk of createReadStream(path, { start, end: end - 1, highWaterMark: 1024 * 1024 })) h.update(chunk as Buffer);
  return `sha-256=:${h.digest("base64")}:`;
}

/**
 * Checks the data shards of a download against the leaf table: shard q (stripe ⌊q/k⌋, slot
 * q mod k) is bytes [q·S, (q+1)·S) of the dataset, zero-padded past its end.
 */
export class ShardChecker {
  private readonly shard: Buffer;
  private fill = 0;

  constructor(
    private readonly st: Geometry,
    private readonly leaves: Buffer,
    /** Offset of the next shard to check (a multiple of S). */
    public at: number,
  ) {
    this.shard = Buffer.alloc(st.shardSize);
  }

  /** Feeds bytes from `at + fill`; returns each completed, checked shard with its offset. */
  push(bytes: Uint8Array, last: boolean): { offset: number; bytes: Buffer }[] {
    const done: { offset: number; bytes: Buffer }[] = [];
    const S = this.st.shardSize;
    for (let i = 0; i < bytes.length || (last && this.fill > 0);) {
      const take = Math.min(bytes.length - i, S - this.fill);
      this.shard.set(bytes.subarray(i, i + take), this.fill);
      this.fill += take;
      i += take;
      if (this.fill < S && !(last && i >= bytes.length)) continue;
      const real = this.fill;
      this.shard.fill(0, real);
      const q = this.at / S;
      const stripe = Math.floor(q / this.st.k);
      const leaf = stripe * (this.st.k + this.st.m) + (q % this.st.k);
      const expected = this.leaves.subarray(leaf * 32, leaf * 32 + 32);
      const got = Buffer.from(shardLeaf(this.shard));
      if (!got.equals(expected)) {
        throw new CheckFailed(
          `shard (stripe ${stripe}, slot ${q % this.st.k}) at bytes ${this.at}-${this.at + real - 1} does not match its leaf in the signed shardRoot's tree`,
        );
      }
      done.push({ offset: this.at, bytes: Buffer.from(this.shard.subarray(0, real)) });
      this.at += real;
      this.fill = 0;
    }
    return done;
  }

  /** Drops a partly received shard (before resuming from `at`). */
  reset(): void {
    this.fill = 0;
  }
}
