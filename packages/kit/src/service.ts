/**
 * The shape every service runs in: config → telemetry → deps (Postgres, NATS, S3) →
 * migrations → app → one server; and the reverse on shutdown, within a deadline.
 */
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Kysely } from "kysely";

import { SystemService, type WhoAmIRequest } from "@deai/contracts/deai/system/v1/system_pb";
import type { HandlerContext } from "@connectrpc/connect";

import { BlobStore } from "./blobs/blob-store.js";
import { loadConfig, serviceConfigSchema, type ServiceConfig } from "./config.js";
import { migrate, openDatabase, PostgresNonceStore, type Database, type ForwardMigration } from "./db/database.js";
import { EventBus } from "./events/bus.js";
import { scheduleInboxPrune } from "./events/consumer.js";
import { OutboxRelay } from "./events/outbox.js";
import { createLogger, type Logger } from "./logger.js";
import { requireActor } from "./server/auth.js";
import type { NodeRequest, NodeResponse } from "./server/rest-gateway.js";
import type { ConnectionLimits } from "./server/connections.js";
import type { HttpRouteDoc } from "./server/openapi.js";
import { Server, type Readiness } from "./server/server.js";
import { bind, type ServiceBinding } from "./server/service-binding.js";
import { Scheduler } from "./schedule/scheduler.js";
import { startTelemetry, type Telemetry } from "./telemetry.js";
import { systemClock, type Clock } from "./time/clock.js";

export interface ServiceDeps<DB> {
  readonly config: ServiceConfig;
  readonly logger: Logger;
  readonly database: Database<DB>;
  readonly db: Kysely<DB>;
  readonly bus: EventBus;
  readonly outbox: OutboxRelay;
  readonly blobs: BlobStore;
  /** The service's time: read it here, never from Date. */
  readonly clock: Clock;
  /**
   * Scheduled loops: register them in `create()`; they start once the app is created and
   * stop (runs in flight finish) on shutdown, before the app's stop and the connections close.
   */
  readonly scheduler: Scheduler;
}

export interface App {
  readonly bindings: readonly ServiceBinding[];
  /** Plain HTTP routes outside the contracts (tlog-tiles, downloads); return true when handled. */
  readonly http?: (req: NodeRequest, res: NodeResponse) => Promise<boolean>;
  /** OpenAPI operations of the `http` routes. */
  readonly httpDocs?: readonly HttpRouteDoc[];
  /** Extra readiness checks of the app. */
  readonly readiness?: () => Promise<Record<string, string>>;
  /** Called after the server drained and consumers stopped, before connections close. */
  readonly stop?: () => Promise<void>;
}

export interface ServiceDefinition<DB> {
  /** e.g. "ledger"; also the default Postgres schema (dashes become underscores). */
  readonly name: string;
  readonly version: string;
  readonly migrations: Record<string, ForwardMigration>;
  /** Whether the service uses S3; when false no bucket is created and S3 is not a readiness check. */
  readonly usesBlobs?: boolean;
  /** Builds the app from its dependencies (register consumers here). */
  readonly create: (deps: ServiceDeps<DB>) => Promise<App>;
}

export interface RunningService<DB> {
  readonly port: number;
  readonly deps: ServiceDeps<DB>;
  readonly server: Server;
  /**
   * Graceful stop; resolves true when everything finished before the deadline. With
   * `drainMs`, the service first stays up but not ready for that long (what SIGTERM does).
   */
  stop(opts?: { drainMs?: number }): Promise<boolean>;
}

/** The server's connection limits from config; unset (0) values keep the kit's defaults. */
function serverLimits(config: ServiceConfig): ConnectionLimits {
  const given: Record<keyof ConnectionLimits, number> = {
    headersTimeoutMs: config.SERVER_HEADERS_TIMEOUT_MS,
    idleTimeoutMs: config.SERVER_IDLE_TIMEOUT_MS,
    inactivityTimeoutMs: config.SERVER_INACTIVITY_TIMEOUT_MS,
    minBytesPerWindow: config.SERVER_MIN_BYTES_PER_WINDOW,
    maxConnections: config.SERVER_MAX_CONNECTIONS,
    maxConnectionsPerAddress: config.SERVER_MAX_CONNECTIONS_PER_ADDRESS,
    maxStreamsPerSession: 0,
  };
  return Object.fromEntries(Object.entries(given).filter(([, v]) => v > 0));
}

/** The Postgres schema a service owns. */
export function schemaOf(name: string): string {
  return name.replace(/-/g, "_");
}

/** Starts a service in this process: what main.ts and the integration tests call. */
export async function startService<DB>(
  def: ServiceDefinition<DB>,
  config: ServiceConfig,
  opts: { logger?: Logger; telemetry?: Telemetry; clock?: Clock } = {},
): Promise<RunningService<DB>> {
  const logger = opts.logger ?? createLogger({ service: def.name, level: config.LOG_LEVEL });
  const clock = opts.clock ?? systemClock;
  const startedAt = timestampFromDate(clock.now());
  const database = openDatabase<DB>({ url: config.DATABASE_URL, schema: schemaOf(def.name), poolSize: config.DB_POOL_SIZE });
  const cleanup: (() => Promise<unknown>)[] = [() => database.close()];
  try {
    const applied = await migrate(database as Database<unknown>, def.migrations);
    logger.info({ schema: database.schema, migrations: applied.length }, "migrations applied");
    const bus = await EventBus.connect({ url: config.NATS_URL, prefix: config.NATS_PREFIX, name: def.name, logger });
    cleanup.unshift(() => bus.close());
    const scheduler = new Scheduler({ db: database.db as Kysely<unknown>, clock, logger });
    cleanup.unshift(() => scheduler.stop());
    const outbox = new OutboxRelay(database.db as Kysely<unknown>, bus, logger, { scheduler });
    scheduleInboxPrune(scheduler, database.db as Kysely<unknown>);
    const blobs = new BlobStore({
      endpoint: config.S3_ENDPOINT,
      bucket: config.S3_BUCKET,
      accessKey: config.S3_ACCESS_KEY,
      secretKey: config.S3_SECRET_KEY,
      region: config.S3_REGION,
    });
    if (def.usesBlobs) await blobs.ensureBucket();
    const deps: ServiceDeps<DB> = { config, logger, database, db: database.db, bus, outbox, blobs, clock, scheduler };
    const app = await def.create(deps);
    scheduler.start();
    const system = bind(SystemService, {
      getInfo: () => ({ service: def.name, version: def.version, startedAt, schema: database.schema, migrations: applied }),
      whoAmI: (req: WhoAmIRequest, ctx: HandlerContext) => ({ actor: requireActor(ctx), note: req.note }),
    });
    const readiness = async (): Promise<Readiness> => {
      const checks: Record<string, string> = {};
      checks.postgres = await database.pool
        .query("select 1")
        .then(() => "ok")
        .catch((e: unknown) => `unreachable: ${(e as Error).message}`);
      checks.nats = bus.connected ? "ok" : "disconnected";
      if (def.usesBlobs) checks.s3 = (await blobs.ping()) ? "ok" : "unreachable";
      Object.assign(checks, (await app.readiness?.()) ?? {});
      return { ready: Object.values(checks).every((v) => v === "ok"), checks };
    };
    const server = new Server({
      host: config.HOST,
      port: config.PORT,
      bindings: [system, ...app.bindings],
      logger,
      signing: {
        nonces: new PostgresNonceStore(database.db as Kysely<unknown>, undefined, undefined, clock),
        maxAgeS: config.SIGNATURE_MAX_AGE_S,
      },
      authorities: config.PUBLIC_AUTHORITY,
      limits: serverLimits(config),
      readiness,
      ...(app.http ? { http: app.http } : {}),
      ...(app.httpDocs ? { httpDocs: app.httpDocs } : {}),
      metrics: config.METRICS_ENABLED,
      title: `DeAI OS ${def.name}`,
      version: def.version,
    });
    const port = await server.listen();
    logger.info({ port, host: config.HOST }, "listening (gRPC, Connect, REST on one port)");
    let stopping: Promise<boolean> | undefined;
    const stop = (stopOpts: { drainMs?: number } = {}): Promise<boolean> =>
      (stopping ??= (async () => {
        const drainMs = stopOpts.drainMs ?? 0;
        if (drainMs > 0) {
          server.beginDrain();
          logger.info({ drainMs }, "not ready; still serving while endpoints drain");
          // Wall time: this waits for load balancers, not for anything a test clock drives.
          await systemClock.sleep(drainMs);
        }
        // Wall time on purpose: the deadline races the orchestrator's kill timer, not a test's clock.
        const deadline = systemClock.nowMs() + config.SHUTDOWN_TIMEOUT_MS;
        logger.info({ inFlight: server.inFlight }, "draining");
        let clean = await server.drain(deadline);
        // Every later step shares the same deadline; one that overruns marks the stop unclean.
        const step = async (name: string, f: () => Promise<unknown>): Promise<void> => {
          const left = Math.max(0, deadline - systemClock.nowMs());
          let timer: NodeJS.Timeout | undefined;
          const r = await Promise.race([
            f().then(
              () => "done" as const,
              (e: unknown) => (logger.error({ err: e, step: name }, "shutdown step failed"), "failed" as const),
            ),
            new Promise<"timeout">((res) => (timer = setTimeout(() => res("timeout"), left))),
          ]);
          clearTimeout(timer);
          if (r !== "done") {
            clean = false;
            if (r === "timeout") logger.error({ step: name }, "shutdown step passed the deadline");
          }
        };
        await step("consumers", () => bus.stopConsumers());
        await step("scheduler", () => scheduler.stop());
        if (app.stop) await step("app", app.stop);
        await step("outbox", () => outbox.stop());
        await step("nats", () => bus.close());
        await step("postgres", () => database.close());
        const telemetry = opts.telemetry;
        if (telemetry) await step("telemetry", () => telemetry.shutdown());
        logger.info({ drained: clean }, "stopped");
        return clean;
      })());
    return { port, deps, server, stop };
  } catch (e) {
    for (const c of cleanup) await c().catch(() => undefined);
    throw e;
  }
}

/**
 * The body of every service's main.ts: `migrate` runs migrations and exits; otherwise the
 * service runs until SIGTERM/SIGINT, drains, and exits 0 (1 when the deadline forced it).
 */
export async function runMain<DB>(
  def: ServiceDefinition<DB>,
  config: ServiceConfig = loadConfig(serviceConfigSchema),
  argv = process.argv.slice(2),
): Promise<void> {
  const logger = createLogger({ service: def.name, level: config.LOG_LEVEL });
  if (argv[0] === "migrate") {
    const database = openDatabase<DB>({ url: config.DATABASE_URL, schema: schemaOf(def.name) });
    try {
      const applied = await migrate(database as Database<unknown>, def.migrations);
      logger.info({ schema: database.schema, applied }, "migrations up to date");
    } finally {
      await database.close();
    }
    return;
  }
  if (argv.length > 0) throw new Error(`unknown command ${argv.join(" ")}; usage: main.js [migrate]`);
  const telemetry = startTelemetry({
    service: def.name,
    version: def.version,
    otlpEndpoint: config.OTEL_EXPORTER_OTLP_ENDPOINT,
    prometheus: config.METRICS_ENABLED,
    metricExportIntervalMs: config.OTEL_METRIC_EXPORT_INTERVAL,
  });
  const running = await startService(def, config, { logger, telemetry });
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalCount++ > 0) {
      logger.warn({ signal }, "second signal: exiting now");
      process.exit(1);
    }
    logger.info({ signal }, "shutting down");
    const force = setTimeout(
      () => {
        logger.error("shutdown deadline passed: exiting");
        process.exit(1);
      },
      config.SHUTDOWN_DRAIN_MS + config.SHUTDOWN_TIMEOUT_MS + 2_000,
    );
    force.unref();
    running.stop({ drainMs: config.SHUTDOWN_DRAIN_MS }).then(
      (drained) => process.exit(drained ? 0 : 1),
      (e: unknown) => {
        logger.error({ err: e }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  let signalCount = 0;
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
}
