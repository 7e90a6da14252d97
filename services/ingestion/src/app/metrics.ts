// Ingestion's metrics (METRICS.md), recorded through @opentelemetry/api so they work with or
// without the kit's exporters.
import { metrics, type Counter, type MeterProvider, type ObservableGauge } from "@opentelemetry/api";

export interface IngestionInstruments {
  /** Shard/data bytes received from clients. */
  readonly received: Counter;
  /** Bytes served to downloaders and readers. */
  readonly served: Counter;
  /** Uploads not yet in a terminal state. */
  readonly activeUploads: ObservableGauge;
  /** Stripes rebuilt from parity on read. */
  readonly reconstructions: Counter;
}

let cached: { provider: MeterProvider; instruments: IngestionInstruments } | undefined;

/** The instruments of the current global meter provider (created once per provider). */
export function ingestionMetrics(): IngestionInstruments {
  const provider = metrics.getMeterProvider();
  if (cached?.provider !== provider) {
    const meter = metrics.getMeter("@deai/ingestion");
    cached = {
      provider,
      instruments: {
        received: meter.createCounter("deai.ingestion.received", { unit: "By", description: "dataset bytes received from clients" }),
        served: meter.createCounter("deai.ingestion.served", { unit: "By", description: "dataset bytes served to readers" }),
        activeUploads: meter.createObservableGauge("deai.ingestion.active_uploads", {
          description: "uploads not in a terminal state",
        }),
        reconstructions: meter.createCounter("deai.ingestion.reconstructions", {
          description: "stripes rebuilt from parity on read",
        }),
      },
    };
  }
  return cached.instruments;
}
