import { ConfigError, env, loadConfig, serviceConfigSchema, type ConfigOf } from "@deai/kit";
import { parseVerifierKey } from "@deai/proofs";

/**
 * The dashboard's configuration: the kit's server variables (Postgres, NATS and S3 ones are
 * ignored: the dashboard uses none) and where the browser finds each platform API.
 */
export const configSchema = {
  ...serviceConfigSchema,
  PORT: env.int({ default: 7108, min: 0, max: 65535 }),
  /** The pinned log verifier key (signed-note form, `ledger keygen` prints it). Every receipt is checked against it in the browser. */
  DASHBOARD_LOG_KEY: env.optionalString(),
  /** Ledger base URL as the browser reaches it (REST + tlog-tiles; the ledger sends CORS). */
  DASHBOARD_LEDGER_URL: env.optionalString(),
  /** Path prefix of the ledger's tlog-tiles routes (the ledger's LEDGER_TILES_PREFIX). */
  DASHBOARD_LEDGER_TILES_PREFIX: env.string({ default: "" }),
  /** Base URLs of the other services' REST APIs, as the browser reaches them. */
  DASHBOARD_INGESTION_URL: env.optionalString(),
  DASHBOARD_SAMPLER_URL: env.optionalString(),
  DASHBOARD_MARKETPLACE_URL: env.optionalString(),
  DASHBOARD_SLASHING_URL: env.optionalString(),
  DASHBOARD_TRAINING_URL: env.optionalString(),
  /**
   * Read-only passthrough: when on, the dashboard forwards GET/HEAD under /api/<name>/ to the
   * URL configured for <name>, and the browser uses that path (same origin): the services other
   * than the ledger send no CORS headers. Off: the browser calls the URLs directly.
   */
  DASHBOARD_PROXY: env.bool({ default: true }),
  /** Largest upstream answer the passthrough relays. */
  DASHBOARD_PROXY_MAX_BYTES: env.int({ default: 8 * 1024 * 1024, min: 1024 }),
  DASHBOARD_PROXY_TIMEOUT_MS: env.int({ default: 10_000, min: 100 }),
} as const;

export type DashboardConfig = ConfigOf<typeof configSchema>;

export const API_NAMES = ["ledger", "ingestion", "sampler", "marketplace", "slashing", "training"] as const;
export type ApiName = (typeof API_NAMES)[number];

export function apiUrls(config: DashboardConfig): Partial<Record<ApiName, string>> {
  const given: Record<ApiName, string | undefined> = {
    ledger: config.DASHBOARD_LEDGER_URL,
    ingestion: config.DASHBOARD_INGESTION_URL,
    sampler: config.DASHBOARD_SAMPLER_URL,
    marketplace: config.DASHBOARD_MARKETPLACE_URL,
    slashing: config.DASHBOARD_SLASHING_URL,
    training: config.DASHBOARD_TRAINING_URL,
  };
  const out: Partial<Record<ApiName, string>> = {};
  for (const name of API_NAMES) {
    const url = given[name];
    if (url === undefined || url === "") continue;
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new ConfigError(`DASHBOARD_${name.toUpperCase()}_URL`, `not a URL: ${url}`);
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      throw new ConfigError(`DASHBOARD_${name.toUpperCase()}_URL`, `must be http(s), got ${parsed.protocol}`);
    }
    out[name] = url.replace(/\/+$/, "");
  }
  return out;
}

export function loadDashboardConfig(source: Record<string, string | undefined> = process.env): DashboardConfig {
  const config = loadConfig(configSchema, source);
  if (config.DASHBOARD_LOG_KEY !== undefined) {
    try {
      parseVerifierKey(config.DASHBOARD_LOG_KEY);
    } catch (e) {
      throw new ConfigError("DASHBOARD_LOG_KEY", (e as Error).message);
    }
  }
  apiUrls(config);
  return config;
}
