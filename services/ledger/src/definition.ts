import { bind, type ServiceDefinition } from "@deai/kit";

import { LedgerService } from "@deai/contracts/deai/ledger/v1/ledger_pb";

import { migrations } from "./store/migrations.js";

/**
 * The ledger service: the transparency log: entries, checkpoints, proofs, lineage queries.
 * Skeleton: the contract is served (gRPC, Connect, REST, OpenAPI) and every RPC answers
 * UNIMPLEMENTED until its issue lands.
 */
export const ledger: ServiceDefinition<unknown> = {
  name: "ledger",
  version: "0.1.0",
  migrations,
  usesBlobs: false,
  create: async () => ({ bindings: [bind(LedgerService, {})] }),
};
