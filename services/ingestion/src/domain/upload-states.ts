/**
 * The upload lifecycle, one transition table (kit StateMachine). Every state change of an
 * upload row goes through `transitionRow` with this machine, so two writers (a stream, a
 * sweep, an abort, an anchor) can never both move a row out of the same state.
 *
 * open ──finish──▶ awaiting_signature ──signed envelope──▶ anchoring ──receipt──▶ completed
 *   │                  │                                     │
 *   ├─ aborted/expired ┘                                     └─ ledger refused for good ─▶ failed
 *   ├─ failed (declared digest mismatch)
 *   └─ completed (same bytes already a dataset of this owner)
 *
 * `anchoring` has no timeout to expired: the ledger may already hold the envelope, so the
 * sweeper retries the (idempotent) append until it gives a receipt or refuses for good.
 */
import { StateMachine } from "@deai/kit/state";

export type UploadStateName = "open" | "awaiting_signature" | "anchoring" | "completed" | "aborted" | "expired" | "failed";

export const uploadStates = new StateMachine<UploadStateName>("upload", {
  open: ["awaiting_signature", "completed", "aborted", "expired", "failed"],
  awaiting_signature: ["anchoring", "aborted", "expired"],
  anchoring: ["completed", "failed"],
  completed: [],
  aborted: [],
  expired: [],
  failed: [],
});
