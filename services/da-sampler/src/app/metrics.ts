import { metrics, type Counter, type Histogram } from "@opentelemetry/api";

/** The sampler's instruments (created once the meter provider is registered). */
export interface DaMetrics {
  readonly samples: Counter;
  readonly faults: Counter;
  readonly latency: Histogram;
  readonly confidence: Histogram;
  readonly attestations: Counter;
  readonly refused: Counter;
}

export function daMetrics(): DaMetrics {
  const meter = metrics.getMeter("@deai/da-sampler");
  return {
    samples: meter.createCounter("deai.da.samples", { description: "Shard samples, by outcome and purpose" }),
    faults: meter.createCounter("deai.da.faults", { description: "Samples that did not pass, by outcome" }),
    latency: meter.createHistogram("deai.da.sample_latency", { description: "Range read of one shard", unit: "ms" }),
    confidence: meter.createHistogram("deai.da.confidence", { description: "Confidence stated by each attestation signed" }),
    attestations: meter.createCounter("deai.da.attestations", { description: "Attestations signed or formed, by kind and verdict" }),
    refused: meter.createCounter("deai.da.refused", { description: "Votes and attestations refused, by reason" }),
  };
}
