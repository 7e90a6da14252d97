import { StateMachine } from "@deai/kit/state";

/**
 * A repair job: `rebuilding` (stripes read once, lost slots rebuilt together and written to
 * their new providers, progress recorded per part group) → `anchoring` (the placement
 * statement is signed and stored; the append is idempotent) → `completed` (the new placement is
 * in force: catalog, slot states and the repair_completed event in one transaction). A job that
 * cannot succeed (the ledger refused the statement, fewer than k shards of a stripe remain)
 * ends `failed` with its reason.
 */
export type RepairState = "rebuilding" | "anchoring" | "completed" | "failed";

export const repairStates = new StateMachine<RepairState>("repair", {
  rebuilding: ["anchoring", "failed"],
  anchoring: ["completed", "failed"],
  completed: [],
  failed: [],
});
