// The events the marketplace publishes, each queued in the transaction that makes it true
// (events/market-events.ts puts them in the kit's outbox; tests may record them).
import type { Match, NoMatchReason, Lease, LeaseState, Offer, Provider } from "@deai/contracts/deai/marketplace/v1/marketplace_pb";

import type { QueuedEvent } from "@deai/kit";

import type { Trx } from "./context.js";

export interface UsageSettledFacts {
  readonly leaseId: string;
  readonly providerId: string;
  readonly escrowAccountId: string;
  readonly epoch: number;
  readonly gpuSeconds: bigint;
  readonly amount: bigint;
  readonly escrowAvailable: bigint;
  readonly leasePaused: boolean;
  readonly reportHash: Uint8Array;
}

export interface OrderMatchedFacts {
  readonly orderId: string;
  readonly tenantId: string;
  readonly attempt: number;
  readonly matches: Match[];
}

export interface MarketEvents {
  providerRegistered(trx: Trx, provider: Provider): Promise<void>;
  offerCreated(trx: Trx, offer: Offer, offerId: string): Promise<void>;
  orderMatched(trx: Trx, orderId: string, tenantId: string, attempt: number, matches: Match[]): Promise<void>;
  /** The outbox rows of `orderMatched` for every order of a batch commit, which writes them in its own statement. */
  ordersMatchedOutbox(orders: readonly OrderMatchedFacts[]): QueuedEvent[];
  orderUnmatched(trx: Trx, orderId: string, tenantId: string, attempt: number, reasons: NoMatchReason[]): Promise<void>;
  leaseCreated(trx: Trx, lease: Lease): Promise<void>;
  leaseStateChanged(trx: Trx, lease: Lease, previous: LeaseState, seq: number, reason: string): Promise<void>;
  usageSettled(trx: Trx, facts: UsageSettledFacts): Promise<void>;
}

export const noEvents: MarketEvents = {
  providerRegistered: async () => {},
  offerCreated: async () => {},
  orderMatched: async () => {},
  ordersMatchedOutbox: () => [],
  orderUnmatched: async () => {},
  leaseCreated: async () => {},
  leaseStateChanged: async () => {},
  usageSettled: async () => {},
};
