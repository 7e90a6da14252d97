// The marketplace's metrics, through the kit's meter (the OpenTelemetry API, exported at
// /metrics by the kit): matches by outcome and their latency, settled epochs and amounts,
// lease state changes, and the capacity gauge of free GPUs.
import { meter } from "@deai/kit";

const m = meter("@deai/marketplace");

export const marketMetrics = {
  /** Match attempts by outcome (reserved, unmatched). */
  matches: m.createCounter("deai.marketplace.matches", { description: "gang match attempts, by outcome" }),
  /** Duration of one match (plan and reservation commit). */
  matchDuration: m.createHistogram("deai.marketplace.match.duration", { unit: "s", description: "duration of one gang match" }),
  /** Epochs settled, by outcome (settled, duplicate, refused). */
  settlements: m.createCounter("deai.marketplace.settlements", { description: "usage reports, by outcome" }),
  /** Base units moved from escrow to providers. */
  settledAmount: m.createCounter("deai.marketplace.settled_amount", { description: "base units settled to providers" }),
  /** Lease state changes, by new state. */
  leaseTransitions: m.createCounter("deai.marketplace.lease_transitions", { description: "lease state changes, by state" }),
  /** Equivocation evidence sent to slashing, by outcome (submitted, duplicate, retry, refused). */
  evidence: m.createCounter("deai.marketplace.evidence", { description: "equivocation evidence submissions to slashing, by outcome" }),
  /** Events consumed from slashing and the DA sampler, by subject and effect. */
  consumed: m.createCounter("deai.marketplace.events_consumed", { description: "standing and reputation events applied, by subject" }),
};
