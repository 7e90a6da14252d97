import { PRIOR_RELIABILITY, reliabilityOf } from "./reliability.js";

describe("reliability from DA reputation", () => {
  it("is the prior without reputation, the Beta mean with it, halved while a slot is proven unavailable", () => {
    expect(reliabilityOf({ mean: null, unavailable: false })).toBe(PRIOR_RELIABILITY);
    expect(reliabilityOf({ mean: 0.9, unavailable: false })).toBe(0.9);
    expect(reliabilityOf({ mean: 0.9, unavailable: true })).toBe(0.45);
    expect(reliabilityOf({ mean: null, unavailable: true })).toBe(0.25);
    expect(reliabilityOf({ mean: 1.7, unavailable: false })).toBe(1);
    expect(reliabilityOf({ mean: Number.NaN, unavailable: false })).toBe(PRIOR_RELIABILITY);
  });
});
