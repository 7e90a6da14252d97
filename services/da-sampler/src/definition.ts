import { createHash } from "node:crypto";

import {
  actorKeyFromSeed,
  ConfigError,
  generateActorKey,
  LedgerAnchoringClient,
  ProviderRegistry,
  type ActorKey,
  type ServiceDefinition,
} from "@deai/kit";
import { parseVerifierKey, type AttestedPolicy } from "@deai/proofs";

import { Attestations } from "./app/attestations.js";
import { DatasetCatalog, ingestionDatasets } from "./app/catalog.js";
import { CheckpointSource } from "./app/checkpoints.js";
import type { SamplerContext } from "./app/context.js";
import { daMetrics } from "./app/metrics.js";
import { Quorum } from "./app/quorum.js";
import { Rounds } from "./app/rounds.js";
import { setUpRepair } from "./app/repair-setup.js";
import type { Repairs } from "./app/repair.js";
import { SamplerIdentity } from "./app/sampler-identity.js";
import { SamplingService } from "./app/sampling-service.js";
import { ShardReader } from "./app/shard-reader.js";
import type { DaSamplerConfig } from "./config.js";
import { subscribe } from "./events/subscriptions.js";
import { daSamplerService } from "./grpc/da-sampler-service.js";
import { migrations } from "./store/migrations.js";
import type { DaSamplerDb } from "./store/tables.js";

/** The policy in force, from config. */
export function policyOf(config: DaSamplerConfig, samplers: number): AttestedPolicy {
  return {
    missingFraction: config.missingFraction,
    epsilon: config.epsilon,
    windowMs: config.DA_WINDOW_MS,
    roundIntervalMs: config.DA_ROUND_INTERVAL_MS,
    samplers,
    auditBudget: config.auditBudget,
    deadlineMs: config.DA_SAMPLE_DEADLINE_MS,
    quorumThreshold: config.DA_QUORUM_THRESHOLD,
  };
}

function identitiesOf(config: DaSamplerConfig): ActorKey[] {
  if (!config.DA_SAMPLER_KEYS) return Array.from({ length: config.DA_SAMPLER_COUNT }, () => generateActorKey());
  try {
    return config.DA_SAMPLER_KEYS.split(",").map((s) => actorKeyFromSeed(s.trim()));
  } catch (e) {
    throw new ConfigError("DA_SAMPLER_KEYS", (e as Error).message);
  }
}

/**
 * The da-sampler service: availability sampling, storage challenges, quorum attestations.
 * One process runs one or more sampler identities (DA_SAMPLER_KEYS), each with its own rounds,
 * votes and signatures; several processes (each with its own database) form one quorum over NATS.
 */
/** The parts a definition builds (integration tests drive them directly). */
export interface SamplerParts {
  readonly ctx: SamplerContext;
  readonly catalog: DatasetCatalog;
  readonly rounds: Rounds;
  readonly quorum: Quorum;
  readonly attestations: Attestations;
  readonly app: SamplingService;
  readonly repairs: Repairs;
}

export function daSamplerDefinition(
  config: DaSamplerConfig,
  hooks: { built?: (parts: SamplerParts) => void } = {},
): ServiceDefinition<DaSamplerDb> {
  const keys = identitiesOf(config);
  const ids = keys.map((k) => k.id);
  if (new Set(ids).size !== ids.length) throw new ConfigError("DA_SAMPLER_KEYS", "holds the same key twice");
  const known = config.DA_SAMPLERS.length > 0 ? [...config.DA_SAMPLERS] : ids;
  for (const id of ids) if (!known.includes(id)) throw new ConfigError("DA_SAMPLERS", `must include this process's sampler ${id}`);
  if (config.DA_QUORUM_THRESHOLD > known.length)
    throw new ConfigError("DA_QUORUM_THRESHOLD", `is ${config.DA_QUORUM_THRESHOLD} but the quorum has ${known.length} samplers`);
  let logVerifier;
  try {
    logVerifier = config.DA_LEDGER_LOG_KEY ? parseVerifierKey(config.DA_LEDGER_LOG_KEY) : undefined;
  } catch (e) {
    throw new ConfigError("DA_LEDGER_LOG_KEY", (e as Error).message);
  }
  return {
    name: "da-sampler",
    version: "0.2.0",
    migrations,
    usesBlobs: false,
    create: async ({ db, bus, outbox, logger, scheduler, clock }) => {
      await bus.ensureStream("da");
      await bus.ensureStream("dataset");
      if (!config.DA_SAMPLER_KEYS) logger.warn({ samplers: ids }, "DA_SAMPLER_KEYS is not set: using generated sampler keys");
      const identities = keys.map((k, i) => new SamplerIdentity(k, i));
      const registry = new ProviderRegistry(config.providers, {
        timeouts: { readMs: config.DA_SAMPLE_TIMEOUT_MS, callMs: config.DA_SAMPLE_TIMEOUT_MS },
        clock,
      });
      const metrics = daMetrics();
      const ledgerKey = identities[0]!.key;
      const checkpoints = config.DA_LEDGER_URL
        ? new CheckpointSource({
            baseUrl: config.DA_LEDGER_URL,
            key: ledgerKey,
            ...(logVerifier ? { log: logVerifier } : {}),
            clock,
            timeoutMs: config.DA_LEDGER_TIMEOUT_MS,
          })
        : undefined;
      if (!checkpoints) logger.warn("DA_LEDGER_URL is not set: rounds have no seed and do not run");
      const ctx: SamplerContext = {
        db,
        clock,
        logger,
        outbox,
        scheduler,
        policy: policyOf(config, known.length),
        identities,
        knownSamplers: known,
        reader: new ShardReader(registry, { clock, deadlineMs: config.DA_SAMPLE_DEADLINE_MS, concurrency: config.DA_PROVIDER_CONCURRENCY }),
        checkpoints,
        metrics,
        summaryRounds: config.DA_SUMMARY_ROUNDS,
        recheckTimeoutMs: config.DA_RECHECK_TIMEOUT_MS,
        reputationLambda: config.reputationLambda,
      };
      const catalog = new DatasetCatalog(db, config.DA_INGESTION_URL ? ingestionDatasets(config.DA_INGESTION_URL, 30_000) : undefined);
      const rounds = new Rounds(ctx, catalog);
      const quorum = new Quorum(ctx, catalog);
      const ledger = config.DA_LEDGER_URL
        ? new LedgerAnchoringClient({
            baseUrl: config.DA_LEDGER_URL,
            key: ledgerKey,
            timeoutMs: config.DA_LEDGER_TIMEOUT_MS,
            ...(logVerifier ? { logVerifier } : {}),
          })
        : undefined;
      const attestations = new Attestations(ctx, ledger);
      const app = new SamplingService(ctx, catalog, rounds, attestations, config.DA_REQUESTS_PER_MINUTE);
      scheduler.register({
        name: "da.attestations",
        intervalMs: config.DA_ANCHOR_INTERVAL_MS,
        persist: false,
        run: async () => {
          await quorum.expire();
          await attestations.anchorPending();
        },
      });
      for (const id of await catalog.ids()) await rounds.schedule(id);
      const tag = createHash("sha256").update(ids.join(",")).digest("hex").slice(0, 12);
      await subscribe({ bus, db, logger, metrics, processTag: tag, catalog, rounds, quorum, attestations, clock });
      await bus.ensureStream("slashing");
      const repairs = await setUpRepair({
        config,
        ctx,
        catalog,
        attestations,
        ledger,
        bus,
        processTag: tag,
        ...(logVerifier ? { logVerifier } : {}),
      });
      hooks.built?.({ ctx, catalog, rounds, quorum, attestations, app, repairs });
      return { bindings: [daSamplerService(app)] };
    },
  };
}
