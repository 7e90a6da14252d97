/** Why an offer could not serve an order (the contract's NoMatchCode, in domain form). */
export type NoMatchCodeName =
  | "no_offers_for_class"
  | "price_above_max"
  | "insufficient_capacity"
  | "bandwidth_below_min"
  | "region_excluded"
  | "provider_ineligible"
  | "reliability_below_min"
  | "stake_below_min"
  | "duration_unsupported"
  | "gang_incomplete";
