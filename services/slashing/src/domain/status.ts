// Provider standing, evidence and slash lifecycles as state machines.
import { StateMachine } from "@deai/kit/state";

export type ProviderStatusName = "active" | "jailed" | "tombstoned";

/** active ⇄ jailed; either → tombstoned, which is final (never unjailed). */
export const providerStatus = new StateMachine<ProviderStatusName>("provider", {
  active: ["jailed", "tombstoned"],
  jailed: ["active", "jailed", "tombstoned"],
  tombstoned: [],
});

export type SlashStateName = "pending_veto" | "vetoed" | "applied";

export const slashStates = new StateMachine<SlashStateName>("slash", {
  pending_veto: ["vetoed", "applied"],
  vetoed: [],
  applied: [],
});

export type UnbondingStateName = "unbonding" | "completed";

export const unbondingStates = new StateMachine<UnbondingStateName>("unbonding", {
  unbonding: ["completed"],
  completed: [],
});
