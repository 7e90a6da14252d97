// Repair's consumers: slashing's provider status and stake events (jailed or tombstoned
// providers' slots are repaired; stake is a placement input), and `deai.da.repair_completed`
// from another sampler process (the placement it anchored is verified and followed here, so
// this process samples the new provider too).
import { RepairCompletedSchema, type RepairCompleted } from "@deai/contracts/deai/events/v1/da_pb";
import {
  ProviderJailedSchema,
  ProviderReleasedSchema,
  ProviderTombstonedSchema,
  StakeChangedSchema,
} from "@deai/contracts/deai/events/v1/slashing_pb";
import { checkReceipt, consumeOnce, type Clock, type EventBus, type Logger } from "@deai/kit";
import { FailedPreconditionError, InvalidArgumentError } from "@deai/kit/errors";
import { verifyPlacement, type NoteVerifier } from "@deai/proofs";
import type { Kysely, Transaction } from "kysely";

import type { DatasetCatalog } from "../app/catalog.js";
import { shardRootHex } from "../app/catalog.js";
import { envelopeFromProto } from "../app/envelopes.js";
import { applyPlacement } from "../app/repair.js";
import type { DaSamplerDb } from "../store/tables.js";

export const SlashingStatusSubjects = {
  jailed: "deai.slashing.provider_jailed",
  released: "deai.slashing.provider_released",
  tombstoned: "deai.slashing.provider_tombstoned",
  stake: "deai.slashing.stake_changed",
} as const;

async function setStatus(
  trx: Transaction<DaSamplerDb>,
  providerId: string,
  status: "active" | "jailed" | "tombstoned",
  at: Date,
  until: Date | null = null,
  slashId: string | null = null,
): Promise<void> {
  // A tombstone is for good: nothing moves a provider out of it.
  await trx
    .insertInto("provider_status")
    .values({ provider_id: providerId, status, until, slash_id: slashId, updated_at: at })
    .onConflict((oc) =>
      oc
        .column("provider_id")
        .doUpdateSet({ status, until, slash_id: slashId, updated_at: at })
        .where("provider_status.status", "!=", "tombstoned"),
    )
    .execute();
}

/**
 * Verifies a placement another sampler process anchored (signed by a quorum member, a receipt
 * that checks against the pinned log key, the same dataset, the next version) and puts it in
 * force here. Our own placements are already in force (their version row exists): nothing to do.
 */
export async function followPlacement(
  trx: Transaction<DaSamplerDb>,
  e: RepairCompleted,
  o: { catalog: DatasetCatalog; signers: readonly string[]; log?: NoteVerifier; at: Date },
): Promise<boolean> {
  const known = await trx.selectFrom("datasets").select("dataset_id").where("dataset_id", "=", e.datasetId).executeTakeFirst();
  if (!known) return false;
  const mine = await trx
    .selectFrom("placement_versions")
    .select("version")
    .where("dataset_id", "=", e.datasetId)
    .where("version", "=", e.version)
    .executeTakeFirst();
  if (mine) return false;
  const envelope = envelopeFromProto(e.envelope);
  if (!envelope) throw new InvalidArgumentError(`repair_completed ${e.eventId} carries no placement statement`);
  if (o.log) {
    if (!e.receipt) throw new InvalidArgumentError(`repair_completed ${e.eventId} carries no receipt`);
    checkReceipt(e.receipt, e.ledgerIndex, o.log);
  }
  o.catalog.forget(e.datasetId);
  const ds = await o.catalog.get(e.datasetId);
  const cur = await trx
    .selectFrom("placement_versions")
    .select("version")
    .where("dataset_id", "=", e.datasetId)
    .orderBy("version", "desc")
    .executeTakeFirst();
  const v = verifyPlacement(envelope, {
    datasetId: ds.datasetId,
    contentDigest: ds.contentDigest,
    shardRoot: shardRootHex(ds),
    k: ds.k,
    m: ds.m,
    stripes: ds.stripes,
    previous: { version: cur?.version ?? 1, placements: ds.placements },
    signers: o.signers,
  });
  const p = v.predicate;
  if (p.version !== e.version) throw new FailedPreconditionError(`repair_completed says version ${e.version}, its statement ${p.version}`);
  await applyPlacement(
    trx,
    ds,
    p.version,
    envelope,
    e.ledgerIndex,
    p.moved.map((m) => ({ ...p.placements[m.slot]!, to: m.to })),
    o.at,
  );
  return true;
}

export async function subscribeRepair(o: {
  bus: EventBus;
  db: Kysely<DaSamplerDb>;
  logger: Logger;
  clock: Clock;
  processTag: string;
  catalog: DatasetCatalog;
  signers: readonly string[];
  log?: NoteVerifier;
  /** After a status change: run the repair loop soon. */
  kick: () => void;
}): Promise<void> {
  const { bus, db, clock, processTag: tag } = o;
  const base = { domain: "slashing", db, clock } as const;
  await consumeOnce(bus, {
    ...base,
    durable: `da-sampler-${tag}-jailed`,
    subject: SlashingStatusSubjects.jailed,
    schema: ProviderJailedSchema,
    handler: async (e, _m, trx) => {
      const until = e.jailedUntil ? new Date(Number(e.jailedUntil.seconds) * 1000 + Math.floor(e.jailedUntil.nanos / 1e6)) : null;
      await setStatus(trx, e.providerId, "jailed", clock.now(), until, e.slashId || null);
      setImmediate(o.kick);
    },
  });
  await consumeOnce(bus, {
    ...base,
    durable: `da-sampler-${tag}-released`,
    subject: SlashingStatusSubjects.released,
    schema: ProviderReleasedSchema,
    handler: async (e, _m, trx) => setStatus(trx, e.providerId, "active", clock.now()),
  });
  await consumeOnce(bus, {
    ...base,
    durable: `da-sampler-${tag}-tombstoned`,
    subject: SlashingStatusSubjects.tombstoned,
    schema: ProviderTombstonedSchema,
    handler: async (e, _m, trx) => {
      await setStatus(trx, e.providerId, "tombstoned", clock.now(), null, e.slashId || null);
      setImmediate(o.kick);
    },
  });
  await consumeOnce(bus, {
    ...base,
    durable: `da-sampler-${tag}-stakes`,
    subject: SlashingStatusSubjects.stake,
    schema: StakeChangedSchema,
    handler: async (e, _m, trx) => {
      const bonded = (e.bonded?.micros ?? 0n).toString();
      await trx
        .insertInto("provider_stakes")
        .values({ provider_id: e.providerId, bonded, updated_at: clock.now() })
        .onConflict((oc) => oc.column("provider_id").doUpdateSet({ bonded, updated_at: clock.now() }))
        .execute();
    },
  });
  await consumeOnce(bus, {
    domain: "da",
    db,
    clock,
    durable: `da-sampler-${tag}-repairs`,
    subject: "deai.da.repair_completed",
    schema: RepairCompletedSchema,
    handler: async (e, _m, trx) => {
      try {
        if (await followPlacement(trx, e, { catalog: o.catalog, signers: o.signers, ...(o.log ? { log: o.log } : {}), at: clock.now() }))
          setImmediate(() => o.catalog.forget(e.datasetId));
      } catch (err) {
        // A placement that does not verify is refused for good (logged), never followed.
        if (err instanceof InvalidArgumentError || err instanceof FailedPreconditionError || (err as Error).name === "ProofError") {
          o.logger.warn({ err, eventId: e.eventId }, "refused a repair_completed placement");
          return;
        }
        throw err;
      }
    },
  });
}
