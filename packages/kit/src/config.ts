/**
 * Typed, frozen configuration read from the environment in one place.
 *
 * Every service calls `loadConfig(schema)` once from its `config.ts`; a missing or
 * malformed variable throws a `ConfigError` that names the variable, so a service
 * fails fast at start instead of at first use.
 */

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`config: ${variable}: ${message}`);
  }
}

type Env = Readonly<Record<string, string | undefined>>;

/** A parser for one variable; `default` is used when the variable is unset or empty. */
export interface Var<T> {
  readonly read: (name: string, env: Env) => T;
}

function raw(name: string, env: Env): string | undefined {
  const v = env[name];
  return v === undefined || v === "" ? undefined : v;
}

function required<T>(name: string, value: T | undefined): T {
  if (value === undefined) throw new ConfigError(name, "is required but not set");
  return value;
}

/** Variable parsers. */
export const env = {
  string(opts: { default?: string } = {}): Var<string> {
    return { read: (name, e) => required(name, raw(name, e) ?? opts.default) };
  },
  optionalString(): Var<string | undefined> {
    return { read: (name, e) => raw(name, e) };
  },
  int(opts: { default?: number; min?: number; max?: number } = {}): Var<number> {
    return {
      read: (name, e) => {
        const s = raw(name, e);
        if (s === undefined) return required(name, opts.default);
        if (!/^-?\d+$/.test(s)) throw new ConfigError(name, `must be an integer, got ${JSON.stringify(s)}`);
        const n = Number(s);
        if (opts.min !== undefined && n < opts.min) throw new ConfigError(name, `must be ≥ ${opts.min}, got ${n}`);
        if (opts.max !== undefined && n > opts.max) throw new ConfigError(name, `must be ≤ ${opts.max}, got ${n}`);
        return n;
      },
    };
  },
  bool(opts: { default?: boolean } = {}): Var<boolean> {
    return {
      read: (name, e) => {
        const s = raw(name, e);
        if (s === undefined) return required(name, opts.default);
        if (/^(1|true|yes|on)$/i.test(s)) return true;
        if (/^(0|false|no|off)$/i.test(s)) return false;
        throw new ConfigError(name, `must be true or false, got ${JSON.stringify(s)}`);
      },
    };
  },
  url(opts: { default?: string; protocols?: readonly string[] } = {}): Var<string> {
    return {
      read: (name, e) => {
        const s = required(name, raw(name, e) ?? opts.default);
        let u: URL;
        try {
          u = new URL(s);
        } catch {
          throw new ConfigError(name, `must be a URL, got ${JSON.stringify(s)}`);
        }
        if (opts.protocols && !opts.protocols.includes(u.protocol.replace(/:$/, ""))) {
          throw new ConfigError(name, `must use ${opts.protocols.join(" or ")}, got ${u.protocol}`);
        }
        return s;
      },
    };
  },
  oneOf<const T extends string>(values: readonly T[], opts: { default?: T } = {}): Var<T> {
    return {
      read: (name, e) => {
        const s = raw(name, e) ?? opts.default;
        const v = required(name, s);
        if (!values.includes(v as T)) throw new ConfigError(name, `must be one of ${values.join(", ")}, got ${JSON.stringify(v)}`);
        return v as T;
      },
    };
  },
  /** Comma-separated list. */
  list(opts: { default?: readonly string[] } = {}): Var<readonly string[]> {
    return {
      read: (name, e) => {
        const s = raw(name, e);
        if (s === undefined) return required(name, opts.default);
        return s
          .split(",")
          .map((x) => x.trim())
          .filter((x) => x !== "");
      },
    };
  },
} as const;

export type Schema = Record<string, Var<unknown>>;
export type ConfigOf<S extends Schema> = { readonly [K in keyof S]: S[K] extends Var<infer T> ? T : never };

/** Parses every variable of `schema` from `source` (default: process.env) and freezes the result. */
export function loadConfig<S extends Schema>(schema: S, source: Env = process.env): ConfigOf<S> {
  const out: Record<string, unknown> = {};
  for (const [name, v] of Object.entries(schema)) out[name] = v.read(name, source);
  return Object.freeze(out) as ConfigOf<S>;
}

/** The variables every service reads (see README "Configuration"). */
export const serviceConfigSchema = {
  HOST: env.string({ default: "127.0.0.1" }),
  PORT: env.int({ default: 0, min: 0, max: 65535 }),
  LOG_LEVEL: env.oneOf(["trace", "debug", "info", "warn", "error", "fatal", "silent"], { default: "info" }),
  DATABASE_URL: env.url({ default: "postgres://postgres@127.0.0.1:5432/deai", protocols: ["postgres", "postgresql"] }),
  DB_POOL_SIZE: env.int({ default: 10, min: 1, max: 200 }),
  NATS_URL: env.url({ default: "nats://127.0.0.1:4222", protocols: ["nats", "tls"] }),
  /** Prefix for every stream and subject; lets tests and tenants share one NATS server. */
  NATS_PREFIX: env.string({ default: "" }),
  S3_ENDPOINT: env.url({ default: "http://127.0.0.1:9000", protocols: ["http", "https"] }),
  S3_BUCKET: env.string({ default: "deai" }),
  S3_ACCESS_KEY: env.string({ default: "S3RVER" }),
  S3_SECRET_KEY: env.string({ default: "S3RVER" }),
  S3_REGION: env.string({ default: "us-east-1" }),
  /** OTLP/HTTP collector (e.g. http://otel-collector:4318): traces and metrics are exported there when set. */
  OTEL_EXPORTER_OTLP_ENDPOINT: env.optionalString(),
  /** Period of the OTLP metric export, in milliseconds (the OpenTelemetry variable). */
  OTEL_METRIC_EXPORT_INTERVAL: env.int({ default: 15_000, min: 100 }),
  /** Serve /metrics (Prometheus text) on the service's HTTP port. */
  METRICS_ENABLED: env.bool({ default: true }),
  SHUTDOWN_TIMEOUT_MS: env.int({ default: 10_000, min: 100 }),
  /**
   * On SIGTERM, how long the service stays up but not ready (/readyz 503, gRPC health
   * NOT_SERVING) before it stops accepting, so endpoints and load balancers drop it first.
   * The chart's terminationGracePeriodSeconds must exceed preStop + this + SHUTDOWN_TIMEOUT_MS.
   */
  SHUTDOWN_DRAIN_MS: env.int({ default: 5_000, min: 0 }),
  /** Signed requests older (or further in the future) than this are refused. */
  SIGNATURE_MAX_AGE_S: env.int({ default: 300, min: 1 }),
  /**
   * Comma-separated host[:port] names under which clients reach this service (what they put
   * in its URL); a signed request addressed to any other authority is refused, so a request
   * signed for one service cannot be replayed to another. Unset: the loopback names with the
   * bound port only (local runs and tests); every deployed service must set it.
   */
  PUBLIC_AUTHORITY: env.list({ default: [] }),
  /** Connection limits of the kit's server (server/connections.ts); 0 = the documented default. */
  SERVER_HEADERS_TIMEOUT_MS: env.int({ default: 0, min: 0 }),
  SERVER_IDLE_TIMEOUT_MS: env.int({ default: 0, min: 0 }),
  SERVER_INACTIVITY_TIMEOUT_MS: env.int({ default: 0, min: 0 }),
  SERVER_MIN_BYTES_PER_WINDOW: env.int({ default: 0, min: 0 }),
  SERVER_MAX_CONNECTIONS: env.int({ default: 0, min: 0 }),
  SERVER_MAX_CONNECTIONS_PER_ADDRESS: env.int({ default: 0, min: 0 }),
} as const;

export type ServiceConfig = ConfigOf<typeof serviceConfigSchema>;
