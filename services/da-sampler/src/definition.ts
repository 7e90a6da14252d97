import { bind, type ServiceDefinition } from "@deai/kit";

import { DaSamplerService } from "@deai/contracts/deai/da/v1/da_pb";

import { migrations } from "./store/migrations.js";

/**
 * The da-sampler service: availability sampling, storage challenges, attestations, repair.
 * Skeleton: the contract is served (gRPC, Connect, REST, OpenAPI) and every RPC answers
 * UNIMPLEMENTED until its issue lands.
 */
export const daSampler: ServiceDefinition<unknown> = {
  name: "da-sampler",
  version: "0.1.0",
  migrations,
  usesBlobs: true,
  create: async () => ({ bindings: [bind(DaSamplerService, {})] }),
};
