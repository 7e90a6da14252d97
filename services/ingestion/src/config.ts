import { ConfigError, env, loadConfig, serviceConfigSchema, type ConfigOf } from "@deai/kit";

import { parseProviders, type ProviderConfig } from "@deai/kit";

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
  /** Largest leaf table of one upload (stripes × (k + m) × 32 bytes): bounds the size for a geometry, the reader manifest and shard proofs. */
  INGESTION_MAX_LEAF_TABLE_BYTES: env.int({ default: 64 * 1024 * 1024, min: 1024 }),
  /**
   * Memory budget for the buffers of every upload session on this instance (stripe and part
   * buffers); a session or buffer beyond it gets RESOURCE_EXHAUSTED.
   */
  INGESTION_SESSION_MEMORY_BYTES: env.int({ default: 512 * 1024 * 1024, min: 1024 * 1024 }),
  /** A session with no stream attached for this long is dropped (buffers freed; the client resumes from durable_offset). */
  INGESTION_SESSION_IDLE_MS: env.int({ default: 5 * 60_000, min: 10 }),
  /** An upload left `anchoring` this long (an instance died mid-anchor) is retried by the sweep. */
  INGESTION_ANCHOR_RETRY_AFTER_MS: env.int({ default: 60_000, min: 0 }),
  /** Deadline of multipart create/complete/abort, deletes and stats on a storage provider. */
  INGESTION_PROVIDER_CALL_TIMEOUT_MS: env.int({ default: 30_000, min: 10 }),
  /** Deadline of one range read (request to last byte) on a storage provider. */
  INGESTION_PROVIDER_READ_TIMEOUT_MS: env.int({ default: 10_000, min: 10 }),
  /** A streamed part PUT that takes no bytes (or gives no answer after its last byte) for this long fails. */
  INGESTION_PROVIDER_PART_IDLE_MS: env.int({ default: 30_000, min: 10 }),
  /**
   * Readiness needs at least this many configured storage providers answering their probe.
   * 1: a replica that reaches no provider can neither take nor serve data. Raise it to k + m
   * (12 by default) to stop taking traffic when a default-geometry upload could not be placed;
   * but every replica shares the providers, so that turns a provider outage into an ingestion
   * outage, reads included (they need only k).
   */
  INGESTION_READY_MIN_PROVIDERS: env.int({ default: 1, min: 0 }),
  /** Deadline of a liveness probe. */
  INGESTION_PROVIDER_PROBE_TIMEOUT_MS: env.int({ default: 2_000, min: 10 }),
  /** A probe result is reused this long (one probe in flight per provider). */
  INGESTION_PROVIDER_PROBE_TTL_MS: env.int({ default: 5_000, min: 0 }),
  /**
   * The ledger's log verifier key (signed-note vkey): each receipt is checked offline against
   * it before a dataset is recorded. Unset: receipts are taken as the ledger sends them.
   */
  INGESTION_LEDGER_LOG_KEY: env.optionalString(),
  /**
   * Actor ids allowed to sign placements after repair (the DA samplers), comma-separated.
   * Empty: any placement whose statement verifies against the dataset is followed (reads still
   * check every shard against its leaf, so a wrong placement can cost availability, never bytes).
   */
  INGESTION_PLACEMENT_SIGNERS: env.list({ default: [] }),
  /**
   * Largest entry the ledger accepts (its leaf: the envelope's canonical JSON). Every manifest
   * statement must fit, with room for 8 signatures, so an upload that cannot is refused at create.
   */
  INGESTION_LEDGER_MAX_ENTRY_BYTES: env.int({ default: 65_535, min: 4096 }),
  /** Deadline of one ledger append (with the wait for integration). */
  INGESTION_LEDGER_TIMEOUT_MS: env.int({ default: 30_000, min: 10 }),
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
