import { actorKeyFromSeed, generateActorKey, LedgerAnchoringClient, PostgresNonceStore, type ServiceDefinition } from "@deai/kit";
import { ConfigError } from "@deai/kit";
import type { Kysely } from "kysely";

import { parseVerifierKey } from "@deai/proofs";

import { Datasets } from "./app/datasets.js";
import { MemoryBudget } from "./app/memory-budget.js";
import { ingestionReadiness } from "./app/readiness.js";
import { Uploads, type LedgerAnchor } from "./app/uploads.js";
import { nativeCodec } from "./coding/reed-solomon.js";
import type { IngestionConfig } from "./config.js";
import { DATASET_STREAM } from "./events/dataset-events.js";
import { subscribePlacements } from "./events/placement-events.js";
import { ingestionService } from "./grpc/ingestion-service.js";
import { ingestionRouteDocs } from "./http/route-docs.js";
import { ingestionRoutes } from "./http/routes.js";
import { ProviderRegistry, WeightedPlacement } from "@deai/kit";
import { migrations } from "./store/migrations.js";
import type { IngestionDb } from "./store/tables.js";

/**
 * The ingestion service: dataset upload/download, erasure coding, placement, manifests.
 * Manifests are anchored in the ledger through its gRPC API, signed as this service's actor.
 */
export function ingestionDefinition(config: IngestionConfig): ServiceDefinition<IngestionDb> {
  nativeCodec();
  let key;
  try {
    key = config.INGESTION_SERVICE_KEY ? actorKeyFromSeed(config.INGESTION_SERVICE_KEY) : generateActorKey();
  } catch (e) {
    throw new ConfigError("INGESTION_SERVICE_KEY", (e as Error).message);
  }
  let logVerifier;
  try {
    logVerifier = config.INGESTION_LEDGER_LOG_KEY ? parseVerifierKey(config.INGESTION_LEDGER_LOG_KEY) : undefined;
  } catch (e) {
    throw new ConfigError("INGESTION_LEDGER_LOG_KEY", (e as Error).message);
  }
  return {
    name: "ingestion",
    version: "0.2.0",
    migrations,
    usesBlobs: false,
    create: async ({ db, bus, outbox, logger, scheduler, clock }) => {
      await bus.ensureStream(DATASET_STREAM);
      if (!config.INGESTION_SERVICE_KEY) logger.warn({ actor: key.id }, "INGESTION_SERVICE_KEY is not set: using a generated key");
      const registry = new ProviderRegistry(config.providers, {
        clock,
        timeouts: {
          callMs: config.INGESTION_PROVIDER_CALL_TIMEOUT_MS,
          readMs: config.INGESTION_PROVIDER_READ_TIMEOUT_MS,
          partIdleMs: config.INGESTION_PROVIDER_PART_IDLE_MS,
          probeMs: config.INGESTION_PROVIDER_PROBE_TIMEOUT_MS,
          probeTtlMs: config.INGESTION_PROVIDER_PROBE_TTL_MS,
        },
      });
      // Readiness says so too (app/readiness.ts).
      if (registry.all.length === 0) logger.warn("INGESTION_PROVIDERS is empty: uploads are refused until providers are configured");
      for (const p of registry.all) {
        await p.ensureBucket().catch((e: unknown) => logger.warn({ err: e, provider: p.id }, "storage provider unreachable at start"));
      }
      let ledger: LedgerAnchor | undefined;
      if (config.INGESTION_LEDGER_URL) {
        ledger = new LedgerAnchoringClient({
          baseUrl: config.INGESTION_LEDGER_URL,
          key,
          timeoutMs: config.INGESTION_LEDGER_TIMEOUT_MS,
          ...(logVerifier ? { logVerifier } : {}),
        });
      } else logger.warn("INGESTION_LEDGER_URL is not set: uploads cannot be anchored");
      const readOptions = { hedgeMs: config.INGESTION_HEDGE_MS, windowStripes: config.INGESTION_READ_STRIPES, clock };
      const uploads = new Uploads({
        db,
        registry,
        placement: new WeightedPlacement(registry),
        outbox,
        logger,
        ledger,
        ttlS: config.INGESTION_UPLOAD_TTL_S,
        partBytes: config.INGESTION_PART_BYTES,
        maxUploadBytes: config.INGESTION_MAX_UPLOAD_BYTES,
        maxLeafTableBytes: config.INGESTION_MAX_LEAF_TABLE_BYTES,
        ledgerEntryBytes: config.INGESTION_LEDGER_MAX_ENTRY_BYTES,
        memory: new MemoryBudget(config.INGESTION_SESSION_MEMORY_BYTES),
        sessionIdleMs: config.INGESTION_SESSION_IDLE_MS,
        anchorRetryAfterMs: config.INGESTION_ANCHOR_RETRY_AFTER_MS,
        readOptions: { ...readOptions, onInvalid: () => undefined },
        clock,
      });
      const datasets = new Datasets({ db, registry, outbox, logger, clock, reporter: key.id, readOptions });
      // Every replica sweeps (each step is a conditional transition, and a repeated anchor returns
      // the ledger's existing entry), so a crashed replica's lease never delays recovery; the
      // scheduler keeps runs from overlapping and the cadence across restarts (kit_schedules).
      scheduler.register({
        name: "ingestion.sweeper",
        intervalMs: config.INGESTION_SWEEP_INTERVAL_MS,
        run: async () => void (await uploads.sweepOnce()),
      });
      // Downloads follow repairs (the DA sampler's re-placements).
      await subscribePlacements({
        bus,
        db,
        logger,
        clock,
        signers: config.INGESTION_PLACEMENT_SIGNERS,
        ...(logVerifier ? { log: logVerifier } : {}),
      });
      return {
        bindings: [ingestionService(uploads, datasets, registry)],
        http: ingestionRoutes({
          uploads,
          datasets,
          nonces: new PostgresNonceStore(db as unknown as Kysely<unknown>, undefined, undefined, clock),
          maxAgeS: config.SIGNATURE_MAX_AGE_S,
          logger,
        }),
        httpDocs: ingestionRouteDocs,
        readiness: ingestionReadiness({
          registry,
          minProviders: config.INGESTION_READY_MIN_PROVIDERS,
          ledgerUrl: config.INGESTION_LEDGER_URL,
          probeTimeoutMs: config.INGESTION_PROVIDER_PROBE_TIMEOUT_MS,
          probeTtlMs: config.INGESTION_PROVIDER_PROBE_TTL_MS,
          clock,
        }),
        stop: async () => {
          uploads.closeSessions();
        },
      };
    },
  };
}
