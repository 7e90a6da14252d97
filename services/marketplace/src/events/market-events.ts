// The marketplace's events through the kit's outbox (subjects `deai.marketplace.*`, dedupe ids
// as proto/deai/events/v1/marketplace.proto states).
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Kysely } from "kysely";

import { enqueueEvent, enqueueEvents, type Clock, type QueuedEvent } from "@deai/kit";
import {
  LeaseCreatedSchema,
  LeaseStateChangedSchema,
  OfferCreatedSchema,
  OrderMatchedSchema,
  OrderUnmatchedSchema,
  ProviderRegisteredSchema,
  UsageSettledSchema,
} from "@deai/contracts/deai/events/v1/marketplace_pb";

import type { MarketEvents, OrderMatchedFacts } from "../app/events-port.js";
import { money } from "../app/views.js";

export const MarketSubjects = {
  providerRegistered: "deai.marketplace.provider_registered",
  offerCreated: "deai.marketplace.offer_created",
  orderMatched: "deai.marketplace.order_matched",
  orderUnmatched: "deai.marketplace.order_unmatched",
  leaseCreated: "deai.marketplace.lease_created",
  leaseStateChanged: "deai.marketplace.lease_state_changed",
  usageSettled: "deai.marketplace.usage_settled",
} as const;

/** Outbox publishers for every marketplace event. */
export function outboxEvents(clock: Clock, currency: string): MarketEvents {
  const at = () => timestampFromDate(clock.now());
  const q = (trx: unknown) => trx as Kysely<unknown>;
  const matched = (f: OrderMatchedFacts): QueuedEvent => {
    const eventId = `marketplace/order_matched/${f.orderId}/${f.attempt}`;
    return {
      subject: MarketSubjects.orderMatched,
      schema: OrderMatchedSchema,
      event: create(OrderMatchedSchema, { eventId, occurredAt: at(), orderId: f.orderId, tenantId: f.tenantId, matches: f.matches }),
      eventId,
    };
  };
  return {
    providerRegistered: async (trx, provider) => {
      const eventId = `marketplace/provider/${provider.providerId}/${clock.nowMs()}`;
      await enqueueEvent(
        q(trx),
        MarketSubjects.providerRegistered,
        ProviderRegisteredSchema,
        create(ProviderRegisteredSchema, { eventId, occurredAt: at(), provider }),
        eventId,
      );
    },
    offerCreated: async (trx, offer, offerId) => {
      const eventId = `marketplace/offer/${offerId}`;
      await enqueueEvent(
        q(trx),
        MarketSubjects.offerCreated,
        OfferCreatedSchema,
        create(OfferCreatedSchema, { eventId, occurredAt: at(), offer }),
        eventId,
      );
    },
    orderMatched: async (trx, orderId, tenantId, attempt, matches) => {
      await enqueueEvents(q(trx), [matched({ orderId, tenantId, attempt, matches })]);
    },
    ordersMatchedOutbox: (orders) => orders.map(matched),
    orderUnmatched: async (trx, orderId, tenantId, attempt, reasons) => {
      const eventId = `marketplace/order_unmatched/${orderId}/${attempt}`;
      await enqueueEvent(
        q(trx),
        MarketSubjects.orderUnmatched,
        OrderUnmatchedSchema,
        create(OrderUnmatchedSchema, { eventId, occurredAt: at(), orderId, tenantId, reasons }),
        eventId,
      );
    },
    leaseCreated: async (trx, lease) => {
      const eventId = `marketplace/lease/${lease.leaseId}`;
      await enqueueEvent(
        q(trx),
        MarketSubjects.leaseCreated,
        LeaseCreatedSchema,
        create(LeaseCreatedSchema, {
          eventId,
          occurredAt: at(),
          leaseId: lease.leaseId,
          orderId: lease.orderId,
          providerId: lease.providerId,
          tenantId: lease.tenantId,
          lease,
        }),
        eventId,
      );
    },
    leaseStateChanged: async (trx, lease, previous, seq, reason) => {
      const eventId = `marketplace/lease_state/${lease.leaseId}/${seq}`;
      await enqueueEvent(
        q(trx),
        MarketSubjects.leaseStateChanged,
        LeaseStateChangedSchema,
        create(LeaseStateChangedSchema, {
          eventId,
          occurredAt: at(),
          leaseId: lease.leaseId,
          providerId: lease.providerId,
          previousState: previous,
          state: lease.state,
          reason,
        }),
        eventId,
      );
    },
    usageSettled: async (trx, f) => {
      const eventId = `marketplace/usage/${f.leaseId}/${f.epoch}`;
      await enqueueEvent(
        q(trx),
        MarketSubjects.usageSettled,
        UsageSettledSchema,
        create(UsageSettledSchema, {
          eventId,
          occurredAt: at(),
          leaseId: f.leaseId,
          providerId: f.providerId,
          escrowAccountId: f.escrowAccountId,
          epoch: BigInt(f.epoch),
          gpuSeconds: f.gpuSeconds,
          amount: money(currency, f.amount),
          escrowAvailable: money(currency, f.escrowAvailable),
          leasePaused: f.leasePaused,
          reportHash: f.reportHash,
        }),
        eventId,
      );
    },
  };
}
