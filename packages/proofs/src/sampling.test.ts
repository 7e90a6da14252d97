import { challengeKey, challengeStripes, confidenceOf, logRoundMiss, missProbability, planSlot, samplesForTarget } from "./sampling.js";
import { ProofError } from "./errors.js";

const DAY = 86_400_000;
const policy = {
  missingFraction: 0.01,
  epsilon: 1e-6,
  windowMs: DAY,
  roundIntervalMs: 600_000,
  samplers: 3,
  auditBudget: 1,
};
const seed = { checkpointSize: 42, checkpointRoot: new Uint8Array(32).fill(7) };
const shardRoot = new Uint8Array(32).fill(9);

describe("samplesForTarget", () => {
  it("is the smallest n with (1 − f)^n ≤ ε", () => {
    expect(samplesForTarget(0.01, 1e-6)).toBe(1375);
    expect(0.99 ** 1375).toBeLessThanOrEqual(1e-6);
    expect(0.99 ** 1374).toBeGreaterThan(1e-6);
    // Celestia: 25 % withholding, 16 samples → ~1 %.
    expect(samplesForTarget(0.25, 0.01)).toBe(17);
    expect(samplesForTarget(0.25, 0.0101)).toBe(16);
  });
  it("refuses out-of-range targets", () => {
    expect(() => samplesForTarget(0, 1e-6)).toThrow(ProofError);
    expect(() => samplesForTarget(0.01, 1)).toThrow(/epsilon/);
  });
});

describe("miss probability", () => {
  it("is hypergeometric without replacement and never above (1 − f)^s", () => {
    // 100 stripes, 1 missing, 10 sampled: 90/100.
    expect(Math.exp(logRoundMiss(100, 1, 10))).toBeCloseTo(0.9, 12);
    expect(missProbability(10_000, 0.01, 50, 3)).toBeLessThanOrEqual(0.99 ** 150);
    // Sampling every stripe cannot miss.
    expect(missProbability(24, 0.01, 24, 1)).toBe(0);
  });
});

describe("planSlot", () => {
  it("meets the default target on a large slot within the budget", () => {
    const stripes = 4 * 1024 * 1024; // 1 TiB of 256 KiB shards
    const p = planSlot(policy, stripes);
    expect(p.targetMet).toBe(true);
    expect(p.confidence).toBeGreaterThanOrEqual(1 - 1e-6);
    // 144 rounds × 3 samplers: ⌈1375 / 432⌉ = 4 samples per round.
    expect(p.samplesPerRound).toBe(4);
    expect(p.roundsPerWindow).toBe(144);
    expect(p.auditBytesPerStoredBytePerDay).toBeLessThan(0.001);
    // One fewer sample per round would not meet it.
    expect(missProbability(stripes, 0.01, 3, 432)).toBeGreaterThan(1e-6);
  });
  it("plans an unbounded slot (2^40 stripes) at once, as GetSamplingPolicy asks", () => {
    // (lo + hi) >> 1 wrapped at 2^31 (mid = 0 forever) and each step multiplied up to 2^39
    // terms: GetSamplingPolicy hung the service. Bisection by division, products cut at the bound.
    const t0 = Date.now();
    const p = planSlot(policy, 2 ** 40);
    expect(Date.now() - t0).toBeLessThan(1_000);
    expect(p.samplesPerRound).toBe(4);
    expect(p.targetMet).toBe(true);
  });
  it("says what confidence a short budget buys", () => {
    const p = planSlot(policy, 24); // 24 stripes, budget 1 → 24 samples a day over 3 samplers
    expect(p.targetMet).toBe(false);
    expect(p.samplesPerRound).toBe(1);
    expect(p.roundsPerWindow).toBe(8);
    expect(p.roundIntervalMs).toBe(DAY / 8);
    expect(p.confidence).toBeCloseTo(1 - (23 / 24) ** 24, 12);
    expect(p.auditBytesPerStoredBytePerDay).toBeCloseTo(1, 12);
  });
  it("meets the target on a small slot when the budget allows", () => {
    const p = planSlot({ ...policy, auditBudget: 100 }, 24);
    expect(p.targetMet).toBe(true);
    expect(p.samplesPerRound).toBe(1);
    expect(p.confidence).toBeGreaterThan(1 - 1e-6);
  });
  it("never plans zero rounds", () => {
    const p = planSlot({ ...policy, auditBudget: 1e-9 }, 10);
    expect(p.roundsPerWindow).toBe(1);
    expect(p.samplesPerRound).toBe(1);
  });
  it("refuses a bad policy", () => {
    expect(() => planSlot({ ...policy, samplers: 0 }, 10)).toThrow(/samplers/);
    expect(() => planSlot({ ...policy, roundIntervalMs: 2 * DAY }, 10)).toThrow(/roundIntervalMs/);
    expect(() => planSlot(policy, 0)).toThrow(/stripes/);
  });
});

describe("challengeStripes", () => {
  const base = { seed, samplerId: "sampler-a", shardRoot, slot: 3, round: 100, stripes: 1000, samples: 10 };
  it("is deterministic, distinct, in range and sorted", () => {
    const a = challengeStripes(base);
    expect(a).toEqual(challengeStripes(base));
    expect(new Set(a).size).toBe(10);
    expect(a.every((s) => s >= 0 && s < 1000)).toBe(true);
    expect([...a].sort((x, y) => x - y)).toEqual(a);
  });
  it("changes with every input", () => {
    const a = challengeStripes(base);
    for (const v of [
      { samplerId: "sampler-b" },
      { round: 101 },
      { slot: 4 },
      { seed: { ...seed, checkpointSize: 43 } },
      { seed: { ...seed, checkpointRoot: new Uint8Array(32).fill(8) } },
      { shardRoot: new Uint8Array(32) },
    ])
      expect(challengeStripes({ ...base, ...v })).not.toEqual(a);
  });
  it("challenges every stripe when the samples cover the slot", () => {
    expect(challengeStripes({ ...base, stripes: 5, samples: 9 })).toEqual([0, 1, 2, 3, 4]);
    expect(challengeStripes({ ...base, stripes: 5, samples: 4 })).toHaveLength(4);
  });
  it("is uniform over stripes", () => {
    const counts = new Array(20).fill(0);
    for (let round = 0; round < 4000; round++) for (const s of challengeStripes({ ...base, stripes: 20, samples: 2, round })) counts[s]++;
    // 8000 draws over 20 stripes: 400 each, σ ≈ 19.
    for (const c of counts) expect(Math.abs(c - 400)).toBeLessThan(100);
  });
  it("refuses malformed seeds", () => {
    expect(() => challengeKey({ ...base, seed: { ...seed, checkpointRoot: new Uint8Array(31) } })).toThrow(/32 bytes/);
    expect(() => challengeStripes({ ...base, samples: 0 })).toThrow(/samples/);
  });
  it("catches a provider that dropped f of its shards about as often as stated", () => {
    // 1000 stripes, 10 % dropped, 10 samples per round: miss per round = C(900,10)/C(1000,10).
    const dropped = new Set(Array.from({ length: 100 }, (_, i) => i * 10 + 3));
    let misses = 0;
    const rounds = 3000;
    for (let round = 0; round < rounds; round++) if (challengeStripes({ ...base, round }).every((s) => !dropped.has(s))) misses++;
    const expected = missProbability(1000, 0.1, 10, 1);
    expect(Math.abs(misses / rounds - expected)).toBeLessThan(4 * Math.sqrt((expected * (1 - expected)) / rounds));
    expect(confidenceOf(1000, 0.1, [10])).toBeCloseTo(1 - expected, 12);
  });
});
