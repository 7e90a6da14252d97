import { bind, type ServiceDefinition } from "@deai/kit";

import { TrainingService } from "@deai/contracts/deai/training/v1/training_pb";

import { migrations } from "./store/migrations.js";

/**
 * The trainer-operator service: TrainingJob resources → trainer pods (Kubernetes) or processes (local).
 * Skeleton: the contract is served (gRPC, Connect, REST, OpenAPI) and every RPC answers
 * UNIMPLEMENTED until its issue lands.
 */
export const trainerOperator: ServiceDefinition<unknown> = {
  name: "trainer-operator",
  version: "0.1.0",
  migrations,
  usesBlobs: false,
  create: async () => ({ bindings: [bind(TrainingService, {})] }),
};
