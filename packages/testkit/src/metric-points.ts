// A metric reader for tests: `installTestMetricReader()` makes it the global meter provider, so
// instruments created afterwards (the kit's, a service's) record into it; `metricPoints` reads
// one metric's data points.
import { metrics } from "@opentelemetry/api";
import { AggregationTemporality, MeterProvider, MetricReader, type ResourceMetrics } from "@opentelemetry/sdk-metrics";

class TestReader extends MetricReader {
  protected onForceFlush = async (): Promise<void> => undefined;
  protected onShutdown = async (): Promise<void> => undefined;
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
}

let reader: TestReader | undefined;

/** Installs the test reader as the global meter provider (once per process). */
export function installTestMetricReader(): void {
  if (reader) return;
  reader = new TestReader();
  metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
}

export interface MetricPoint {
  attributes: Record<string, unknown>;
  value: unknown;
}

/** Every data point recorded so far of the metric `name` (cumulative). */
export async function metricPoints(name: string): Promise<MetricPoint[]> {
  installTestMetricReader();
  const { resourceMetrics } = (await reader!.collect()) as { resourceMetrics: ResourceMetrics };
  const out: MetricPoint[] = [];
  for (const sm of resourceMetrics.scopeMetrics)
    for (const m of sm.metrics) if (m.descriptor.name === name) out.push(...(m.dataPoints as MetricPoint[]));
  return out;
}
