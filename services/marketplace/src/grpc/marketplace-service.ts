// The deai.marketplace.v1 handlers: decode, call the use case, answer. Errors map in the kit.
import { create } from "@bufbuild/protobuf";

import {
  CloseLeaseResponseSchema,
  CreateGpuOfferResponseSchema,
  CreateOrderResponseSchema,
  CreateStorageOfferResponseSchema,
  GetEscrowAccountResponseSchema,
  GetLeaseResponseSchema,
  GetOrderResponseSchema,
  GetProviderResponseSchema,
  ListOffersResponseSchema,
  MarketplaceService,
  RegisterProviderResponseSchema,
  SetOfferStateResponseSchema,
} from "@deai/contracts/deai/marketplace/v1/marketplace_pb";
import { bind, requireActor, type ServiceBinding } from "@deai/kit";

import type { Market } from "../app/market.js";

export function marketplaceService(m: Market): ServiceBinding {
  return bind(MarketplaceService, {
    registerProvider: async (req, ctx) =>
      create(RegisterProviderResponseSchema, { provider: await m.providers.register(requireActor(ctx), req) }),
    getProvider: async (req) => create(GetProviderResponseSchema, { provider: await m.providers.get(req.providerId) }),
    createGpuOffer: async (req, ctx) => {
      const offer = await m.providers.createGpuOffer(requireActor(ctx), req);
      // New capacity: unmatched orders may fit now.
      return create(CreateGpuOfferResponseSchema, { offer: offer.kind.case === "gpu" ? offer.kind.value : undefined });
    },
    createStorageOffer: async (req, ctx) => {
      const offer = await m.providers.createStorageOffer(requireActor(ctx), req);
      return create(CreateStorageOfferResponseSchema, { offer: offer.kind.case === "storage" ? offer.kind.value : undefined });
    },
    listOffers: async (req) => create(ListOffersResponseSchema, await m.providers.list(req)),
    setOfferState: async (req, ctx) =>
      create(SetOfferStateResponseSchema, { offer: await m.providers.setOfferState(requireActor(ctx), req.offerId, req.state) }),
    createOrder: async (req, ctx) =>
      create(CreateOrderResponseSchema, { order: await m.orders.create(requireActor(ctx), req.spec, req.idempotencyKey) }),
    getOrder: async (req) => create(GetOrderResponseSchema, { order: await m.orders.get(req.orderId) }),
    listMatches: async (req) => m.orders.listMatches(req.orderId),
    getLease: async (req) => create(GetLeaseResponseSchema, { lease: await m.leases.get(req.leaseId) }),
    listLeases: async (req) => m.leases.list(req),
    submitUsageReport: async (req) => m.leases.settle(req.leaseId, req.report),
    getEscrowAccount: async (req) =>
      create(GetEscrowAccountResponseSchema, {
        account: await m.escrow.view(req.accountId),
        recentTransfers: await m.escrow.recent(req.accountId),
      }),
    deposit: async (req) => m.deposit(req.accountId, req.amount, req.idempotencyKey, req.externalReference),
    withdraw: async (req, ctx) => m.withdraw(requireActor(ctx), req.accountId, req.amount, req.idempotencyKey, req.destination),
    closeLease: async (req, ctx) =>
      create(CloseLeaseResponseSchema, { lease: await m.leases.close(requireActor(ctx), req.leaseId, req.reason) }),
    cancelOrder: async (req, ctx) => m.cancelOrder(requireActor(ctx), req.orderId, req.reason),
  });
}
