/**
 * Metrics for Prometheus without a second HTTP server: a pull reader the kit server's
 * `/metrics` route collects on each scrape, serialized with @opentelemetry/exporter-prometheus.
 *
 * Names follow the OpenTelemetry-to-Prometheus compatibility rules the serializer leaves to
 * the caller: the unit becomes a suffix (`s` → `_seconds`, `By` → `_bytes`; annotations such as
 * `{entry}` add none), and the serializer then adds `_total` to counters. So
 * `rpc.server.call.duration` (s) is served as `rpc_server_call_duration_seconds_*` while OTLP
 * keeps the semantic-convention name.
 */
import { PrometheusSerializer } from "@opentelemetry/exporter-prometheus";
import { AggregationTemporality, MetricReader, type MetricData, type ResourceMetrics } from "@opentelemetry/sdk-metrics";

const UNIT_SUFFIX: Record<string, string> = { s: "seconds", ms: "milliseconds", By: "bytes", "1": "ratio" };

/** The Prometheus base name of an instrument (before the serializer's `_total`). */
export function prometheusName(name: string, unit: string): string {
  const base = name.replace(/[^a-zA-Z0-9_:]/g, "_").replace(/_+/g, "_");
  const suffix = UNIT_SUFFIX[unit];
  // A ratio suffix only reads right on gauges of fractions; counts with unit "1" keep their name.
  if (!suffix || suffix === "ratio" || base.endsWith(`_${suffix}`)) return base;
  return `${base}_${suffix}`;
}

export class PrometheusReader extends MetricReader {
  private readonly serializer = new PrometheusSerializer(undefined, false);

  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }

  protected override onForceFlush = async (): Promise<void> => undefined;
  protected override onShutdown = async (): Promise<void> => undefined;

  /** Collects every instrument now and returns the text exposition. */
  async scrape(): Promise<string> {
    const { resourceMetrics, errors } = await this.collect({ timeoutMillis: 5_000 });
    const renamed: ResourceMetrics = {
      resource: resourceMetrics.resource,
      scopeMetrics: resourceMetrics.scopeMetrics.map((sm) => ({
        ...sm,
        metrics: sm.metrics.map((m): MetricData => ({
          ...m,
          descriptor: { ...m.descriptor, name: prometheusName(m.descriptor.name, m.descriptor.unit) },
        })),
      })),
    };
    const text = this.serializer.serialize(renamed);
    return errors.length > 0 ? `${text}\n# ${errors.length} callback(s) failed during this collection\n` : text;
  }
}
