import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ProviderAvailabilityChangedSchema, ProviderAvailabilityState } from "@deai/contracts/deai/events/v1/da_pb";
import { enqueueEvent } from "@deai/kit";
import type { Kysely, Transaction } from "kysely";

import type { DaSamplerDb } from "../store/tables.js";
import type { SamplerContext } from "./context.js";

const STATE = { available: ProviderAvailabilityState.AVAILABLE, unavailable: ProviderAvailabilityState.UNAVAILABLE } as const;

/**
 * After a slot's state changed (in the same transaction): recomputes its provider's availability
 * — unavailable while any of its slots is proven unavailable — and, when that flips, records it
 * and queues `deai.da.provider_availability_changed` through the outbox. The provider's row is
 * locked first, so two slots of one provider changing at once flip it once.
 */
export async function noteSlotChange(
  trx: Transaction<DaSamplerDb>,
  c: Pick<SamplerContext, "clock" | "logger">,
  change: { providerId: string; datasetId: string; slot: number; attestationId?: string },
): Promise<"available" | "unavailable" | undefined> {
  await trx
    .insertInto("provider_availability")
    .values({ provider_id: change.providerId, state: "available", unavailable_slots: 0, sequence: 0, changed_at: c.clock.now() })
    .onConflict((oc) => oc.column("provider_id").doNothing())
    .execute();
  const row = await trx
    .selectFrom("provider_availability")
    .selectAll()
    .where("provider_id", "=", change.providerId)
    .forUpdate()
    .executeTakeFirstOrThrow();
  const { n } = await trx
    .selectFrom("slot_states")
    .select((eb) => eb.fn.countAll<string>().as("n"))
    .where("provider_id", "=", change.providerId)
    .where("state", "=", "unavailable")
    .executeTakeFirstOrThrow();
  const unavailable = Number(n);
  const state = unavailable > 0 ? "unavailable" : "available";
  const previous = row.state as "available" | "unavailable";
  if (state === previous) {
    if (unavailable !== row.unavailable_slots)
      await trx
        .updateTable("provider_availability")
        .set({ unavailable_slots: unavailable })
        .where("provider_id", "=", change.providerId)
        .execute();
    return undefined;
  }
  const sequence = BigInt(row.sequence) + 1n;
  const now = c.clock.now();
  await trx
    .updateTable("provider_availability")
    .set({ state, unavailable_slots: unavailable, sequence, changed_at: now })
    .where("provider_id", "=", change.providerId)
    .execute();
  const eventId = `da/provider_availability/${change.providerId}/${sequence}`;
  await enqueueEvent(
    trx as unknown as Kysely<unknown>,
    "deai.da.provider_availability_changed",
    ProviderAvailabilityChangedSchema,
    create(ProviderAvailabilityChangedSchema, {
      eventId,
      occurredAt: timestampFromDate(now),
      providerId: change.providerId,
      previousState: STATE[previous],
      state: STATE[state],
      datasetId: change.datasetId,
      slot: change.slot,
      attestationId: change.attestationId ?? "",
      unavailableSlots: unavailable,
      sequence,
    }),
    eventId,
  );
  c.logger.info({ provider: change.providerId, from: previous, to: state, unavailableSlots: unavailable }, "provider availability changed");
  return state;
}
