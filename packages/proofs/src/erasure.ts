/**
 * Systematic Reed-Solomon erasure coding, byte-compatible with the native addon
 * @ronomon/reed-solomon v6 that the ingestion service encodes with, so that a verifier (the
 * CLI, a browser) can recompute parity and rebuild lost shards and get the same bytes.
 *
 * The addon is not a byte-wise GF(2^8) code. For each (k, m) it uses a Cauchy-derived
 * generator over GF(2^w), w ∈ {2, 4, 8}, with row 0 all ones (parity 0 is the XOR of the data),
 * chosen by its `search()` for fewest ones in the binary expansion (PARAMETERS below: w, field
 * polynomial, Cauchy offsets). Symbols are bit-sliced: a shard is a run of superpackets of
 * w × chunkSize bytes, and bit c of each symbol lives in packet c of its superpacket, so a
 * parity packet is the XOR of the data packets its generator's bit matrix selects.
 * chunkSize = shardSize / w, halved while it is above 64, even and (1 + k·w)·chunkSize > 1 MiB;
 * it changes the parity bytes, so it is part of the format.
 */
import { ProofError } from "./errors.js";

/** Largest number of data shards the codec supports (the addon's MAX_K). */
export const ERASURE_MAX_K = 24;
/** Largest number of parity shards the codec supports (the addon's MAX_M). */
export const ERASURE_MAX_M = 6;
/** Shard sizes must be a positive multiple of this many bytes (as the addon requires). */
export const ERASURE_SHARD_ALIGNMENT = 8;

/**
 * PARAMETERS[k - 1][m - 1] = [w, p, x, y, ones], copied from the addon's binding.c: field
 * GF(2^w) with reduction polynomial x^w + p, Cauchy column offset x and row offset y (-1 when
 * m ≤ 2, which uses a fixed construction), and the number of ones in the resulting bit matrix
 * (checked when a codec is built, as the addon asserts it).
 */
// prettier-ignore
const PARAMETERS: readonly (readonly (readonly [number, number, number, number, number])[])[] = [
  [[2, 7, -1, -1, 2], [2, 7, -1, -1, 4], [2, 7, 0, 1, 6], [4, 19, 0, 1, 16], [4, 19, 0, 1, 20], [4, 19, 0, 1, 24]], // k = 1
  [[2, 7, -1, -1, 4], [2, 7, -1, -1, 9], [4, 19, 0, 4, 28], [4, 19, 0, 5, 40], [4, 19, 2, 9, 51], [4, 19, 4, 10, 62]], // k = 2
  [[2, 7, -1, -1, 6], [4, 19, -1, -1, 26], [4, 19, 0, 9, 44], [4, 19, 1, 8, 63], [4, 19, 1, 9, 82], [4, 19, 0, 9, 101]], // k = 3
  [[4, 19, -1, -1, 16], [4, 19, -1, -1, 36], [4, 19, 0, 9, 63], [4, 19, 3, 11, 89], [4, 19, 3, 11, 116], [4, 19, 11, 4, 145]], // k = 4
  [[4, 19, -1, -1, 20], [4, 19, -1, -1, 47], [4, 19, 4, 13, 82], [4, 19, 3, 12, 118], [4, 19, 0, 9, 152], [4, 19, 0, 9, 185]], // k = 5
  [[4, 19, -1, -1, 24], [4, 19, -1, -1, 58], [4, 19, 2, 12, 102], [4, 19, 2, 12, 144], [4, 19, 0, 9, 186], [4, 19, 0, 9, 231]], // k = 6
  [[4, 19, -1, -1, 28], [4, 19, -1, -1, 71], [4, 19, 1, 13, 123], [4, 19, 2, 12, 174], [4, 19, 0, 9, 226], [4, 19, 7, 0, 277]], // k = 7
  [[4, 19, -1, -1, 32], [4, 19, -1, -1, 84], [4, 19, 2, 13, 142], [4, 19, 2, 12, 205], [4, 19, 0, 9, 265], [4, 19, 0, 8, 328]], // k = 8
  [[4, 19, -1, -1, 36], [4, 19, -1, -1, 97], [4, 19, 1, 13, 162], [4, 19, 2, 12, 237], [4, 19, 0, 9, 308], [4, 19, 1, 10, 376]], // k = 9
  [[4, 19, -1, -1, 40], [4, 19, -1, -1, 111], [4, 19, 1, 13, 186], [4, 19, 0, 12, 268], [4, 19, 0, 11, 347], [4, 19, 0, 10, 426]], // k = 10
  [[4, 19, -1, -1, 44], [4, 19, -1, -1, 125], [4, 19, 0, 13, 211], [4, 19, 0, 12, 300], [4, 19, 0, 11, 390], [8, 135, 58, 188, 1401]], // k = 11
  [[4, 19, -1, -1, 48], [4, 19, -1, -1, 139], [4, 19, 3, 0, 234], [4, 19, 0, 12, 334], [8, 113, 24, 208, 1269], [8, 135, 57, 188, 1577]], // k = 12
  [[4, 19, -1, -1, 52], [4, 19, -1, -1, 155], [4, 19, 0, 13, 261], [8, 135, 59, 189, 1037], [8, 113, 27, 236, 1393], [8, 113, 27, 236, 1733]], // k = 13
  [[4, 19, -1, -1, 56], [4, 19, -1, -1, 171], [8, 169, 4, 252, 777], [8, 135, 58, 189, 1121], [8, 135, 58, 189, 1508], [8, 135, 58, 188, 1880]], // k = 14
  [[4, 19, -1, -1, 60], [8, 135, -1, -1, 353], [8, 113, 24, 209, 836], [8, 135, 58, 189, 1225], [8, 101, 28, 232, 1644], [8, 113, 120, 241, 2037]], // k = 15
  [[8, 29, -1, -1, 128], [8, 135, -1, -1, 380], [8, 113, 22, 213, 901], [8, 113, 22, 212, 1324], [8, 101, 28, 232, 1765], [8, 101, 28, 232, 2195]], // k = 16
  [[8, 29, -1, -1, 136], [8, 135, -1, -1, 407], [8, 113, 22, 213, 960], [8, 135, 58, 189, 1423], [8, 101, 27, 232, 1880], [8, 101, 27, 232, 2343]], // k = 17
  [[8, 29, -1, -1, 144], [8, 135, -1, -1, 434], [8, 113, 24, 213, 1027], [8, 113, 22, 212, 1513], [8, 195, 8, 32, 2019], [8, 113, 205, 126, 2500]], // k = 18
  [[8, 29, -1, -1, 152], [8, 135, -1, -1, 462], [8, 113, 22, 213, 1086], [8, 113, 23, 212, 1604], [8, 195, 7, 32, 2131], [8, 195, 3, 60, 2654]], // k = 19
  [[8, 29, -1, -1, 160], [8, 135, -1, -1, 490], [8, 113, 22, 213, 1147], [8, 113, 22, 212, 1695], [8, 195, 4, 238, 2270], [8, 113, 21, 233, 2816]], // k = 20
  [[8, 29, -1, -1, 168], [8, 135, -1, -1, 518], [8, 113, 21, 213, 1225], [8, 113, 21, 212, 1801], [8, 195, 3, 60, 2395], [8, 195, 3, 60, 2980]], // k = 21
  [[8, 29, -1, -1, 176], [8, 135, -1, -1, 546], [8, 113, 20, 213, 1292], [8, 113, 21, 212, 1906], [8, 195, 35, 28, 2512], [8, 195, 3, 60, 3135]], // k = 22
  [[8, 29, -1, -1, 184], [8, 135, -1, -1, 574], [8, 113, 19, 213, 1366], [8, 113, 19, 212, 2008], [8, 195, 3, 238, 2652], [8, 113, 205, 126, 3291]], // k = 23
  [[8, 29, -1, -1, 192], [8, 135, -1, -1, 603], [8, 113, 18, 213, 1437], [8, 195, 125, 91, 2110], [8, 195, 3, 238, 2787], [8, 195, 42, 225, 3466]], // k = 24
];

/** GF(2^w) by log/exp tables, built exactly as the addon's create_tables(). */
class Field {
  /** 2^w - 1, the order of the multiplicative group. */
  readonly order: number;
  private readonly log: Int32Array;
  private readonly exp: Int32Array;

  constructor(
    readonly w: number,
    polynomial: number,
  ) {
    const size = 1 << w;
    this.order = size - 1;
    this.log = new Int32Array(size).fill(this.order);
    this.exp = new Int32Array(size);
    let b = 1;
    for (let a = 0; a < this.order; a++) {
      this.log[b] = a;
      this.exp[a] = b;
      b <<= 1;
      if (b & size) b = (b ^ polynomial) & this.order;
    }
  }

  mul(a: number, b: number): number {
    if (a === 0 || b === 0) return 0;
    return this.exp[(this.log[a]! + this.log[b]!) % this.order]!;
  }

  div(a: number, b: number): number {
    if (b === 0) throw new Error("GF division by zero");
    if (a === 0) return 0;
    return this.exp[(this.log[a]! + this.order - this.log[b]!) % this.order]!;
  }

  /** Ones in the w×w binary matrix of multiplication by n (the addon's `bit` table). */
  ones(n: number): number {
    let count = 0;
    for (let r = 0; r < this.w; r++) {
      for (let c = 0; c < this.w; c++) if (n & (1 << c)) count++;
      n = this.mul(n, 2);
    }
    return count;
  }
}

/** The m×k generator rows below the identity, built exactly as the addon's create_matrix(). */
function generatorMatrix(field: Field, k: number, m: number, x: number, y: number): number[][] {
  const bit = (n: number): number => field.ones(n);
  const rows: number[][] = [Array.from({ length: k }, () => 1)];
  if (m === 2) {
    // Row 1: the nonzero elements in order of fewest ones (ties by value), as the addon's `min` table.
    const byOnes = Array.from({ length: field.order }, (_, i) => i + 1).sort((a, b) => bit(a) - bit(b) || a - b);
    rows.push(byOnes.slice(0, k));
  } else if (m > 2) {
    const cauchy = Array.from({ length: m }, (_, r) => Array.from({ length: k }, (_, c) => field.div(1, (y + r) ^ (x + c))));
    const first = cauchy[0]!;
    for (let r = 1; r < m; r++) {
      const row = cauchy[r]!.map((v, c) => field.div(v, first[c]!));
      // Divide the row by the entry that leaves the fewest ones, if any beats the row as it is.
      let best = row.reduce((sum, v) => sum + bit(v), 0);
      let divisor = -1;
      for (const candidate of row) {
        const ones = row.reduce((sum, v) => sum + bit(field.div(v, candidate)), 0);
        if (ones < best) {
          best = ones;
          divisor = candidate;
        }
      }
      rows.push(divisor < 0 ? row : row.map((v) => field.div(v, divisor)));
    }
  }
  return rows;
}

/** Inverts a square matrix over the field (Gauss-Jordan); the rows given are a valid decoding, so it is invertible. */
function invert(field: Field, matrix: readonly (readonly number[])[]): number[][] {
  const n = matrix.length;
  const a = matrix.map((row) => [...row]);
  const inv = matrix.map((_, r) => Array.from({ length: n }, (_, c): number => (r === c ? 1 : 0)));
  for (let c = 0; c < n; c++) {
    let p = c;
    while (p < n && a[p]![c] === 0) p++;
    if (p === n) throw new Error("erasure decoding matrix is singular");
    [a[c], a[p]] = [a[p]!, a[c]!];
    [inv[c], inv[p]] = [inv[p]!, inv[c]!];
    const pivotRow = a[c]!;
    const pivotInv = inv[c]!;
    const scale = field.div(1, pivotRow[c]!);
    for (let j = 0; j < n; j++) {
      pivotRow[j] = field.mul(pivotRow[j]!, scale);
      pivotInv[j] = field.mul(pivotInv[j]!, scale);
    }
    for (let r = 0; r < n; r++) {
      const f = r === c ? 0 : a[r]![c]!;
      if (f === 0) continue;
      for (let j = 0; j < n; j++) {
        a[r]![j]! ^= field.mul(f, pivotRow[j]!);
        inv[r]![j]! ^= field.mul(f, pivotInv[j]!);
      }
    }
  }
  return inv;
}

/**
 * How to build one shard's w packets from k source shards: target packet b is the XOR of the
 * source packets listed in plan[b], each written as shard · w + packet. Packet a of a source
 * with coefficient x is listed under b when bit b of x · 2^a is set (the addon's bit matrix).
 */
type PacketPlan = readonly Int32Array[];

function packetPlan(field: Field, coefficients: readonly number[]): PacketPlan {
  const w = field.w;
  const plan: number[][] = Array.from({ length: w }, () => []);
  coefficients.forEach((coefficient, shard) => {
    let x = coefficient;
    for (let packet = 0; packet < w; packet++) {
      for (let b = 0; b < w; b++) if (x & (1 << b)) plan[b]!.push(shard * w + packet);
      x = field.mul(x, 2);
    }
  });
  return plan.map((sources) => Int32Array.from(sources));
}

/** Packet size for a shard size, as the addon's dot_chunk_size() (which keeps a superpacket's working set in cache). */
function chunkSize(w: number, k: number, shardSize: number): number {
  let chunk = shardSize / w;
  while (chunk > 64 && chunk % 2 === 0 && (1 + k * w) * chunk > 1048576) chunk /= 2;
  return chunk;
}

/** The shard itself if it can be viewed as 32-bit words, else an aligned copy (a caller's subarray may start anywhere). */
function wordAligned(shard: Uint8Array): Uint8Array {
  return shard.byteOffset % 4 === 0 ? shard : shard.slice();
}

const words = (shard: Uint8Array): Int32Array => new Int32Array(shard.buffer, shard.byteOffset, shard.length >>> 2);

/**
 * A new shard: the packet plan applied to k sources of `shardSize` bytes, word-aligned (see
 * wordAligned), one superpacket at a time.
 */
function applyPlan(plan: PacketPlan, w: number, k: number, sources: readonly Uint8Array[], shardSize: number): Uint8Array {
  const target = new Uint8Array(shardSize);
  const chunk = chunkSize(w, k, shardSize);
  if (chunk % 4 === 0) applyPlanWords(plan, w, chunk >>> 2, sources.map(words), words(target));
  else applyPlanBytes(plan, w, chunk, sources, target);
  return target;
}

function applyPlanWords(plan: PacketPlan, w: number, chunk: number, sources: readonly Int32Array[], target: Int32Array): void {
  const superpacket = w * chunk;
  for (let base = 0; base < target.length; base += superpacket) {
    for (let b = 0; b < w; b++) {
      const t = base + b * chunk;
      const list = plan[b]!;
      if (list.length === 0) {
        target.fill(0, t, t + chunk);
        continue;
      }
      const first = list[0]!;
      const s0 = base + (first % w) * chunk;
      target.set(sources[(first / w) | 0]!.subarray(s0, s0 + chunk), t);
      // Two sources per pass halves the reads and writes of the target.
      let i = 1;
      for (; i + 1 < list.length; i += 2) {
        const p = list[i]!;
        const q = list[i + 1]!;
        const sp = sources[(p / w) | 0]!;
        const sq = sources[(q / w) | 0]!;
        const op = base + (p % w) * chunk - t;
        const oq = base + (q % w) * chunk - t;
        for (let j = t, end = t + chunk; j < end; j++) target[j] = target[j]! ^ sp[j + op]! ^ sq[j + oq]!;
      }
      if (i < list.length) {
        const p = list[i]!;
        const sp = sources[(p / w) | 0]!;
        const op = base + (p % w) * chunk - t;
        for (let j = t, end = t + chunk; j < end; j++) target[j] = target[j]! ^ sp[j + op]!;
      }
    }
  }
}

function applyPlanBytes(plan: PacketPlan, w: number, chunk: number, sources: readonly Uint8Array[], target: Uint8Array): void {
  const superpacket = w * chunk;
  for (let base = 0; base < target.length; base += superpacket) {
    for (let b = 0; b < w; b++) {
      const t = base + b * chunk;
      target.fill(0, t, t + chunk);
      for (const p of plan[b]!) {
        const sp = sources[(p / w) | 0]!;
        const op = base + (p % w) * chunk - t;
        for (let j = t, end = t + chunk; j < end; j++) target[j] = target[j]! ^ sp[j + op]!;
      }
    }
  }
}

/**
 * Systematic Reed-Solomon code with k data and m parity shards whose parity and rebuilt shards
 * are byte-identical to @ronomon/reed-solomon's for the same (k, m).
 */
export class ErasureCodec {
  private readonly field: Field;
  private readonly generator: readonly (readonly number[])[];
  private readonly parityPlans: readonly PacketPlan[];

  /** Throws RangeError unless 1 ≤ k ≤ 24 and 1 ≤ m ≤ 6 are integers (the addon's limits). */
  constructor(
    readonly k: number,
    readonly m: number,
  ) {
    if (!Number.isInteger(k) || k < 1 || k > ERASURE_MAX_K)
      throw new RangeError(`k (data shards) must be an integer from 1 to ${ERASURE_MAX_K}, got ${k}`);
    if (!Number.isInteger(m) || m < 1 || m > ERASURE_MAX_M)
      throw new RangeError(`m (parity shards) must be an integer from 1 to ${ERASURE_MAX_M}, got ${m}`);
    const [w, polynomial, x, y, ones] = PARAMETERS[k - 1]![m - 1]!;
    this.field = new Field(w, polynomial);
    this.generator = generatorMatrix(this.field, k, m, x, y);
    const counted = this.generator.flat().reduce((sum, v) => sum + this.field.ones(v), 0);
    if (counted !== ones) throw new Error(`erasure generator for k=${k}, m=${m} has ${counted} ones, expected ${ones}`);
    this.parityPlans = this.generator.map((row) => packetPlan(this.field, row));
  }

  /** m parity shards from k equal-length data shards (length a positive multiple of 8). */
  encode(data: readonly Uint8Array[]): Uint8Array[] {
    if (data.length !== this.k) throw new ProofError("invalid-argument", `expected ${this.k} data shards, got ${data.length}`);
    const shardSize = this.shardSize(data);
    const sources = data.map(wordAligned);
    return this.parityPlans.map((plan) => applyPlan(plan, this.field.w, this.k, sources, shardSize));
  }

  /**
   * All n = k + m shards from n slots (undefined = missing) of which at least k are present;
   * present shards are returned as given, missing ones are rebuilt.
   */
  reconstruct(shards: readonly (Uint8Array | undefined)[]): Uint8Array[] {
    const { k, m } = this;
    const n = k + m;
    if (shards.length !== n) throw new ProofError("invalid-argument", `expected ${n} shard slots (k=${k} + m=${m}), got ${shards.length}`);
    const present: number[] = [];
    shards.forEach((s, i) => {
      if (s !== undefined) present.push(i);
    });
    if (present.length < k)
      throw new ProofError("invalid-argument", `need at least ${k} of ${n} shards to reconstruct, got ${present.length}`);
    const shardSize = this.shardSize(shards);
    const out = [...shards];
    const w = this.field.w;
    const missingData = present.length === n ? [] : Array.from({ length: k }, (_, i) => i).filter((i) => shards[i] === undefined);
    if (missingData.length > 0) {
      // Decode from the first k present shards, as the addon does (any k give the same data):
      // row j of `rows` says what present shard j is in terms of the data, so its inverse says
      // what each data shard is in terms of those k.
      const sources = present.slice(0, k);
      const rows = sources.map((s) => (s < k ? Array.from({ length: k }, (_, c) => (c === s ? 1 : 0)) : this.generator[s - k]!));
      const inverse = invert(this.field, rows);
      const sourceShards = sources.map((s) => wordAligned(shards[s]!));
      for (const i of missingData) out[i] = applyPlan(packetPlan(this.field, inverse[i]!), w, k, sourceShards, shardSize);
    }
    if (out.slice(k).includes(undefined)) {
      const data = out.slice(0, k).map((s) => wordAligned(s!));
      for (let r = 0; r < m; r++) out[k + r] ??= applyPlan(this.parityPlans[r]!, w, k, data, shardSize);
    }
    return out as Uint8Array[];
  }

  /** The common length of the present shards; throws unless they agree and it is a positive multiple of 8. */
  private shardSize(shards: readonly (Uint8Array | undefined)[]): number {
    let size = -1;
    shards.forEach((s, i) => {
      if (s === undefined) return;
      if (!(s instanceof Uint8Array)) throw new ProofError("invalid-argument", `shard ${i} is not a Uint8Array`);
      if (size < 0) {
        size = s.length;
        if (size === 0 || size % ERASURE_SHARD_ALIGNMENT !== 0)
          throw new ProofError(
            "invalid-argument",
            `shard size must be a positive multiple of ${ERASURE_SHARD_ALIGNMENT} bytes, got ${size} (shard ${i})`,
          );
      } else if (s.length !== size) {
        throw new ProofError("invalid-argument", `shard ${i} is ${s.length} bytes, expected ${size} like the shards before it`);
      }
    });
    return size;
  }
}
