import { matchGang, nodesPerGroup, type GangRequest, type OfferCandidate } from "./matching.js";

const H100 = "nvidia-h100-80g-sxm5";
let n = 0;
function offer(p: Partial<OfferCandidate> = {}): OfferCandidate {
  n++;
  return {
    offerId: `o${String(n).padStart(3, "0")}`,
    providerId: `p${n}`,
    classId: H100,
    region: "eu-west",
    bandwidthMbps: 1000,
    pricePerGpuHour: 2_000_000n,
    gpusPerNode: 8,
    nodesFree: 1,
    minLeaseMs: 0,
    availableUntilMs: null,
    matchable: true,
    stake: 10_000n,
    reliability: 0.9,
    ...p,
  };
}
const req = (p: Partial<GangRequest> = {}): GangRequest => ({
  classId: H100,
  gpusPerGroup: 8,
  groups: 2,
  maxPricePerGpuHour: 3_000_000n,
  durationMs: 3_600_000,
  startAtMs: 0,
  regions: [],
  minBandwidthMbps: 0,
  minReliability: 0,
  excludedProviders: [],
  distinctProviders: false,
  minStake: 0n,
  ...p,
});

describe("matchGang", () => {
  it("places every group, lowest total cost first, each paying its offer's ask", () => {
    const cheap = offer({ pricePerGpuHour: 1_000_000n, nodesFree: 1 });
    const mid = offer({ pricePerGpuHour: 1_500_000n, nodesFree: 3 });
    const dear = offer({ pricePerGpuHour: 2_900_000n, nodesFree: 4 });
    const r = matchGang([dear, mid, cheap], req({ groups: 3 }));
    if (!r.matched) throw new Error("expected a match");
    expect(r.plan.map((g) => [g.group, g.offerId, g.nodes, g.gpus, g.pricePerGpuHour])).toEqual([
      [0, cheap.offerId, 1, 8, 1_000_000n],
      [1, mid.offerId, 1, 8, 1_500_000n],
      [2, mid.offerId, 1, 8, 1_500_000n],
    ]);
    expect(r.totalCostPerHour).toBe(8n * (1_000_000n + 2n * 1_500_000n));
  });

  it("takes whole nodes of one offer per group and charges their GPUs", () => {
    expect(nodesPerGroup(16, 8)).toBe(2);
    expect(nodesPerGroup(12, 8)).toBe(2);
    const four = offer({ gpusPerNode: 4, nodesFree: 4, pricePerGpuHour: 1_000_000n });
    const r = matchGang([four], req({ gpusPerGroup: 6, groups: 2 }));
    if (!r.matched) throw new Error("expected a match");
    expect(r.plan.map((g) => [g.nodes, g.gpus])).toEqual([
      [2, 8],
      [2, 8],
    ]);
  });

  it("is all or nothing: one group short is no match, with the gang shortfall and where the GPUs are", () => {
    const a = offer({ nodesFree: 1, providerId: "pa" });
    const b = offer({ nodesFree: 0, providerId: "pb" });
    const r = matchGang([a, b], req({ groups: 2 }));
    expect(r.matched).toBe(false);
    if (r.matched) return;
    const e = r.explanation;
    expect(e.groupsPlaceable).toBe(1);
    expect(e.neededGpus).toBe(16);
    expect(e.eligibleFreeGpus).toBe(8);
    expect(e.dimensions.map((d) => [d.code, d.offersExcluded])).toEqual([
      ["gang_incomplete", 1],
      ["insufficient_capacity", 1],
    ]);
    expect(e.freeCapacity).toEqual([{ providerId: "pa", region: "eu-west", freeGpus: 8, largestBlockGpus: 8 }]);
  });

  it("explains each filter once per offer, first failing dimension, with provider counts", () => {
    const offers = [
      offer({ classId: "amd-mi300x-192g-oam" }),
      offer({ matchable: false }),
      offer({ providerId: "excluded" }),
      offer({ stake: 5n }),
      offer({ reliability: 0.1 }),
      offer({ region: "us-east" }),
      offer({ bandwidthMbps: 10 }),
      offer({ pricePerGpuHour: 9_000_000n, region: "us-east" }),
      offer({ pricePerGpuHour: 9_000_000n }),
      offer({ pricePerGpuHour: 9_000_000n, providerId: "p-same" }),
      offer({ pricePerGpuHour: 9_000_000n, providerId: "p-same" }),
      offer({ minLeaseMs: 7_200_000 }),
      offer({ availableUntilMs: 1000 }),
    ];
    const r = matchGang(
      offers,
      req({ regions: ["eu-west"], minBandwidthMbps: 100, minReliability: 0.5, excludedProviders: ["excluded"], minStake: 100n }),
    );
    if (r.matched) throw new Error("expected no match");
    const by = Object.fromEntries(r.explanation.dimensions.map((d) => [d.code, [d.offersExcluded, d.providersExcluded]]));
    expect(by).toEqual({
      no_offers_for_class: [1, 1],
      provider_ineligible: [2, 2],
      stake_below_min: [1, 1],
      reliability_below_min: [1, 1],
      // The us-east offer above the price fails on region first.
      region_excluded: [2, 2],
      bandwidth_below_min: [1, 1],
      price_above_max: [3, 2],
      duration_unsupported: [2, 2],
      gang_incomplete: [0, 0],
    });
    expect(r.explanation.dimensions[0]!.code).toBe("price_above_max");
    expect(r.explanation.dimensions.find((d) => d.code === "price_above_max")!.message).toMatch(/cheapest ask of the class: 2000000/);
    expect(r.explanation.offersConsidered).toBe(offers.length);
  });

  it("with distinct providers puts each group at a different provider", () => {
    const big = offer({ providerId: "big", nodesFree: 8, pricePerGpuHour: 1_000_000n });
    const other = offer({ providerId: "other", nodesFree: 1, pricePerGpuHour: 2_000_000n });
    const together = matchGang([big, other], req({ groups: 2 }));
    if (!together.matched) throw new Error("expected a match");
    expect(together.plan.map((g) => g.providerId)).toEqual(["big", "big"]);
    const apart = matchGang([big, other], req({ groups: 2, distinctProviders: true }));
    if (!apart.matched) throw new Error("expected a match");
    expect(apart.plan.map((g) => g.providerId)).toEqual(["big", "other"]);
    const three = matchGang([big, other], req({ groups: 3, distinctProviders: true }));
    expect(three.matched).toBe(false);
  });

  it("breaks price ties by score, then offer id, the same on every call", () => {
    const a = offer({ reliability: 0.5 });
    const b = offer({ reliability: 0.99 });
    const r1 = matchGang([a, b], req({ groups: 1 }));
    const r2 = matchGang([b, a], req({ groups: 1 }));
    if (!r1.matched || !r2.matched) throw new Error("expected a match");
    expect(r1.plan[0]!.offerId).toBe(b.offerId);
    expect(r2.plan).toEqual(r1.plan);
    expect(r1.plan[0]!.score.total).toBeGreaterThan(0);
  });

  it("property: a plan never uses more nodes of an offer than are free, and never a filtered offer", () => {
    let seed = 7;
    const rnd = (k: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % k);
    for (let i = 0; i < 300; i++) {
      const offers = Array.from({ length: 1 + rnd(12) }, () =>
        offer({
          nodesFree: rnd(5),
          gpusPerNode: [4, 8][rnd(2)]!,
          pricePerGpuHour: BigInt(1 + rnd(5)) * 1_000_000n,
          providerId: `p${rnd(4)}`,
        }),
      );
      const r = req({ groups: 1 + rnd(5), gpusPerGroup: [4, 8, 16][rnd(3)]!, distinctProviders: rnd(2) === 0 });
      const m = matchGang(offers, r);
      if (!m.matched) {
        expect(m.explanation.groupsPlaceable).toBeLessThan(r.groups);
        continue;
      }
      expect(m.plan).toHaveLength(r.groups);
      const used = new Map<string, number>();
      for (const g of m.plan) used.set(g.offerId, (used.get(g.offerId) ?? 0) + g.nodes);
      for (const [id, nodes] of used) {
        const o = offers.find((x) => x.offerId === id)!;
        expect(nodes).toBeLessThanOrEqual(o.nodesFree);
        expect(o.pricePerGpuHour).toBeLessThanOrEqual(r.maxPricePerGpuHour);
      }
      if (r.distinctProviders) expect(new Set(m.plan.map((g) => g.providerId)).size).toBe(r.groups);
    }
  });
});
