import { bind, type ServiceDefinition } from "@deai/kit";

import { SlashingService } from "@deai/contracts/deai/slashing/v1/slashing_pb";

import { migrations } from "./store/migrations.js";

/**
 * The slashing service: stake, unbonding, evidence, penalties, jailing.
 * Skeleton: the contract is served (gRPC, Connect, REST, OpenAPI) and every RPC answers
 * UNIMPLEMENTED until its issue lands.
 */
export const slashing: ServiceDefinition<unknown> = {
  name: "slashing",
  version: "0.1.0",
  migrations,
  usesBlobs: false,
  create: async () => ({ bindings: [bind(SlashingService, {})] }),
};
