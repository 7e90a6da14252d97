// The slashing service's instruments, on the kit's meter (OTLP when configured, /metrics always).
import { meter } from "@deai/kit";

type Counter = ReturnType<ReturnType<typeof meter>["createCounter"]>;

export interface SlashingMetrics {
  /** Evidence submissions by kind and outcome (accepted, recorded against an existing penalty, duplicate, refused). */
  readonly evidence: Counter;
  /** Slashes by kind and state reached (proposed, applied, vetoed). */
  readonly slashes: Counter;
  /** Base units taken from stake by applied slashes, by kind. */
  readonly amountSlashed: Counter;
  /** Anchoring attempts of slash records by outcome (anchored, retry, refused). */
  readonly anchors: Counter;
  /** Tick items (a due slash, a matured unbonding, an ended jail) whose processing threw, by step; the others still ran. */
  readonly tickFailures: Counter;
}

/** Creates the instruments (call after the meter provider is registered: `create()` or a test). */
export function slashingMetrics(): SlashingMetrics {
  const m = meter("@deai/slashing");
  return {
    evidence: m.createCounter("deai.slashing.evidence", { description: "Evidence submissions, by kind and outcome", unit: "{evidence}" }),
    slashes: m.createCounter("deai.slashing.slashes", { description: "Slashes by kind and the state they reached", unit: "{slash}" }),
    amountSlashed: m.createCounter("deai.slashing.amount_slashed", {
      description: "Stake taken by applied slashes, in the currency's base units",
      unit: "{base_unit}",
    }),
    anchors: m.createCounter("deai.slashing.anchors", { description: "Slash-record anchoring attempts, by outcome", unit: "{attempt}" }),
    tickFailures: m.createCounter("deai.slashing.tick_failures", {
      description: "Tick items whose processing failed (retried next tick), by step",
      unit: "{item}",
    }),
  };
}
