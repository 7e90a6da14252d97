import { ConfigError, env, loadConfig, parseProviders, serviceConfigSchema, type ConfigOf, type ProviderConfig } from "@deai/kit";

import { repairConfigSchema } from "./app/repair-config.js";

/** The da-sampler service's configuration: the kit's variables, with this service's own. */
export const configSchema = {
  ...serviceConfigSchema,
  PORT: env.int({ default: 7103, min: 0, max: 65535 }),
  /**
   * Seeds (base64url, 32 bytes each, comma-separated) of the sampler identities this process
   * runs; each signs its own rounds and votes. Unset: DA_SAMPLER_COUNT keys are generated at start.
   */
  DA_SAMPLER_KEYS: env.optionalString(),
  /** Identities generated when DA_SAMPLER_KEYS is unset (development only). */
  DA_SAMPLER_COUNT: env.int({ default: 3, min: 1, max: 16 }),
  /**
   * Actor ids of every sampler of the quorum (this process's and the others'), comma-separated.
   * Unset: this process's identities. Votes and attestations of anyone else are refused.
   */
  DA_SAMPLERS: env.list({ default: [] }),
  /** Storage providers the sampler may read (same JSON as INGESTION_PROVIDERS; ids as in manifests). */
  DA_PROVIDERS: env.string({ default: "[]" }),
  /** Ingestion's REST base URL: leaf tables are fetched from it (and checked against shardRoot). */
  DA_INGESTION_URL: env.optionalString(),
  /** The ledger (base URL): challenge seeds (latest checkpoint) and anchoring. */
  DA_LEDGER_URL: env.optionalString(),
  /** The ledger's log verifier key: checkpoints and receipts are checked offline against it. */
  DA_LEDGER_LOG_KEY: env.optionalString(),
  DA_LEDGER_TIMEOUT_MS: env.int({ default: 30_000, min: 10 }),
  /** Target: fraction f of a slot whose loss must be caught. */
  DA_MISSING_FRACTION: env.string({ default: "0.01" }),
  /** Target: miss probability ε per window. */
  DA_EPSILON: env.string({ default: "1e-6" }),
  /** Window the target applies to. */
  DA_WINDOW_MS: env.int({ default: 86_400_000, min: 1 }),
  /** Time between two rounds of one sampler on one (dataset, slot). */
  DA_ROUND_INTERVAL_MS: env.int({ default: 600_000, min: 10 }),
  /** Audit budget: bytes read per stored byte per day, all samplers together. */
  DA_AUDIT_BUDGET: env.string({ default: "1" }),
  /** A shard answered later than this is a `late` fault. */
  DA_SAMPLE_DEADLINE_MS: env.int({ default: 2_000, min: 1 }),
  /** No answer within this is `timeout` (the provider counts as gone for that read). */
  DA_SAMPLE_TIMEOUT_MS: env.int({ default: 6_000, min: 1 }),
  /** Signatures an `unavailable` re-check needs to be evidence. */
  DA_QUORUM_THRESHOLD: env.int({ default: 2, min: 1 }),
  /** A re-check without a quorum after this long expires (no evidence). */
  DA_RECHECK_TIMEOUT_MS: env.int({ default: 120_000, min: 10 }),
  /** Rounds of one (sampler, dataset, slot) summarized per `rounds` attestation. */
  DA_SUMMARY_ROUNDS: env.int({ default: 36, min: 1 }),
  /** Period of the anchoring and re-check expiry loop. */
  DA_ANCHOR_INTERVAL_MS: env.int({ default: 1_000, min: 10 }),
  /** Reads in flight per provider from this process. */
  DA_PROVIDER_CONCURRENCY: env.int({ default: 4, min: 1 }),
  /** On-demand samples (RequestSample) per caller per minute. */
  DA_REQUESTS_PER_MINUTE: env.int({ default: 10, min: 1 }),
  /** Beta reputation forgetting per sample outcome. */
  DA_REPUTATION_LAMBDA: env.string({ default: "0.999" }),
  ...repairConfigSchema,
} as const;

export type DaSamplerConfig = ConfigOf<typeof configSchema> & {
  readonly providers: readonly ProviderConfig[];
  readonly missingFraction: number;
  readonly epsilon: number;
  readonly auditBudget: number;
  readonly reputationLambda: number;
};

function fraction(name: string, v: string, lo: number, hi: number, open = true): number {
  const n = Number(v);
  if (!/^[0-9.eE+-]+$/.test(v) || !Number.isFinite(n) || (open ? n <= lo || n >= hi : n <= lo || n > hi))
    throw new ConfigError(name, `must be a number in (${lo}, ${hi}${open ? ")" : "]"}, got ${JSON.stringify(v)}`);
  return n;
}

/** The only reader of process.env in this service. */
export function loadDaSamplerConfig(source: Record<string, string | undefined> = process.env): DaSamplerConfig {
  const c = loadConfig(configSchema, source);
  let providers: ProviderConfig[];
  try {
    providers = parseProviders(c.DA_PROVIDERS);
  } catch (e) {
    throw new ConfigError("DA_PROVIDERS", (e as Error).message);
  }
  if (c.DA_SAMPLE_TIMEOUT_MS < c.DA_SAMPLE_DEADLINE_MS) throw new ConfigError("DA_SAMPLE_TIMEOUT_MS", "must be ≥ DA_SAMPLE_DEADLINE_MS");
  if (c.DA_ROUND_INTERVAL_MS > c.DA_WINDOW_MS) throw new ConfigError("DA_ROUND_INTERVAL_MS", "must be ≤ DA_WINDOW_MS");
  return {
    ...c,
    providers,
    missingFraction: fraction("DA_MISSING_FRACTION", c.DA_MISSING_FRACTION, 0, 1),
    epsilon: fraction("DA_EPSILON", c.DA_EPSILON, 0, 1),
    auditBudget: fraction("DA_AUDIT_BUDGET", c.DA_AUDIT_BUDGET, 0, Number.MAX_VALUE),
    reputationLambda: fraction("DA_REPUTATION_LAMBDA", c.DA_REPUTATION_LAMBDA, 0, 1, false),
  };
}
