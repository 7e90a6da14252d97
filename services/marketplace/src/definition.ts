import {
  ConfigError,
  actorKeyFromSeed,
  actorKeySeed,
  generateActorKey,
  LedgerAnchoringClient,
  loadGpuClassCatalog,
  type ServiceDefinition,
} from "@deai/kit";
import { base64Decode, ed25519DsseSigner, parseVerifierKey } from "@deai/proofs";

import { Market } from "./app/market.js";
import { noSlashing, SlashingStanding, type ProviderStanding } from "./app/provider-standing.js";
import { loadMarketplaceConfig, type MarketplaceConfig } from "./config.js";
import { SlashingEvidence } from "./app/equivocation.js";
import { startConsumers } from "./events/consumers.js";
import { outboxEvents } from "./events/market-events.js";
import { marketplaceService } from "./grpc/marketplace-service.js";
import { migrations } from "./store/migrations.js";

/** Options a test passes to swap a port (a fake slashing standing). */
export interface MarketplaceOverrides {
  readonly standing?: ProviderStanding;
}

/**
 * The marketplace service: providers, offers, orders, matching, leases, escrow, settlement.
 * One scheduled loop (`marketplace.tick`, every replica: each step locks what it works on)
 * polls standing as the fallback to slashing's events, re-matches groups of jailed providers,
 * expires reservations, retries unmatched orders, funds reservations, renews epoch holds,
 * pauses overdrawn leases, ends leases, submits equivocation evidence to slashing and appends
 * lease records to the ledger. Consumers: slashing's provider status, the DA sampler's
 * reputation and availability (events/consumers.ts).
 */
export function marketplaceDefinition(overrides: MarketplaceOverrides = {}): ServiceDefinition<unknown> {
  return {
    name: "marketplace",
    version: "0.2.0",
    migrations,
    usesBlobs: false,
    create: async ({ config: given, db, clock, scheduler, logger, outbox, bus }) => {
      const config = "params" in given ? (given as MarketplaceConfig) : loadMarketplaceConfig();
      const key = config.MARKETPLACE_SERVICE_KEY ? actorKeyFromSeed(config.MARKETPLACE_SERVICE_KEY) : generateActorKey();
      if (!config.MARKETPLACE_SERVICE_KEY) logger.warn({ actor: key.id }, "MARKETPLACE_SERVICE_KEY is not set: using a generated key");
      const seed = base64Decode(actorKeySeed(key).replace(/-/g, "+").replace(/_/g, "/") + "=")!;
      const standing =
        overrides.standing ?? (config.MARKETPLACE_SLASHING_URL ? new SlashingStanding(config.MARKETPLACE_SLASHING_URL, key) : noSlashing);
      if (!overrides.standing && !config.MARKETPLACE_SLASHING_URL)
        logger.warn("MARKETPLACE_SLASHING_URL is not set: offers are refused (stake cannot be checked)");
      let logVerifier;
      try {
        logVerifier = config.MARKETPLACE_LEDGER_LOG_KEY ? parseVerifierKey(config.MARKETPLACE_LEDGER_LOG_KEY) : undefined;
      } catch (e) {
        throw new ConfigError("MARKETPLACE_LEDGER_LOG_KEY", (e as Error).message);
      }
      const ledger = config.MARKETPLACE_LEDGER_URL
        ? new LedgerAnchoringClient({ baseUrl: config.MARKETPLACE_LEDGER_URL, key, ...(logVerifier ? { logVerifier } : {}) })
        : undefined;
      const market = new Market({
        db: db as never,
        clock,
        params: config.params,
        catalog: loadGpuClassCatalog(),
        standing,
        events: outboxEvents(clock, config.params.currency),
        signer: ed25519DsseSigner(seed),
        ...(config.MARKETPLACE_SLASHING_URL ? { evidence: new SlashingEvidence(config.MARKETPLACE_SLASHING_URL, key) } : {}),
      });
      await market.init();
      await bus.ensureStream("marketplace");
      await startConsumers({ bus, market, clock, logger });
      scheduler.register({
        name: "marketplace.tick",
        intervalMs: config.MARKETPLACE_TICK_MS,
        persist: false,
        run: async () => {
          for (const [name, step] of market.tickSteps(ledger)) {
            await step().catch((e: unknown) => logger.warn({ err: e, step: name }, "marketplace tick step failed"));
          }
          outbox.kick();
        },
      });
      return { bindings: [marketplaceService(market)] };
    },
  };
}

export const marketplace: ServiceDefinition<unknown> = marketplaceDefinition();
