import { metrics, type Counter, type Histogram } from "@opentelemetry/api";

/** Repair's instruments (meter `@deai/da-sampler`). */
export interface RepairMetrics {
  /** Bytes repair moved: `direction` = read (from surviving providers) | written (to new ones). */
  readonly bytes: Counter;
  /** Shards rebuilt and written, by reason. */
  readonly shards: Counter;
  /** Repair jobs by outcome: started, completed, failed, no_provider. */
  readonly jobs: Counter;
  readonly duration: Histogram;
}

export function repairMetrics(): RepairMetrics {
  const meter = metrics.getMeter("@deai/da-sampler");
  return {
    bytes: meter.createCounter("deai.da.repair_bytes", { description: "Bytes read and written by repair, by direction", unit: "By" }),
    shards: meter.createCounter("deai.da.repaired_shards", { description: "Shards rebuilt from k others and placed anew, by reason" }),
    jobs: meter.createCounter("deai.da.repairs", { description: "Repair jobs, by outcome" }),
    duration: meter.createHistogram("deai.da.repair_duration", {
      description: "Time from a repair job's start to its completion",
      unit: "s",
    }),
  };
}
