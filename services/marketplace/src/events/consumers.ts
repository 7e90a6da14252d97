// What the marketplace consumes, each through the kit's consumeOnce (durable, shared by replicas,
// the handler's writes committed with the inbox row, so a redelivered event has no second effect):
//
// - slashing's provider status (`deai.slashing.provider_jailed`, `provider_released`,
//   `provider_tombstoned`): the standing mirror matching filters on; a jailed or tombstoned
//   provider's live leases close as breached in the same transaction and their groups wait for
//   a re-match (app/rematch.ts, run by the tick). Polling GetProviderStatus stays as the fallback.
// - the DA sampler's `deai.da.reputation_updated` and `deai.da.provider_availability_changed`:
//   the inputs of the reliability score (domain/reliability.ts).
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";

import { ProviderAvailabilityChangedSchema, ReputationUpdatedSchema } from "@deai/contracts/deai/events/v1/da_pb";
import { ProviderJailedSchema, ProviderReleasedSchema, ProviderTombstonedSchema } from "@deai/contracts/deai/events/v1/slashing_pb";
import { ProviderAvailabilityState } from "@deai/contracts/deai/events/v1/da_pb";
import { consumeOnce, type Clock, type EventBus, type Logger } from "@deai/kit";

import type { Trx } from "../app/context.js";
import type { Market } from "../app/market.js";
import { marketMetrics } from "../app/metrics.js";
import { applyStanding } from "../app/provider-status.js";
import { applyAvailability, applyReputation } from "../app/reputation.js";

export const MarketDurables = {
  jailed: "marketplace-provider-jailed",
  released: "marketplace-provider-released",
  tombstoned: "marketplace-provider-tombstoned",
  reputation: "marketplace-da-reputation",
  availability: "marketplace-da-availability",
} as const;

const at = (t: Timestamp | undefined, clock: Clock) => (t ? timestampDate(t) : clock.now());

/** Starts every consumer of the marketplace. */
export async function startConsumers(o: { bus: EventBus; market: Market; clock: Clock; logger: Logger }): Promise<void> {
  const { bus, market, clock, logger } = o;
  const db = market.ctx.db;
  await bus.ensureStream("slashing");
  await bus.ensureStream("da");
  const standing = (subject: string, providerId: string, change: Parameters<typeof applyStanding>[4]) => async (trx: Trx) => {
    if (!providerId) return;
    const closed = await applyStanding(market.ctx, market.leases, trx, providerId, change);
    marketMetrics.consumed.add(1, { subject });
    if (closed.length > 0)
      logger.info({ provider: providerId, leases: closed, subject }, "provider lost its standing: leases closed, groups to re-match");
  };
  await consumeOnce(bus, {
    domain: "slashing",
    durable: MarketDurables.jailed,
    subject: "deai.slashing.provider_jailed",
    schema: ProviderJailedSchema,
    db,
    clock,
    handler: async (e, _m, trx) => {
      // A jail already over when it arrives (a late redelivery) changes nothing.
      if (e.jailedUntil && timestampDate(e.jailedUntil).getTime() <= clock.nowMs()) return;
      await standing("provider_jailed", e.providerId, {
        status: "jailed",
        jailedUntil: e.jailedUntil ? timestampDate(e.jailedUntil) : null,
        source: `event, slash ${e.slashId}`,
      })(trx as Trx);
    },
  });
  await consumeOnce(bus, {
    domain: "slashing",
    durable: MarketDurables.tombstoned,
    subject: "deai.slashing.provider_tombstoned",
    schema: ProviderTombstonedSchema,
    db,
    clock,
    handler: (e, _m, trx) =>
      standing("provider_tombstoned", e.providerId, { status: "tombstoned", source: `event, slash ${e.slashId}` })(trx as Trx),
  });
  await consumeOnce(bus, {
    domain: "slashing",
    durable: MarketDurables.released,
    subject: "deai.slashing.provider_released",
    schema: ProviderReleasedSchema,
    db,
    clock,
    handler: (e, _m, trx) => standing("provider_released", e.providerId, { status: "active", source: "event" })(trx as Trx),
  });
  await consumeOnce(bus, {
    domain: "da",
    durable: MarketDurables.reputation,
    subject: "deai.da.reputation_updated",
    schema: ReputationUpdatedSchema,
    db,
    clock,
    handler: async (e, _m, trx) => {
      if (!e.providerId) return;
      const mean = e.reputation?.mean ?? e.availability;
      await applyReputation(trx as Trx, e.providerId, { mean, availability: e.availability, at: at(e.occurredAt, clock) });
      marketMetrics.consumed.add(1, { subject: "reputation_updated" });
    },
  });
  await consumeOnce(bus, {
    domain: "da",
    durable: MarketDurables.availability,
    subject: "deai.da.provider_availability_changed",
    schema: ProviderAvailabilityChangedSchema,
    db,
    clock,
    handler: async (e, _m, trx) => {
      if (!e.providerId || e.state === ProviderAvailabilityState.UNSPECIFIED) return;
      await applyAvailability(trx as Trx, e.providerId, {
        unavailable: e.state === ProviderAvailabilityState.UNAVAILABLE,
        unavailableSlots: e.unavailableSlots,
        at: at(e.occurredAt, clock),
      });
      marketMetrics.consumed.add(1, { subject: "provider_availability_changed" });
    },
  });
}
