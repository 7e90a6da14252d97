import { availableParallelism } from "node:os";

import { actorKeyFromSeed, ConfigError, type ServiceDefinition } from "@deai/kit";
import { base64Decode, ed25519Verifier, parseSignerKey, ED25519_TYPE, type NoteSigner, type NoteVerifier } from "@deai/proofs";

import { AppendBatcher } from "./app/append-batcher.js";
import { Cosignatures, parseWitnessKeys } from "./app/cosignatures.js";
import { Integrator } from "./app/integrator.js";
import { observeLog } from "./app/ledger-metrics.js";
import { Ledger } from "./app/ledger.js";
import { SignatureVerifier } from "./app/signature-verifier.js";
import type { LedgerConfig } from "./config.js";
import { LEDGER_STREAM } from "./events/checkpoint-published.js";
import { ledgerService } from "./grpc/ledger-service.js";
import { tilesRouteDocs } from "./http/route-docs.js";
import { tilesHandler } from "./http/tiles.js";
import { migrations } from "./store/migrations.js";
import type { LedgerDb } from "./store/tables.js";

/** The log key from config; its name must be the origin (checkpoints are verified by name). */
export function logSigner(config: Pick<LedgerConfig, "LEDGER_SIGNING_KEY" | "LEDGER_ORIGIN">): NoteSigner | undefined {
  if (config.LEDGER_SIGNING_KEY === undefined) return undefined;
  let signer: NoteSigner;
  try {
    signer = parseSignerKey(config.LEDGER_SIGNING_KEY);
  } catch (e) {
    throw new ConfigError("LEDGER_SIGNING_KEY", (e as Error).message);
  }
  if (signer.type !== ED25519_TYPE) throw new ConfigError("LEDGER_SIGNING_KEY", "must be an Ed25519 (type 0x01) note key");
  if (signer.name !== config.LEDGER_ORIGIN) {
    throw new ConfigError(
      "LEDGER_SIGNING_KEY",
      `key name ${JSON.stringify(signer.name)} is not LEDGER_ORIGIN ${JSON.stringify(config.LEDGER_ORIGIN)}`,
    );
  }
  return signer;
}

/** The verifier of the configured log key (what clients pin), for fsck and tests. */
export function logVerifier(config: Pick<LedgerConfig, "LEDGER_SIGNING_KEY" | "LEDGER_ORIGIN">): NoteVerifier | undefined {
  const signer = logSigner(config);
  if (!signer || config.LEDGER_SIGNING_KEY === undefined) return undefined;
  // PRIVATE+KEY+<name>+<id>+<base64(type ‖ seed)>: names and ids hold no "+", base64 may.
  const material = base64Decode(config.LEDGER_SIGNING_KEY.split("+").slice(4).join("+"))!;
  const publicKey = Buffer.from(actorKeyFromSeed(Buffer.from(material.subarray(1)).toString("base64url")).id, "base64url");
  return ed25519Verifier(signer.name, publicKey);
}

/**
 * The ledger service: the transparency log (entries, checkpoints, proofs, lineage queries),
 * its API and the tlog-tiles read paths.
 */
export function ledgerDefinition(config: LedgerConfig): ServiceDefinition<LedgerDb> {
  const signer = logSigner(config);
  const witnesses = parseWitnessKeys(config.LEDGER_WITNESS_KEYS);
  return {
    name: "ledger",
    version: "0.2.0",
    migrations,
    usesBlobs: false,
    create: async ({ db, bus, outbox, logger, scheduler, clock }) => {
      await bus.ensureStream(LEDGER_STREAM);
      if (!signer)
        logger.warn(
          "LEDGER_SIGNING_KEY is not set: this replica cannot sign checkpoints, so it reports not ready (appends would never get a receipt)",
        );
      const integrator = new Integrator({
        db,
        origin: config.LEDGER_ORIGIN,
        signer,
        outbox,
        logger,
        scheduler,
        intervalMs: config.LEDGER_CHECKPOINT_INTERVAL_MS,
      });
      // Under load, integrate as soon as a backlog builds up, not only on the schedule.
      const batcher = new AppendBatcher(db, undefined, undefined, (n) => integrator.noteSequenced(n));
      const threads =
        config.LEDGER_VERIFY_THREADS >= 0 ? config.LEDGER_VERIFY_THREADS : Math.max(1, Math.min(4, availableParallelism() - 1));
      const verifier = new SignatureVerifier({ threads });
      const cosignatures = new Cosignatures({ db, witnesses, quorum: config.LEDGER_WITNESS_QUORUM });
      const ledger = new Ledger({
        db,
        clock,
        origin: config.LEDGER_ORIGIN,
        batcher,
        integrator,
        verifier,
        cosignatures,
        waitDefaultMs: config.LEDGER_APPEND_WAIT_MS,
        waitMaxMs: config.LEDGER_APPEND_WAIT_MAX_MS,
      });
      const unobserve = observeLog(db, clock);
      return {
        bindings: [ledgerService(ledger)],
        http: tilesHandler(db, config.LEDGER_TILES_PREFIX, cosignatures),
        httpDocs: tilesRouteDocs(config.LEDGER_TILES_PREFIX),
        // Ready means able to serve: a ledger that cannot sign checkpoints leaves every append without a receipt.
        readiness: async () => ({ signer: signer ? "ok" : "LEDGER_SIGNING_KEY is not set: this replica cannot sign checkpoints" }),
        stop: async () => {
          unobserve();
          await batcher.drain();
          await integrator.stop();
          await verifier.close();
        },
      };
    },
  };
}
