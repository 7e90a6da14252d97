import { bind, type ServiceDefinition } from "@deai/kit";

import { IngestionService } from "@deai/contracts/deai/ingestion/v1/ingestion_pb";

import { migrations } from "./store/migrations.js";

/**
 * The ingestion service: dataset upload/download, erasure coding, placement, manifests.
 * Skeleton: the contract is served (gRPC, Connect, REST, OpenAPI) and every RPC answers
 * UNIMPLEMENTED until its issue lands.
 */
export const ingestion: ServiceDefinition<unknown> = {
  name: "ingestion",
  version: "0.1.0",
  migrations,
  usesBlobs: true,
  create: async () => ({ bindings: [bind(IngestionService, {})] }),
};
