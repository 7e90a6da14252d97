// Who repaired what, from the DA sampler: every `deai.da.repair_completed` names the slots it
// rebuilt and carries the placement statement, signed by the repairing sampler. A repair counts
// only when that signature verifies and its signer is a known sampler (SLASHING_SAMPLERS): the
// repair share of a slash for one of those slots is then paid to that sampler (`payRepairs`, on
// the tick). Once per event (consumeOnce), and idempotent anyway by (dataset, slot, ledger index).
import { RepairCompletedSchema } from "@deai/contracts/deai/events/v1/da_pb";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { consumeOnce, type Clock, type EventBus, type Logger } from "@deai/kit";
import { dsseVerify, IN_TOTO_PAYLOAD_TYPE, ProofError } from "@deai/proofs";
import type { Kysely } from "kysely";

import type { Slashing } from "../app/slashing.js";

export const REPAIRS_DURABLE = "slashing-da-repairs";

export async function consumeRepairs(o: {
  bus: EventBus;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  db: Kysely<any>;
  clock: Clock;
  logger: Logger;
  app: Slashing;
  samplers: readonly string[];
}): Promise<void> {
  await o.bus.ensureStream("da");
  await consumeOnce(o.bus, {
    domain: "da",
    durable: REPAIRS_DURABLE,
    subject: "deai.da.repair_completed",
    schema: RepairCompletedSchema,
    db: o.db,
    clock: o.clock,
    handler: async (e) => {
      const env = e.envelope;
      let signers: readonly string[] = [];
      try {
        if (env) signers = dsseVerify(env, { expectedPayloadType: IN_TOTO_PAYLOAD_TYPE }).signers;
      } catch (err) {
        if (!(err instanceof ProofError)) throw err;
      }
      const repairer = signers.find((s) => o.samplers.includes(s));
      if (!repairer) {
        o.logger.warn({ event: e.eventId, signers }, "repair_completed not signed by a known sampler: no repair share for it");
        return;
      }
      const slots = e.repaired.length > 0 ? e.repaired.map((r) => r.slot) : [e.slot];
      const added = await o.app.recordRepair({
        datasetId: e.datasetId,
        slots,
        ledgerIndex: e.ledgerIndex,
        repairer,
        completedAt: e.occurredAt ? timestampDate(e.occurredAt) : o.clock.now(),
      });
      o.logger.info({ event: e.eventId, repairer, slots, added }, "repair recorded for the repair share");
    },
  });
}
