import { ConfigError, env, loadConfig, serviceConfigSchema, type ConfigOf } from "@deai/kit";
import { DEFAULT_PENALTY_PARAMS } from "@deai/proofs";

import { checkSlashingParams, DEFAULT_TIMING, type ProviderInfrastructure, type SlashingParams } from "./domain/parameters.js";

const S = 1000;

/** The slashing service's configuration: the kit's variables, with this service's own. */
export const configSchema = {
  ...serviceConfigSchema,
  PORT: env.int({ default: 7105, min: 0, max: 65535 }),
  /** The currency (money ledger) stake is held in. */
  SLASHING_CURRENCY: env.string({ default: "DEAI" }),
  /** Timing (seconds); the service refuses to start unless unbonding ≥ max age + veto window + detection window. */
  SLASHING_UNBONDING_DELAY_S: env.int({ default: DEFAULT_TIMING.unbondingDelayMs / S, min: 1 }),
  SLASHING_EVIDENCE_MAX_AGE_S: env.int({ default: DEFAULT_TIMING.evidenceMaxAgeMs / S, min: 1 }),
  SLASHING_VETO_WINDOW_S: env.int({ default: DEFAULT_TIMING.vetoWindowMs / S, min: 0 }),
  SLASHING_SAMPLER_DETECTION_WINDOW_S: env.int({ default: DEFAULT_TIMING.samplerDetectionWindowMs / S, min: 0 }),
  /** Bonded stake (base units) a provider needs to offer storage or compute. */
  SLASHING_MIN_STAKE: env.string({ default: "1000000" }),
  /** Known DA sampler actor ids and the signatures an unavailability attestation needs. */
  SLASHING_SAMPLERS: env.list({ default: [] }),
  SLASHING_QUORUM_THRESHOLD: env.int({ default: 2, min: 1 }),
  /** Operators whose lease-breach attestations count, and checkers whose spot checks count. */
  SLASHING_OPERATORS: env.list({ default: [] }),
  SLASHING_CHECKERS: env.list({ default: [] }),
  /** Keys whose countersignature makes a lease-breach attestation count (tenant monitors, operator keys); empty: no lease breach verifies. */
  SLASHING_COUNTERSIGNERS: env.list({ default: [] }),
  SLASHING_MIN_MISSED_HEARTBEATS: env.int({ default: 3, min: 1 }),
  /** The veto council (actor ids) and k of its n. */
  SLASHING_COUNCIL: env.list({ default: [] }),
  SLASHING_VETO_THRESHOLD: env.int({ default: 1, min: 1 }),
  /** First downtime jail (Cosmos: 600 s). */
  SLASHING_JAIL_S: env.int({ default: DEFAULT_PENALTY_PARAMS.jailMs / S, min: 1 }),
  /** This service's actor key seed (base64url, 32 bytes): it signs slash records. Unset: generated at start. */
  SLASHING_SERVICE_KEY: env.optionalString(),
  /** How often due slashes, matured unbondings and ended jails are processed. */
  SLASHING_TICK_MS: env.int({ default: 1000, min: 10 }),
  /** The ledger slash records are anchored in (gRPC base URL). Unset: records are kept, not anchored, and the service warns. */
  SLASHING_LEDGER_URL: env.optionalString(),
  /** The ledger's pinned log verifier key (signed-note form): receipts are checked offline against it. */
  SLASHING_LEDGER_LOG_KEY: env.optionalString(),
  SLASHING_LEDGER_TIMEOUT_MS: env.int({ default: 30_000, min: 10 }),
  /**
   * Check every unavailability attestation's challenge seed (tree size + root) against the
   * ledger (SLASHING_LEDGER_URL, SLASHING_LEDGER_LOG_KEY): its latest signed checkpoint and a
   * consistency proof. A seed that is no tree head of the log is refused. On by default when
   * the ledger and its key are set.
   */
  SLASHING_CHECK_CHALLENGE_SEEDS: env.bool({ default: true }),
  /** How often records not yet anchored are sent to the ledger again. */
  SLASHING_ANCHOR_INTERVAL_MS: env.int({ default: 1000, min: 10 }),
  /**
   * Where providers run, for the shared-infrastructure correlation: JSON
   * `{"<provider actor id>": {"region": "…", "vendor": "…"}}`. Unset or `{}`: none known.
   */
  SLASHING_PROVIDER_INFRA: env.string({ default: "{}" }),
  /** Consume DA attestations (`deai.da.attestation_issued`) as unavailability evidence. */
  SLASHING_CONSUME_ATTESTATIONS: env.bool({ default: true }),
} as const;

export type SlashingConfig = ConfigOf<typeof configSchema> & { readonly params: SlashingParams };

function parseInfrastructure(text: string): Record<string, ProviderInfrastructure> {
  const bad = (why: string): never => {
    throw new ConfigError("SLASHING_PROVIDER_INFRA", `${why}: expected {"<provider id>": {"region": "…", "vendor": "…"}}`);
  };
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return bad(`not JSON (${(e as Error).message})`);
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) return bad("not an object");
  const out: Record<string, ProviderInfrastructure> = {};
  for (const [id, x] of Object.entries(v as Record<string, unknown>)) {
    if (x === null || typeof x !== "object" || Array.isArray(x)) return bad(`${id} is not an object`);
    const { region, vendor, ...rest } = x as Record<string, unknown>;
    if (Object.keys(rest).length > 0) return bad(`${id} has unknown fields ${Object.keys(rest).join(", ")}`);
    if ((region !== undefined && typeof region !== "string") || (vendor !== undefined && typeof vendor !== "string"))
      return bad(`${id}: region and vendor must be strings`);
    out[id] = { ...(region ? { region } : {}), ...(vendor ? { vendor } : {}) };
  }
  return out;
}

/** The only reader of process.env in this service; refuses parameters that break the timing rule. */
export function loadSlashingConfig(source: Record<string, string | undefined> = process.env): SlashingConfig {
  const c = loadConfig(configSchema, source);
  if (!/^(0|[1-9]\d*)$/.test(c.SLASHING_MIN_STAKE)) throw new ConfigError("SLASHING_MIN_STAKE", "must be a decimal integer of base units");
  const params: SlashingParams = {
    currency: c.SLASHING_CURRENCY,
    unbondingDelayMs: c.SLASHING_UNBONDING_DELAY_S * S,
    evidenceMaxAgeMs: c.SLASHING_EVIDENCE_MAX_AGE_S * S,
    vetoWindowMs: c.SLASHING_VETO_WINDOW_S * S,
    samplerDetectionWindowMs: c.SLASHING_SAMPLER_DETECTION_WINDOW_S * S,
    minStake: BigInt(c.SLASHING_MIN_STAKE),
    council: c.SLASHING_COUNCIL,
    vetoThreshold: c.SLASHING_COUNCIL.length === 0 ? 1 : c.SLASHING_VETO_THRESHOLD,
    trust: {
      samplers: c.SLASHING_SAMPLERS,
      quorumThreshold: c.SLASHING_QUORUM_THRESHOLD,
      operators: c.SLASHING_OPERATORS,
      countersigners: c.SLASHING_COUNTERSIGNERS,
      checkers: c.SLASHING_CHECKERS,
      minMissedHeartbeats: c.SLASHING_MIN_MISSED_HEARTBEATS,
    },
    penalty: { ...DEFAULT_PENALTY_PARAMS, jailMs: c.SLASHING_JAIL_S * S },
    infrastructure: parseInfrastructure(c.SLASHING_PROVIDER_INFRA),
  };
  try {
    checkSlashingParams(params);
  } catch (e) {
    const field = (e as { details?: { field?: string } }).details?.field ?? "SLASHING_UNBONDING_DELAY_S";
    throw new ConfigError(field, (e as Error).message);
  }
  return { ...c, params };
}
