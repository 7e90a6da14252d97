import { DatasetIngestedSchema } from "@deai/contracts/deai/events/v1/ingestion_pb";
import { AttestationIssuedSchema, RecheckRequestedSchema, RecheckVotedSchema } from "@deai/contracts/deai/events/v1/da_pb";
import { consumeOnce, DomainError, type Clock, type EventBus, type Logger } from "@deai/kit";
import type { Kysely } from "kysely";

import type { Attestations } from "../app/attestations.js";
import type { DatasetCatalog } from "../app/catalog.js";
import type { DaMetrics } from "../app/metrics.js";
import type { Quorum } from "../app/quorum.js";
import type { Rounds } from "../app/rounds.js";
import type { DaSamplerDb } from "../store/tables.js";

/** Refusals that can never succeed are acked (logged and counted); anything else is retried by redelivery. */
function refusedForGood(e: unknown): e is DomainError {
  return e instanceof DomainError && ["invalid_argument", "permission_denied", "already_exists", "failed_precondition"].includes(e.kind);
}

/**
 * The sampler's consumers. Durable names carry `processTag` (the first local identity's index-free
 * tag): each sampler process has its own state, so each reads every event.
 */
export async function subscribe(o: {
  bus: EventBus;
  db: Kysely<DaSamplerDb>;
  logger: Logger;
  metrics: DaMetrics;
  processTag: string;
  catalog: DatasetCatalog;
  rounds: Rounds;
  quorum: Quorum;
  attestations: Attestations;
  clock: Clock;
}): Promise<void> {
  const { bus, db, logger, metrics, processTag: tag } = o;
  const guard = async (what: string, f: () => Promise<void>): Promise<void> => {
    try {
      await f();
    } catch (e) {
      if (!refusedForGood(e)) throw e;
      metrics.refused.add(1, { what, kind: e.kind });
      logger.warn({ err: e, what }, "refused");
    }
  };
  await consumeOnce(bus, {
    domain: "dataset",
    durable: `da-sampler-${tag}-datasets`,
    subject: "deai.dataset.ingested",
    schema: DatasetIngestedSchema,
    db,
    clock: o.clock,
    // The leaf table is fetched (and checked against shardRoot) inside the inbox transaction: a
    // failure rolls the inbox row back and redelivery retries.
    handler: async (e, _meta, trx) => {
      const ds = await o.catalog.prepare(e);
      await o.catalog.add(trx, ds, e.ledgerIndex, o.clock.now());
      setImmediate(() => void o.rounds.schedule(e.datasetId).catch((err: unknown) => logger.error({ err }, "could not schedule rounds")));
    },
  });
  await bus.consume({
    domain: "da",
    durable: `da-sampler-${tag}-rechecks`,
    subject: "deai.da.recheck_requested",
    schema: RecheckRequestedSchema,
    // Idempotent by its tables (one re-check row, one vote per sampler), and re-reads take seconds:
    // no transaction is held across them, so this consumer does not use the inbox.
    handler: (e) => guard("recheck_requested", () => o.quorum.onRequest(e)),
  });
  await consumeOnce(bus, {
    domain: "da",
    durable: `da-sampler-${tag}-votes`,
    subject: "deai.da.recheck_voted",
    schema: RecheckVotedSchema,
    db,
    clock: o.clock,
    handler: (e) => guard("recheck_voted", async () => void (await o.quorum.acceptVote(e))),
  });
  await consumeOnce(bus, {
    domain: "da",
    durable: `da-sampler-${tag}-attestations`,
    subject: "deai.da.attestation_issued",
    schema: AttestationIssuedSchema,
    db,
    clock: o.clock,
    handler: (e) =>
      guard("attestation_issued", async () => {
        // Our own, already stored: nothing to do.
        const mine = await db
          .selectFrom("attestations")
          .select("attestation_id")
          .where("attestation_id", "=", e.attestationId)
          .executeTakeFirst();
        if (mine) return;
        await o.attestations.accept(e);
      }),
  });
}
