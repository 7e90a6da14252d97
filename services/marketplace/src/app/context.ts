// What every marketplace use case shares: the database, the clock, the parameters, the
// ports to other services (slashing for standing, the ledger for anchoring) and the events.
import type { Kysely, Transaction } from "kysely";

import type { Clock, GpuClassCatalog } from "@deai/kit";
import type { DsseSigner } from "@deai/proofs";

import type { EvidenceSink } from "./equivocation.js";
import type { MarketEvents } from "./events-port.js";
import type { ProviderStanding } from "./provider-standing.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Db = Kysely<any>;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Trx = Transaction<any>;

export interface MarketParams {
  /** The deployment's one currency (Money.currency); the books' ledger. */
  readonly currency: string;
  /** Bonded stake (base units) a provider needs in slashing to offer and be matched. */
  readonly minStake: bigint;
  /** A gang reservation's time to live when the order does not set one. */
  readonly reservationTtlMs: number;
  /** Longest reservation TTL an order may ask for. */
  readonly maxReservationTtlMs: number;
  /** Settlement epoch length. */
  readonly epochMs: number;
  /** How long an overdrawn lease keeps running (the operator checkpoints) before it is paused. */
  readonly graceMs: number;
  /** A hold for an epoch expires back to escrow this long after the epoch ends without a report. */
  readonly settlementWindowMs: number;
  /** Actor ids allowed to countersign usage reports (besides the order's tenant) and to close any lease. */
  readonly operators: readonly string[];
  /** Standing older than this is asked again from slashing before an offer is accepted. */
  readonly standingMaxAgeMs: number;
}

export const DEFAULT_PARAMS: MarketParams = {
  currency: "DEAI",
  minStake: 1_000_000n,
  reservationTtlMs: 5 * 60_000,
  maxReservationTtlMs: 24 * 3_600_000,
  epochMs: 3_600_000,
  graceMs: 5 * 60_000,
  settlementWindowMs: 24 * 3_600_000,
  operators: [],
  standingMaxAgeMs: 60_000,
};

export interface MarketContext {
  readonly db: Db;
  readonly clock: Clock;
  readonly params: MarketParams;
  readonly catalog: GpuClassCatalog;
  readonly standing: ProviderStanding;
  readonly events: MarketEvents;
  /** The marketplace's key: it signs lease statements for the ledger. */
  readonly signer: DsseSigner;
  /** Slashing's SubmitEvidence; unset: conflicting reports stay queued in `evidence_outbox`. */
  readonly evidence?: EvidenceSink;
}

/** Money accounts of the marketplace's books. */
export const accountIds = {
  external: "external",
  escrow: (orderId: string) => `escrow:${orderId}`,
  revenue: (providerId: string) => `revenue:${providerId}`,
} as const;
