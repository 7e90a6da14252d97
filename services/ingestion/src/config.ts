import { ConfigError, env, loadConfig, serviceConfigSchema, type ConfigOf } from "@deai/kit";

import { parseProviders, type ProviderConfig } from "./providers/providers.js";

/** The ingestion service's configuration: the kit's variables, with this service's own. */
export const configSchema = {
  ...serviceConfigSchema,
  PORT: env.int({ default: 7102, min: 0, max: 65535 }),
  /**
   * Storage providers shards may be placed on: a JSON array of
   * `{"id","endpoint","bucket","accessKey","secretKey","region"?,"reliability"?,"stake"?}`.
   * Empty: the service serves reads but refuses new uploads. (The marketplace takes this over.)
   */
  INGESTION_PROVIDERS: env.string({ default: "[]" }),
  /** The ledger manifests are anchored in (base URL of its gRPC/REST port). Unset: uploads cannot complete. */
  INGESTION_LEDGER_URL: env.optionalString(),
  /**
   * This service's actor key seed (base64url, 32 bytes): it signs ledger appends and
   * shard_invalid reports. Unset: a key is generated at start (its id is logged).
   */
  INGESTION_SERVICE_KEY: env.optionalString(),
  /** An upload idle this long expires; its objects are deleted. */
  INGESTION_UPLOAD_TTL_S: env.int({ default: 24 * 3600, min: 1 }),
  /** How often expired uploads are swept. */
  INGESTION_SWEEP_INTERVAL_MS: env.int({ default: 30_000, min: 10 }),
  /** Smallest multipart part written per slot (S3 and MinIO need ≥ 5 MiB for all parts but the last). */
  INGESTION_PART_BYTES: env.int({ default: 5 * 1024 * 1024, min: 1024 }),
  /** Largest dataset accepted. */
  INGESTION_MAX_UPLOAD_BYTES: env.int({ default: 2 ** 50, min: 1 }),
  /** A read hedges to another slot when a shard range has not arrived after this long. */
  INGESTION_HEDGE_MS: env.int({ default: 500, min: 1 }),
  /** Stripes fetched per range read when downloading. */
  INGESTION_READ_STRIPES: env.int({ default: 4, min: 1, max: 256 }),
} as const;

export type IngestionConfig = ConfigOf<typeof configSchema> & { readonly providers: readonly ProviderConfig[] };

/** The only reader of process.env in this service. */
export function loadIngestionConfig(source: Record<string, string | undefined> = process.env): IngestionConfig {
  const config = loadConfig(configSchema, source);
  let providers: ProviderConfig[];
  try {
    providers = parseProviders(config.INGESTION_PROVIDERS);
  } catch (e) {
    throw new ConfigError("INGESTION_PROVIDERS", (e as Error).message);
  }
  return { ...config, providers };
}
