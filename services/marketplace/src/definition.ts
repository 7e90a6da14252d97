import { bind, type ServiceDefinition } from "@deai/kit";

import { MarketplaceService } from "@deai/contracts/deai/marketplace/v1/marketplace_pb";

import { migrations } from "./store/migrations.js";

/**
 * The marketplace service: providers, offers, orders, matching, leases, escrow, settlement.
 * Skeleton: the contract is served (gRPC, Connect, REST, OpenAPI) and every RPC answers
 * UNIMPLEMENTED until its issue lands.
 */
export const marketplace: ServiceDefinition<unknown> = {
  name: "marketplace",
  version: "0.1.0",
  migrations,
  usesBlobs: false,
  create: async () => ({ bindings: [bind(MarketplaceService, {})] }),
};
