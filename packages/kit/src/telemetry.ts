import { context, metrics, propagation, trace, type Context, type TextMapGetter, type TextMapSetter } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import {
  detectResources,
  envDetector,
  hostDetector,
  processDetector,
  resourceFromAttributes,
  type Resource,
} from "@opentelemetry/resources";
import { NodeSDK } from "@opentelemetry/sdk-node";
import { MeterProvider, PeriodicExportingMetricReader, type IMetricReader, type PushMetricExporter } from "@opentelemetry/sdk-metrics";
import {
  BatchSpanProcessor,
  InMemorySpanExporter,
  NoopSpanProcessor,
  SimpleSpanProcessor,
  type SpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";

import { PrometheusReader } from "./metrics/prometheus.js";

export interface TelemetryOptions {
  service: string;
  version?: string;
  /**
   * OTLP/HTTP endpoint, e.g. http://collector:4318: traces (`/v1/traces`) and metrics
   * (`/v1/metrics`) are exported there, as OTLP JSON. Unset: spans are still recorded (trace
   * ids in logs, traceparent propagated) but not exported.
   */
  otlpEndpoint?: string | undefined;
  /** Keep metrics for the server's `/metrics` (Prometheus text). @default true */
  prometheus?: boolean;
  /** Period of the OTLP metric export. @default 15000 */
  metricExportIntervalMs?: number;
  /** Tests pass an in-memory exporter to inspect spans. */
  memoryExporter?: InMemorySpanExporter;
}

export interface Telemetry {
  /** The resource every span and metric carries (service, process, host, OTEL_RESOURCE_ATTRIBUTES). */
  readonly resource: Resource;
  shutdown(): Promise<void>;
}

let prometheus: PrometheusReader | undefined;

/**
 * The current metrics in the Prometheus text format, or undefined when this process has no
 * Prometheus reader (telemetry not started, or started with `prometheus: false`).
 */
export async function prometheusText(): Promise<string | undefined> {
  return prometheus?.scrape();
}

/**
 * The resource of this process: service name and version, then the detected process and host
 * attributes and OTEL_RESOURCE_ATTRIBUTES (where the chart puts k8s.pod.name,
 * k8s.namespace.name, k8s.node.name from the downward API). All are merged; on a clash the
 * service's own name and version win.
 */
export function serviceResource(service: string, version: string): Resource {
  const detected = detectResources({ detectors: [envDetector, processDetector, hostDetector] });
  return detected.merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: service, [ATTR_SERVICE_VERSION]: version }));
}

/**
 * Starts the OpenTelemetry NodeSDK (traces, W3C propagation, async context) and a meter
 * provider (OTLP export when an endpoint is set; a pull reader for `/metrics`). Call it first
 * in main, before the app is created, so every later module sees the global providers.
 */
export function startTelemetry(opts: TelemetryOptions): Telemetry {
  const resource = serviceResource(opts.service, opts.version ?? "0.1.0");
  const endpoint = opts.otlpEndpoint?.replace(/\/$/, "");
  const processors: SpanProcessor[] = [];
  if (endpoint) processors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url: `${endpoint}/v1/traces` })));
  if (opts.memoryExporter) processors.push(new SimpleSpanProcessor(opts.memoryExporter));
  // With no processor the SDK registers no tracer provider at all: spans would have no ids, so
  // logs would carry no trace_id and a service would not continue its caller's trace.
  if (processors.length === 0) processors.push(new NoopSpanProcessor());
  const sdk = new NodeSDK({
    resource,
    autoDetectResources: false,
    spanProcessors: processors,
    // Metrics get their own provider below. Left unset, the SDK would read OTEL_METRICS_EXPORTER
    // and OTEL_LOGS_EXPORTER and default to OTLP on localhost:4318.
    metricReaders: [],
    logRecordProcessors: [],
    textMapPropagator: new W3CTraceContextPropagator(),
    instrumentations: [],
  });
  sdk.start();
  const readers: IMetricReader[] = [];
  let ownPrometheus: PrometheusReader | undefined;
  if (opts.prometheus ?? true) readers.push((ownPrometheus = new PrometheusReader()));
  if (endpoint) {
    // The exporter is built against the same sdk-metrics release line; its types differ only nominally.
    const exporter = new OTLPMetricExporter({ url: `${endpoint}/v1/metrics` }) as unknown as PushMetricExporter;
    readers.push(new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: opts.metricExportIntervalMs ?? 15_000 }));
  }
  let meterProvider: MeterProvider | undefined;
  if (readers.length > 0) {
    meterProvider = new MeterProvider({ resource, readers });
    metrics.setGlobalMeterProvider(meterProvider);
    if (ownPrometheus) prometheus = ownPrometheus;
  }
  return {
    resource,
    shutdown: async () => {
      if (prometheus === ownPrometheus) prometheus = undefined;
      await Promise.all([sdk.shutdown(), meterProvider?.shutdown()]);
    },
  };
}

/** The tracer kit code uses. */
export const tracer = () => trace.getTracer("@deai/kit");

/** The meter kit code (or, given its name, a service) records with. */
export const meter = (name = "@deai/kit") => metrics.getMeter(name);

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

/** Whether a span is being recorded in `ctx`: client spans (database, S3) are made only inside one. */
export function inRecordingSpan(ctx: Context = context.active()): boolean {
  return trace.getSpan(ctx)?.isRecording() === true;
}

export { InMemorySpanExporter };
