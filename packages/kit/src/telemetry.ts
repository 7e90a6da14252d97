import { context, propagation, trace, type Context, type TextMapGetter, type TextMapSetter } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { NodeSDK } from "@opentelemetry/sdk-node";
import { BatchSpanProcessor, InMemorySpanExporter, SimpleSpanProcessor, type SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";

export interface TelemetryOptions {
  service: string;
  version?: string;
  /** OTLP/HTTP endpoint, e.g. http://collector:4318. Unset: spans are created (for log correlation and propagation) but not exported. */
  otlpEndpoint?: string | undefined;
  /** Tests pass an in-memory exporter to inspect spans. */
  memoryExporter?: InMemorySpanExporter;
}

export interface Telemetry {
  shutdown(): Promise<void>;
}

/**
 * Starts the OpenTelemetry NodeSDK. Call it first in main, before the app is imported,
 * so every later module sees the global tracer provider and the W3C propagator.
 */
export function startTelemetry(opts: TelemetryOptions): Telemetry {
  const processors: SpanProcessor[] = [];
  if (opts.otlpEndpoint) {
    processors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url: `${opts.otlpEndpoint.replace(/\/$/, "")}/v1/traces` })));
  }
  if (opts.memoryExporter) processors.push(new SimpleSpanProcessor(opts.memoryExporter));
  const sdk = new NodeSDK({
    resource: resourceFromAttributes({
      [ATTR_SERVICE_NAME]: opts.service,
      [ATTR_SERVICE_VERSION]: opts.version ?? "0.1.0",
    }),
    spanProcessors: processors,
    // No metric readers until metrics get an exporter (issue 11). Left unset, the SDK reads
    // OTEL_METRICS_EXPORTER and defaults to OTLP on localhost:4318: with no collector there,
    // shutdown waits for the final export to time out and the service misses its deadline.
    metricReaders: [],
    textMapPropagator: new W3CTraceContextPropagator(),
    instrumentations: [],
  });
  sdk.start();
  return { shutdown: () => sdk.shutdown() };
}

/** The tracer kit code uses. */
export const tracer = () => trace.getTracer("@deai/kit");

const headersGetter: TextMapGetter<Headers> = {
  keys: (h) => [...h.keys()],
  get: (h, k) => h.get(k) ?? undefined,
};
const headersSetter: TextMapSetter<Headers> = { set: (h, k, v) => h.set(k, v) };

/** Extracts W3C trace context (traceparent, tracestate) from fetch-style headers. */
export function extractContext(headers: Headers): Context {
  return propagation.extract(context.active(), headers, headersGetter);
}

/** Injects the active W3C trace context into fetch-style headers. */
export function injectContext(headers: Headers, ctx: Context = context.active()): void {
  propagation.inject(ctx, headers, headersSetter);
}

export { InMemorySpanExporter };
