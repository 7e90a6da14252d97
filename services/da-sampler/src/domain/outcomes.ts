import { SampleOutcome } from "@deai/contracts/deai/da/v1/da_pb";
import type { SampleOutcomeName } from "@deai/proofs";

/** How a range read ended, before the deadline is applied. */
export type ReadResult =
  | { readonly kind: "bytes"; readonly observedLeaf: Uint8Array; readonly matches: boolean }
  | { readonly kind: "missing"; readonly detail: string }
  | { readonly kind: "timeout"; readonly detail: string }
  | { readonly kind: "error"; readonly detail: string };

/**
 * The outcome of a sample: the right bytes within the deadline pass; the right bytes after it
 * are `late` (slow but serving: a fault of its own, told apart from `timeout`, no answer
 * before the read limit: gone); wrong bytes are `invalid` whenever they come.
 */
export function outcomeOf(r: ReadResult, latencyMs: number, deadlineMs: number): SampleOutcomeName {
  if (r.kind !== "bytes") return r.kind;
  if (!r.matches) return "invalid";
  return latencyMs > deadlineMs ? "late" : "ok";
}

/** Whether an outcome says the provider could not be reached at all (back-off applies). */
export function isUnreachable(o: SampleOutcomeName): boolean {
  return o === "timeout" || o === "error";
}

const PROTO: Record<SampleOutcomeName, SampleOutcome> = {
  ok: SampleOutcome.OK,
  missing: SampleOutcome.MISSING,
  invalid: SampleOutcome.INVALID,
  timeout: SampleOutcome.TIMEOUT,
  // The contract has no "late": a late answer is a deadline miss.
  late: SampleOutcome.TIMEOUT,
  error: SampleOutcome.ERROR,
};

export function outcomeToProto(o: string): SampleOutcome {
  return PROTO[o as SampleOutcomeName] ?? SampleOutcome.UNSPECIFIED;
}
