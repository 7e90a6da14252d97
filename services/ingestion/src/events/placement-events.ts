// Ingestion follows repairs: `deai.da.repair_completed` (consumeOnce: once per event) carries
// the placement/v1 statement a DA sampler anchored. It is verified against the dataset (the
// same contentDigest, shardRoot and geometry, the next version, unmoved slots unchanged, an
// allowed signer, a receipt that checks against the pinned log key) and recorded; reads use
// the latest version from the next request on.
import { RepairCompletedSchema, type RepairCompleted } from "@deai/contracts/deai/events/v1/da_pb";
import { checkReceipt, consumeOnce, type Clock, type EventBus, type Logger } from "@deai/kit";
import { FailedPreconditionError, InvalidArgumentError } from "@deai/kit/errors";
import { ProofError, verifyPlacement, type NoteVerifier } from "@deai/proofs";
import type { Kysely } from "kysely";

import { datasetById } from "../store/datasets.js";
import { insertPlacement, latestPlacement } from "../store/placements.js";
import type { IngestionDb } from "../store/tables.js";

/** Verifies and records one repair's placement; false when it is already recorded or the dataset is not ours. */
export async function followRepair(
  db: Kysely<IngestionDb>,
  e: RepairCompleted,
  o: { signers: readonly string[]; log?: NoteVerifier; at: Date },
): Promise<boolean> {
  const d = await datasetById(db, e.datasetId);
  if (!d) return false;
  const env = e.envelope;
  if (!env) throw new InvalidArgumentError(`repair_completed ${e.eventId} carries no placement statement`);
  const envelope = {
    payloadType: env.payloadType,
    payload: env.payload,
    signatures: env.signatures.map((s) => ({ keyid: s.keyid, sig: s.sig })),
  };
  if (o.log) {
    if (!e.receipt) throw new InvalidArgumentError(`repair_completed ${e.eventId} carries no receipt`);
    checkReceipt(e.receipt, e.ledgerIndex, o.log);
  }
  const latest = await latestPlacement(db, e.datasetId);
  if (latest && latest.version >= e.version) return false;
  const m = d.manifest;
  const v = verifyPlacement(envelope, {
    datasetId: e.datasetId,
    contentDigest: m.contentDigest?.hex ?? "",
    shardRoot: Buffer.from(m.shardRoot).toString("hex"),
    k: m.k,
    m: m.m,
    stripes: Number(m.stripes),
    previous: { version: latest?.version ?? 1, placements: latest?.placements ?? m.placements },
    signers: o.signers,
  });
  if (v.predicate.version !== e.version)
    throw new FailedPreconditionError(`repair_completed says version ${e.version}, its statement ${v.predicate.version}`);
  return insertPlacement(db, {
    datasetId: e.datasetId,
    version: v.predicate.version,
    placements: v.predicate.placements,
    envelope: env,
    receipt: e.receipt,
    ledgerIndex: e.ledgerIndex,
    signer: v.signers[0]!,
    at: o.at,
  });
}

export async function subscribePlacements(o: {
  bus: EventBus;
  db: Kysely<IngestionDb>;
  logger: Logger;
  clock: Clock;
  signers: readonly string[];
  log?: NoteVerifier;
}): Promise<void> {
  await consumeOnce(o.bus, {
    domain: "da",
    durable: "ingestion-placements",
    subject: "deai.da.repair_completed",
    schema: RepairCompletedSchema,
    db: o.db,
    clock: o.clock,
    handler: async (e, _meta, trx) => {
      try {
        const recorded = await followRepair(trx, e, { signers: o.signers, ...(o.log ? { log: o.log } : {}), at: o.clock.now() });
        if (recorded) o.logger.info({ datasetId: e.datasetId, version: e.version }, "downloads follow a repaired placement");
      } catch (err) {
        // Refused for good (a statement that does not verify): logged, never followed, not redelivered.
        if (err instanceof ProofError || err instanceof InvalidArgumentError || err instanceof FailedPreconditionError) {
          o.logger.warn({ err, eventId: e.eventId }, "refused a repair_completed placement");
          return;
        }
        throw err;
      }
    },
  });
}
