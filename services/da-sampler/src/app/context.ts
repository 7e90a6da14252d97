import type { Clock, Logger, OutboxRelay, Scheduler } from "@deai/kit";
import type { AttestedPolicy } from "@deai/proofs";
import type { Kysely } from "kysely";

import type { DaSamplerDb } from "../store/tables.js";
import type { CheckpointSource } from "./checkpoints.js";
import type { DaMetrics } from "./metrics.js";
import type { SamplerIdentity } from "./sampler-identity.js";
import type { ShardReader } from "./shard-reader.js";

/** What the use cases share: the ports and the policy in force. */
export interface SamplerContext {
  readonly db: Kysely<DaSamplerDb>;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly outbox: OutboxRelay;
  readonly scheduler: Scheduler;
  readonly policy: AttestedPolicy;
  /** The identities this process runs. */
  readonly identities: readonly SamplerIdentity[];
  /** Every sampler of the quorum (actor ids). */
  readonly knownSamplers: readonly string[];
  readonly reader: ShardReader;
  /** Unset without DA_LEDGER_URL: rounds cannot be seeded. */
  readonly checkpoints: CheckpointSource | undefined;
  readonly metrics: DaMetrics;
  readonly summaryRounds: number;
  readonly recheckTimeoutMs: number;
  readonly reputationLambda: number;
}
