import { CapacityIndex } from "./capacity-index.js";
import { matchGang, type GangRequest, type OfferCandidate } from "./matching.js";

const H100 = "nvidia-h100-80g-sxm5";
const offer = (id: string, price: bigint, nodesFree: number, p: Partial<OfferCandidate> = {}): OfferCandidate => ({
  offerId: id,
  providerId: `p-${id}`,
  classId: H100,
  region: "eu-west",
  bandwidthMbps: 1000,
  pricePerGpuHour: price,
  gpusPerNode: 8,
  nodesFree,
  minLeaseMs: 0,
  availableUntilMs: null,
  matchable: true,
  stake: 10_000n,
  reliability: 0.9,
  ...p,
});
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
const ids = (os: readonly OfferCandidate[]) => os.map((o) => `${o.offerId}:${o.nodesFree}`);

describe("CapacityIndex", () => {
  it("lists matchable offers with free nodes in price order, net of holds, filtered by the request", () => {
    const x = new CapacityIndex();
    x.apply(offer("c", 3_000_000n, 2), "v1");
    x.apply(offer("a", 1_000_000n, 1), "v1");
    x.apply(offer("b", 2_000_000n, 4, { region: "us-east" }), "v1");
    x.apply(offer("d", 1_500_000n, 0), "v1");
    x.apply(offer("e", 500_000n, 4, { matchable: false }), "v1");
    x.apply(offer("f", 900_000n, 4, { classId: "other" }), "v1");
    expect(ids(x.candidates(req(), 10))).toEqual(["a:1", "b:4", "c:2"]);
    expect(ids(x.candidates(req({ regions: ["us-east"] }), 10))).toEqual(["b:4"]);
    expect(ids(x.candidates(req(), 2))).toEqual(["a:1", "b:4"]);
    x.hold("a", 1);
    x.hold("b", 3);
    expect(ids(x.candidates(req(), 10))).toEqual(["b:1", "c:2"]);
    expect(x.available("b")).toBe(1);
    x.hold("a", -1);
    expect(ids(x.candidates(req(), 10))).toEqual(["a:1", "b:1", "c:2"]);
  });

  it("a newer read replaces the offer: price moves it, zero free nodes or a paused offer drop it, and holds stay", () => {
    const x = new CapacityIndex();
    x.apply(offer("a", 1_000_000n, 4), "v1");
    x.apply(offer("b", 2_000_000n, 4), "v1");
    x.hold("a", 2);
    x.apply(offer("a", 2_500_000n, 3), "v2");
    expect(ids(x.candidates(req(), 10))).toEqual(["b:4", "a:1"]);
    expect(x.known("a")?.offer.nodesFree).toBe(3);
    expect(x.known("a")?.version).toBe("v2");
    x.apply(offer("b", 2_000_000n, 0), "v1");
    expect(ids(x.candidates(req(), 10))).toEqual(["a:1"]);
    x.apply(offer("a", 2_500_000n, 3, { matchable: false }), "v1");
    expect(x.candidates(req(), 10)).toEqual([]);
    expect(() => x.hold("zz", 1)).toThrow(/unknown offer/);
  });

  it("plans on the index never use more nodes than an offer has, across many orders with holds", () => {
    const x = new CapacityIndex();
    const truth = new Map<string, number>();
    for (let i = 0; i < 30; i++) {
      const o = offer(`o${String(i).padStart(2, "0")}`, BigInt(1 + (i % 7)) * 300_000n, 1 + (i % 4));
      x.apply(o, "v1");
      truth.set(o.offerId, o.nodesFree);
    }
    let placed = 0;
    for (let k = 0; k < 40; k++) {
      const r = req({ groups: 1 + (k % 3), gpusPerGroup: k % 4 === 0 ? 16 : 8 });
      const m = matchGang(x.candidates(r, r.groups * 2 + 8), r);
      if (!m.matched) continue;
      placed++;
      for (const g of m.plan) {
        x.hold(g.offerId, g.nodes);
        truth.set(g.offerId, truth.get(g.offerId)! - g.nodes);
      }
    }
    expect(placed).toBeGreaterThan(5);
    for (const v of truth.values()) expect(v).toBeGreaterThanOrEqual(0);
  });
});
