import { StateMachine } from "@deai/kit/state";

/**
 * Health of one (dataset, slot) as this service sees it. A failed sample makes it `suspect`
 * (a quorum re-check is open); the quorum's verdict makes it `unavailable` (evidence) or
 * `available` again (cleared); a passing round clears `unavailable`.
 */
export type SlotState = "available" | "suspect" | "unavailable";

export const slotStates = new StateMachine<SlotState>("slot", {
  available: ["suspect"],
  suspect: ["available", "unavailable"],
  unavailable: ["available"],
});
