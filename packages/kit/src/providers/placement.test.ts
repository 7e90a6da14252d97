import { choosePlacement, placementScore, type PlacementCandidate } from "./placement.js";

const c = (id: string, stake = 1, reliability = 1, live = true): PlacementCandidate => ({ id, stake, reliability, live });

describe("choosePlacement", () => {
  it("takes n distinct live providers, best score first, required ones pinned", () => {
    const all = [c("a", 1), c("b", 10), c("c", 5), c("d", 100, 1, false), c("e", 0.1)];
    expect(choosePlacement(all, 3, { seed: "x" })).toEqual({ ids: ["b", "c", "a"] });
    expect(choosePlacement(all, 3, { seed: "x", require: ["e"] })).toEqual({ ids: ["e", "b", "c"] });
  });

  it("says why when it cannot place, never a partial placement", () => {
    const all = [c("a"), c("b", 1, 1, false)];
    expect(choosePlacement(all, 3, { seed: "x" })).toMatchObject({ shortfall: { kind: "too_few_known" } });
    expect(choosePlacement(all, 2, { seed: "x" })).toMatchObject({
      shortfall: { kind: "too_few_live", message: expect.stringMatching(/only 1 of 2 are reachable \(down: b\)/) },
    });
    expect(choosePlacement(all, 1, { seed: "x", require: ["z"] })).toMatchObject({ shortfall: { kind: "unknown_required" } });
    expect(choosePlacement(all, 1, { seed: "x", require: ["b"] })).toMatchObject({ shortfall: { kind: "required_down" } });
  });

  it("spreads equal providers over datasets deterministically", () => {
    const all = Array.from({ length: 10 }, (_, i) => c(`p${i}`));
    const firsts = new Set(Array.from({ length: 50 }, (_, i) => (choosePlacement(all, 1, { seed: `d${i}` }) as { ids: string[] }).ids[0]));
    expect(firsts.size).toBeGreaterThan(3);
    expect(choosePlacement(all, 4, { seed: "same" })).toEqual(choosePlacement(all, 4, { seed: "same" }));
    expect(placementScore(c("p1", 2, 0.5), "s")).toBeGreaterThan(0.89);
  });
});
