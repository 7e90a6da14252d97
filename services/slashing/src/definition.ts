import {
  actorKeyFromSeed,
  actorKeySeed,
  ConfigError,
  generateActorKey,
  LedgerAnchoringClient,
  type LedgerAnchoring,
  type ServiceDefinition,
} from "@deai/kit";
import { base64Decode, parseVerifierKey } from "@deai/proofs";

import { RecordAnchoring } from "./app/anchoring.js";
import { slashingMetrics } from "./app/metrics.js";
import { Slashing } from "./app/slashing.js";
import { ledgerCheckpointWitness } from "./app/checkpoint-witness.js";
import { consumeAttestations } from "./events/attestations.js";
import { consumeRepairs } from "./events/repairs.js";
import { outboxEvents } from "./events/status-events.js";
import { slashingService } from "./grpc/slashing-service.js";
import { loadSlashingConfig, type SlashingConfig } from "./config.js";
import { migrations } from "./store/migrations.js";

/** The parts a definition builds (integration tests drive them directly). */
export interface SlashingParts {
  readonly app: Slashing;
  readonly anchoring: RecordAnchoring | undefined;
}

/**
 * The slashing service: stake, unbonding, evidence, penalties, jailing. The use cases
 * (app/slashing.ts) are served as deai.slashing.v1 and run on the scheduler (due slashes,
 * matured unbondings, ended jails); slash records are anchored in the ledger by a second loop;
 * DA attestations arrive over NATS as unavailability evidence. `ledger` replaces the gRPC
 * anchoring client (tests).
 */
export function slashingDefinition(
  given?: SlashingConfig,
  hooks: { ledger?: LedgerAnchoring; built?: (parts: SlashingParts) => void } = {},
): ServiceDefinition<unknown> {
  return {
    name: "slashing",
    version: "0.3.0",
    migrations,
    usesBlobs: false,
    create: async ({ config: kitConfig, db, bus, clock, scheduler, logger, outbox }) => {
      // main.ts passes the slashing config; a caller that passed only the kit's gets it read here.
      const config = given ?? ("params" in kitConfig ? (kitConfig as SlashingConfig) : loadSlashingConfig());
      const key = config.SLASHING_SERVICE_KEY ? actorKeyFromSeed(config.SLASHING_SERVICE_KEY) : generateActorKey();
      if (!config.SLASHING_SERVICE_KEY) logger.warn({ actor: key.id }, "SLASHING_SERVICE_KEY is not set: using a generated key");
      const seed = base64Decode(actorKeySeed(key).replace(/-/g, "+").replace(/_/g, "/") + "=")!;
      const metrics = slashingMetrics();
      await bus.ensureStream("slashing");
      const app = new Slashing(db as never, clock, config.params, seed, outboxEvents(clock, config.params.currency), metrics);
      await app.init();
      let logVerifier;
      try {
        logVerifier = config.SLASHING_LEDGER_LOG_KEY ? parseVerifierKey(config.SLASHING_LEDGER_LOG_KEY) : undefined;
      } catch (e) {
        throw new ConfigError("SLASHING_LEDGER_LOG_KEY", (e as Error).message);
      }
      const ledger =
        hooks.ledger ??
        (config.SLASHING_LEDGER_URL
          ? new LedgerAnchoringClient({
              baseUrl: config.SLASHING_LEDGER_URL,
              key,
              timeoutMs: config.SLASHING_LEDGER_TIMEOUT_MS,
              ...(logVerifier ? { logVerifier } : {}),
            })
          : undefined);
      if (!ledger) logger.warn("SLASHING_LEDGER_URL is not set: slash records are kept but not anchored");
      if (config.SLASHING_CHECK_CHALLENGE_SEEDS && config.SLASHING_LEDGER_URL && logVerifier)
        app.witnessChallengeSeedsWith(
          ledgerCheckpointWitness({ baseUrl: config.SLASHING_LEDGER_URL, log: logVerifier, timeoutMs: config.SLASHING_LEDGER_TIMEOUT_MS }),
        );
      else
        logger.warn(
          "challenge seeds of unavailability evidence are not checked against the ledger (needs SLASHING_LEDGER_URL and SLASHING_LEDGER_LOG_KEY)",
        );
      const anchoring = ledger ? new RecordAnchoring(db as never, ledger, clock, logger, metrics) : undefined;
      scheduler.register({
        name: "slashing.tick",
        intervalMs: config.SLASHING_TICK_MS,
        persist: false,
        run: async () => {
          // Each step runs whatever the others did; a failing item is logged here and retried next tick.
          const steps: [string, () => Promise<number>][] = [
            ["apply", () => app.applyDue()],
            ["mature", () => app.matureUnbondings()],
            ["release", () => app.releaseJails()],
            ["repair-payout", () => app.payRepairs()],
          ];
          for (const [step, run] of steps)
            await run().catch((err: unknown) =>
              logger.error({ err, step }, "slashing tick: items failed; the rest ran, the next tick retries"),
            );
          outbox.kick();
        },
      });
      if (anchoring)
        scheduler.register({
          name: "slashing.anchor",
          intervalMs: config.SLASHING_ANCHOR_INTERVAL_MS,
          persist: false,
          run: async () => void (await anchoring.anchorPending()),
        });
      if (config.SLASHING_CONSUME_ATTESTATIONS) {
        if (config.params.trust.samplers.length === 0)
          logger.warn("SLASHING_SAMPLERS is empty: every DA attestation will be refused as evidence (no known samplers)");
        // Refusals are counted by the app (deai.slashing.evidence, outcome refused).
        await consumeAttestations({ bus, db: db as never, clock, logger, app });
        await consumeRepairs({ bus, db: db as never, clock, logger, app, samplers: config.params.trust.samplers });
      }
      hooks.built?.({ app, anchoring });
      return { bindings: [slashingService(app)] };
    },
  };
}

/** The definition main.ts runs (config read at start). */
export const slashing: ServiceDefinition<unknown> = slashingDefinition();
