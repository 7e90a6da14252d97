// The app parameters most slashing tests run with: the default timing and penalties, no minimum
// stake, no council (k = 1), and the evidence trust of the test's world.
import { DEFAULT_PENALTY_PARAMS, type EvidenceTrust } from "@deai/proofs";

import { DEFAULT_TIMING, type SlashingParams } from "../src/domain/parameters.js";

export const openParams = (trust: EvidenceTrust): SlashingParams => ({
  currency: "DEAI",
  ...DEFAULT_TIMING,
  minStake: 0n,
  council: [],
  vetoThreshold: 1,
  trust,
  penalty: DEFAULT_PENALTY_PARAMS,
});
