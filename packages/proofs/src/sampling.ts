/**
 * DA sampling math (ARCHITECTURE.md, "DA sampling"), pure and shared by the da-sampler, the CLI
 * and anyone who wants to check a sampler's work:
 *
 * - the policy: how many shards of a (dataset, slot) to challenge per round so that a provider
 *   missing a fraction f of the slot's shards is caught with probability ≥ 1 − ε within the
 *   window, capped by the audit budget, and the confidence actually bought;
 * - challenge derivation: which stripes a sampler must challenge in a round, from the ledger's
 *   signed checkpoint (public, unpredictable before it is signed) and the sampler's identity,
 *   so anyone can recompute them and see that no stripe was cherry-picked.
 *
 * Miss probabilities are exact for the draws made: a round challenges s distinct stripes out of
 * the slot's N uniformly (no replacement), so a provider missing M = ⌈f·N⌉ of them escapes one
 * round with probability C(N − M, s) / C(N, s) ≤ (1 − f)^s, and independent rounds multiply.
 */
import { sha256 } from "@noble/hashes/sha2.js";

import { concatBytes, utf8Encode } from "./encoding.js";
import { ProofError } from "./errors.js";

const DAY_MS = 86_400_000;

/** The stated target and the limits sampling works within. */
export interface SamplingPolicyParams {
  /** Fraction f of a slot's shards whose loss must be caught, in (0, 1). */
  readonly missingFraction: number;
  /** Allowed miss probability ε within one window, in (0, 1). */
  readonly epsilon: number;
  /** The window the target applies to (ms). */
  readonly windowMs: number;
  /** Time between two rounds of one sampler on one (dataset, slot) (ms). */
  readonly roundIntervalMs: number;
  /** Independent samplers sharing target and budget (each challenges its own stripes). */
  readonly samplers: number;
  /** Audit budget: bytes read per stored byte per day, over all samplers, per provider. */
  readonly auditBudget: number;
}

/** What one sampler does on one (dataset, slot), and what it buys. */
export interface SlotPlan {
  /** Distinct stripes challenged per round (≤ stripes). */
  readonly samplesPerRound: number;
  /** Time between rounds (stretched beyond the policy's when the budget buys fewer samples than rounds). */
  readonly roundIntervalMs: number;
  /** Rounds per window per sampler. */
  readonly roundsPerWindow: number;
  /** Probability, over the window and every sampler, that a provider missing ≥ f of the slot is caught. */
  readonly confidence: number;
  /** Whether confidence ≥ 1 − ε. */
  readonly targetMet: boolean;
  /** Samples the target would need per round (uncapped). */
  readonly samplesForTarget: number;
  /** Bytes read per stored byte per day by all samplers together under this plan. */
  readonly auditBytesPerStoredBytePerDay: number;
}

function checkFraction(v: number, what: string): void {
  if (!(Number.isFinite(v) && v > 0 && v < 1)) throw new ProofError("invalid-argument", `${what} must be in (0, 1), got ${v}`);
}

function checkPositiveInt(v: number, what: string): void {
  if (!(Number.isInteger(v) && v > 0)) throw new ProofError("invalid-argument", `${what} must be a positive integer, got ${v}`);
}

/** The smallest n with (1 − f)^n ≤ ε: samples with replacement (or from an unbounded slot) for the target. */
export function samplesForTarget(missingFraction: number, epsilon: number): number {
  checkFraction(missingFraction, "missingFraction");
  checkFraction(epsilon, "epsilon");
  return Math.ceil(Math.log(epsilon) / Math.log1p(-missingFraction) - 1e-9);
}

/** Shards a provider missing a fraction ≥ f of `stripes` shards misses at least: ⌈f·N⌉ (≥ 1). */
export function missingShards(stripes: number, missingFraction: number): number {
  return Math.max(1, Math.ceil(missingFraction * stripes - 1e-9));
}

/**
 * ln of the probability that one round of `samples` distinct uniform stripes out of `stripes`
 * misses all `missing` of them (hypergeometric: Π (N − M − i) / (N − i)); −Infinity when it cannot.
 */
export function logRoundMiss(stripes: number, missing: number, samples: number): number {
  if (samples + missing > stripes) return -Infinity;
  let log = 0;
  for (let i = 0; i < samples; i++) log += Math.log((stripes - missing - i) / (stripes - i));
  return log;
}

/** Probability that a provider missing a fraction ≥ f escapes `rounds` rounds of `samples` stripes each. */
export function missProbability(stripes: number, missingFraction: number, samples: number, rounds: number): number {
  return Math.exp(rounds * logRoundMiss(stripes, missingShards(stripes, missingFraction), samples));
}

/** Checks the policy's parameters; throws ProofError naming the first bad one. */
export function checkSamplingPolicy(p: SamplingPolicyParams): void {
  checkFraction(p.missingFraction, "missingFraction");
  checkFraction(p.epsilon, "epsilon");
  checkPositiveInt(p.windowMs, "windowMs");
  checkPositiveInt(p.roundIntervalMs, "roundIntervalMs");
  checkPositiveInt(p.samplers, "samplers");
  if (p.roundIntervalMs > p.windowMs) throw new ProofError("invalid-argument", "roundIntervalMs must not exceed windowMs");
  if (!(Number.isFinite(p.auditBudget) && p.auditBudget > 0)) throw new ProofError("invalid-argument", "auditBudget must be > 0");
}

/**
 * The plan of one sampler for a slot of `stripes` shards: the fewest samples per round that meet
 * the target over the window (every sampler's rounds count, since one sampler's catch starts the
 * quorum re-check), capped by the sampler's share of the audit budget. When the budget buys fewer
 * samples than there are rounds, rounds are spaced out instead (one sample each), and never fewer
 * than one round per window: a slot is never left unsampled.
 */
export function planSlot(p: SamplingPolicyParams, stripes: number): SlotPlan {
  checkSamplingPolicy(p);
  checkPositiveInt(stripes, "stripes");
  const rounds = Math.floor(p.windowMs / p.roundIntervalMs);
  const missing = missingShards(stripes, p.missingFraction);
  const logEps = Math.log(p.epsilon);
  // r·samplers·ln(miss of one round) ≤ ln ε, the product accumulated only until it meets the
  // bound: a bisection over a huge slot (2^40 stripes) would otherwise multiply 2^39 terms.
  const meets = (s: number, r: number): boolean => {
    if (s + missing > stripes) return true;
    const floor = logEps / (r * p.samplers);
    let log = 0;
    for (let i = 0; i < s; i++) {
      log += Math.log((stripes - missing - i) / (stripes - i));
      if (log <= floor) return true;
    }
    return false;
  };
  // The miss probability falls with s, so bisect for the smallest s that meets the target.
  let lo = 1;
  let hi = stripes;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2); // not >> 1: stripes may exceed 2^31
    if (meets(mid, rounds)) hi = mid;
    else lo = mid + 1;
  }
  const target = lo;
  const budgetSamples = Math.floor((p.auditBudget * stripes * (p.windowMs / DAY_MS)) / p.samplers);
  let samples = target;
  let roundsPerWindow = rounds;
  if (budgetSamples < target * rounds) {
    if (budgetSamples >= rounds) samples = Math.floor(budgetSamples / rounds);
    else {
      samples = 1;
      roundsPerWindow = Math.max(1, budgetSamples);
    }
  }
  const miss = Math.exp(roundsPerWindow * p.samplers * logRoundMiss(stripes, missing, samples));
  const confidence = 1 - miss;
  return {
    samplesPerRound: samples,
    roundIntervalMs: Math.floor(p.windowMs / roundsPerWindow),
    roundsPerWindow,
    confidence,
    targetMet: miss <= p.epsilon,
    samplesForTarget: target,
    auditBytesPerStoredBytePerDay: (samples * roundsPerWindow * p.samplers * DAY_MS) / (stripes * p.windowMs),
  };
}

/**
 * Confidence bought by a set of rounds on one slot (what an attestation states): the
 * probability that a provider missing a fraction ≥ f of `stripes` would have been caught.
 */
export function confidenceOf(stripes: number, missingFraction: number, samplesPerRound: readonly number[]): number {
  const missing = missingShards(stripes, missingFraction);
  let log = 0;
  for (const s of samplesPerRound) log += logRoundMiss(stripes, missing, s);
  return 1 - Math.exp(log);
}

/** The public, unpredictable seed of a round: a checkpoint the ledger signed. */
export interface ChallengeSeed {
  /** Tree size of the checkpoint. */
  readonly checkpointSize: number;
  /** Root hash of the checkpoint, 32 bytes. */
  readonly checkpointRoot: Uint8Array;
}

/** Everything a round's challenge derives from. */
export interface ChallengeInput {
  readonly seed: ChallengeSeed;
  /** Actor id of the sampler (base64url Ed25519 public key). */
  readonly samplerId: string;
  /** The dataset's shardRoot, 32 bytes. */
  readonly shardRoot: Uint8Array;
  readonly slot: number;
  /** Round number: ⌊time / roundInterval⌋ of the round's start. */
  readonly round: number;
  /** Stripes of the dataset. */
  readonly stripes: number;
  /** Distinct stripes to challenge (all of them when ≥ stripes). */
  readonly samples: number;
}

const CHALLENGE_DOMAIN = utf8Encode("deai/da/challenge/v1\n")!;

function u64be(v: number): Uint8Array {
  if (!(Number.isSafeInteger(v) && v >= 0)) throw new ProofError("invalid-argument", `${v} is not a non-negative safe integer`);
  const out = new Uint8Array(8);
  let x = v;
  for (let i = 7; i >= 0; i--) {
    out[i] = x % 256;
    x = Math.floor(x / 256);
  }
  return out;
}

/**
 * The key a round's draws come from: SHA-256("deai/da/challenge/v1\n" ‖ u64(checkpoint size) ‖
 * checkpoint root ‖ u64(len(samplerId)) ‖ samplerId ‖ shardRoot ‖ u64(slot) ‖ u64(round)).
 */
export function challengeKey(c: Omit<ChallengeInput, "stripes" | "samples">): Uint8Array {
  if (c.seed.checkpointRoot.length !== 32) throw new ProofError("bad-hash-size", "checkpoint root must be 32 bytes");
  if (c.shardRoot.length !== 32) throw new ProofError("bad-hash-size", "shardRoot must be 32 bytes");
  const sampler = utf8Encode(c.samplerId);
  if (sampler === undefined || sampler.length === 0) throw new ProofError("invalid-argument", "samplerId must be a non-empty string");
  return sha256(
    concatBytes(
      CHALLENGE_DOMAIN,
      u64be(c.seed.checkpointSize),
      c.seed.checkpointRoot,
      u64be(sampler.length),
      sampler,
      c.shardRoot,
      u64be(c.slot),
      u64be(c.round),
    ),
  );
}

/** A deterministic stream of uniform integers below a bound, from SHA-256(key ‖ u64(counter)) blocks. */
class DrawStream {
  private block = new Uint8Array(0);
  private at = 0;
  private counter = 0;

  constructor(private readonly key: Uint8Array) {}

  /** 48 bits at a time; rejection sampling keeps every value in [0, bound) equally likely. */
  below(bound: number): number {
    const space = 2 ** 48;
    const limit = space - (space % bound);
    for (;;) {
      if (this.at + 6 > this.block.length) {
        this.block = sha256(concatBytes(this.key, u64be(this.counter++)));
        this.at = 0;
      }
      let v = 0;
      for (let i = 0; i < 6; i++) v = v * 256 + this.block[this.at++]!;
      if (v < limit) return v % bound;
    }
  }
}

/**
 * The stripes a sampler must challenge in a round, ascending: `samples` distinct stripes drawn
 * by a partial Fisher–Yates shuffle keyed by `challengeKey`. Anyone holding the checkpoint and
 * the sampler's id recomputes the same list.
 */
export function challengeStripes(c: ChallengeInput): number[] {
  checkPositiveInt(c.stripes, "stripes");
  checkPositiveInt(c.samples, "samples");
  if (c.samples >= c.stripes) return Array.from({ length: c.stripes }, (_, i) => i);
  const draws = new DrawStream(challengeKey(c));
  const swapped = new Map<number, number>();
  const out: number[] = [];
  for (let i = 0; i < c.samples; i++) {
    const j = i + draws.below(c.stripes - i);
    const vi = swapped.get(i) ?? i;
    const vj = swapped.get(j) ?? j;
    swapped.set(j, vi);
    out.push(vj);
  }
  return out.sort((a, b) => a - b);
}

/** The round a start time falls in. */
export function roundOf(atMs: number, roundIntervalMs: number): number {
  return Math.floor(atMs / roundIntervalMs);
}
