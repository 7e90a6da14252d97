// Offer, order and lease lifecycles as the kit's state machines; every state change goes
// through them (transitionRow in the store), so an illegal one fails with a precise
// FailedPrecondition naming both states.
import { StateMachine } from "@deai/kit/state";

export type OfferStateName = "active" | "paused" | "withdrawn";

/** active ⇄ paused; either → withdrawn, which is final. */
export const offerStates = new StateMachine<OfferStateName>("offer", {
  active: ["paused", "withdrawn"],
  paused: ["active", "withdrawn"],
  withdrawn: [],
});

export type OrderStateName = "matching" | "unmatched" | "reserved" | "active" | "completed" | "cancelled" | "expired";

/**
 * matching → reserved (a whole gang held) | unmatched (explained, retried as offers change);
 * reserved → active once escrow covers the first epoch of every group, or expired when the
 * reservation's TTL passes first; active → completed when every lease ended (a jailed
 * provider's groups are matched again while the order stays active: app/rematch.ts), or
 * cancelled by its tenant (its leases close at once).
 */
export const orderStates = new StateMachine<OrderStateName>("order", {
  matching: ["reserved", "unmatched", "cancelled"],
  unmatched: ["reserved", "unmatched", "expired", "cancelled"],
  reserved: ["active", "expired", "cancelled"],
  active: ["completed", "matching", "cancelled"],
  completed: [],
  cancelled: [],
  expired: [],
});

export type LeaseStateName = "active" | "paused" | "ended" | "breached";

/** active ⇄ paused (overdraw after the grace period; top-up resumes); either → ended | breached. */
export const leaseStates = new StateMachine<LeaseStateName>("lease", {
  active: ["paused", "ended", "breached"],
  paused: ["active", "ended", "breached"],
  ended: [],
  breached: [],
});

export type AllocationStateName = "reserved" | "leased" | "released";

/** Nodes of one offer held for one group: reserved → leased → released, or reserved → released. */
export const allocationStates = new StateMachine<AllocationStateName>("allocation", {
  reserved: ["leased", "released"],
  leased: ["released"],
  released: [],
});
