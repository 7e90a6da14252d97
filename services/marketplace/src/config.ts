import { ConfigError, env, loadConfig, serviceConfigSchema, type ConfigOf } from "@deai/kit";

import { DEFAULT_PARAMS, type MarketParams } from "./app/context.js";

/** The marketplace service's configuration: the kit's variables, with this service's own. */
export const configSchema = {
  ...serviceConfigSchema,
  PORT: env.int({ default: 7104, min: 0, max: 65535 }),
  /** The deployment's currency (Money.currency and the books' ledger). */
  MARKETPLACE_CURRENCY: env.string({ default: DEFAULT_PARAMS.currency }),
  /** Bonded stake in slashing (base units) a provider needs to offer and be matched. */
  MARKETPLACE_MIN_STAKE: env.string({ default: DEFAULT_PARAMS.minStake.toString() }),
  /** gRPC base URL of slashing (GetProviderStatus). Unset: stake cannot be checked, so offers are refused. */
  MARKETPLACE_SLASHING_URL: env.optionalString(),
  /** gRPC base URL of the ledger. Unset: lease records queue in `anchors` and are not appended. */
  MARKETPLACE_LEDGER_URL: env.optionalString(),
  /** The ledger's log verifier key (signed-note form): receipts are checked offline against it. */
  MARKETPLACE_LEDGER_LOG_KEY: env.optionalString(),
  /** This service's actor key seed (base64url, 32 bytes): it signs lease statements. Unset: generated at start. */
  MARKETPLACE_SERVICE_KEY: env.optionalString(),
  /** Actor ids that countersign usage reports and may close any lease. */
  MARKETPLACE_OPERATORS: env.list({ default: [] }),
  MARKETPLACE_EPOCH_MS: env.int({ default: DEFAULT_PARAMS.epochMs, min: 1000 }),
  MARKETPLACE_GRACE_MS: env.int({ default: DEFAULT_PARAMS.graceMs, min: 0 }),
  MARKETPLACE_RESERVATION_TTL_MS: env.int({ default: DEFAULT_PARAMS.reservationTtlMs, min: 1000 }),
  MARKETPLACE_SETTLEMENT_WINDOW_MS: env.int({ default: DEFAULT_PARAMS.settlementWindowMs, min: 1000 }),
  /** Standing mirrored from slashing is asked again after this long. */
  MARKETPLACE_STANDING_MAX_AGE_MS: env.int({ default: DEFAULT_PARAMS.standingMaxAgeMs, min: 10 }),
  /** How often reservations expire, unmatched orders are retried, holds renewed and anchors appended. */
  MARKETPLACE_TICK_MS: env.int({ default: 1000, min: 10 }),
} as const;

export type MarketplaceConfig = ConfigOf<typeof configSchema> & { readonly params: MarketParams };

/** The only reader of process.env in this service. */
export function loadMarketplaceConfig(source: Record<string, string | undefined> = process.env): MarketplaceConfig {
  const c = loadConfig(configSchema, source);
  if (!/^(0|[1-9]\d{0,37})$/.test(c.MARKETPLACE_MIN_STAKE))
    throw new ConfigError("MARKETPLACE_MIN_STAKE", "must be a decimal integer of base units");
  return {
    ...c,
    params: {
      ...DEFAULT_PARAMS,
      currency: c.MARKETPLACE_CURRENCY,
      minStake: BigInt(c.MARKETPLACE_MIN_STAKE),
      operators: c.MARKETPLACE_OPERATORS,
      epochMs: c.MARKETPLACE_EPOCH_MS,
      graceMs: c.MARKETPLACE_GRACE_MS,
      reservationTtlMs: c.MARKETPLACE_RESERVATION_TTL_MS,
      settlementWindowMs: c.MARKETPLACE_SETTLEMENT_WINDOW_MS,
      standingMaxAgeMs: c.MARKETPLACE_STANDING_MAX_AGE_MS,
    },
  };
}
