import { actorKeyFromSeed, actorKeySeed, bind, generateActorKey, type ServiceDefinition } from "@deai/kit";
import { base64Decode } from "@deai/proofs";

import { SlashingService } from "@deai/contracts/deai/slashing/v1/slashing_pb";

import { Slashing } from "./app/slashing.js";
import { outboxEvents } from "./events/status-events.js";
import { loadSlashingConfig, type SlashingConfig } from "./config.js";
import { migrations } from "./store/migrations.js";

/**
 * The slashing service: stake, unbonding, evidence, penalties, jailing. The use cases
 * (app/slashing.ts) run on the scheduler (due slashes, matured unbondings, ended jails). The
 * RPC handlers are not wired yet: every RPC still answers UNIMPLEMENTED (README, "Status").
 */
export const slashing: ServiceDefinition<unknown> = {
  name: "slashing",
  version: "0.2.0",
  migrations,
  usesBlobs: false,
  create: async ({ config: given, db, clock, scheduler, logger, outbox }) => {
    // main.ts passes the slashing config; a caller that passed only the kit's gets it read here.
    const config = "params" in given ? (given as SlashingConfig) : loadSlashingConfig();
    const key = config.SLASHING_SERVICE_KEY ? actorKeyFromSeed(config.SLASHING_SERVICE_KEY) : generateActorKey();
    if (!config.SLASHING_SERVICE_KEY) logger.warn({ actor: key.id }, "SLASHING_SERVICE_KEY is not set: using a generated key");
    const seed = base64Decode(actorKeySeed(key).replace(/-/g, "+").replace(/_/g, "/") + "=")!;
    const app = new Slashing(db as never, clock, config.params, seed, outboxEvents(clock, config.params.currency));
    await app.init();
    scheduler.register({
      name: "slashing.tick",
      intervalMs: config.SLASHING_TICK_MS,
      persist: false,
      run: async () => {
        await app.applyDue();
        await app.matureUnbondings();
        await app.releaseJails();
        outbox.kick();
      },
    });
    return { bindings: [bind(SlashingService, {})] };
  },
};
