/**
 * The server's span and metric conventions in one place (OpenTelemetry semantic conventions):
 *
 * - gRPC and gRPC-Web calls: `rpc.system=grpc`; Connect calls: `rpc.system=connect_rpc`;
 *   REST/JSON (transcoded) calls are HTTP server spans (`{method} {http.route}`, http.*) that
 *   also carry `rpc.system=http_json` with `rpc.service`/`rpc.method`, so one RPC has one
 *   series in `rpc.server.call.duration` whichever protocol it came by.
 * - `rpc.grpc.status_code` is set on every RPC span and data point, 0 included.
 * - A server span is an error only when the server is at fault: the gRPC codes the semantic
 *   conventions list for servers (UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL,
 *   UNAVAILABLE, DATA_LOSS), or HTTP 5xx. The caller's mistakes (4xx) leave the status unset.
 * - Health checks and metrics scrapes are not traced.
 */
import { Code } from "@connectrpc/connect";
import type { Histogram } from "@opentelemetry/api";

import { meter } from "../telemetry.js";

/** Services whose calls are not traced (probes). */
export const UNTRACED_SERVICES: ReadonlySet<string> = new Set(["grpc.health.v1.Health"]);

const SERVER_ERRORS = new Set([Code.Unknown, Code.DeadlineExceeded, Code.Unimplemented, Code.Internal, Code.Unavailable, Code.DataLoss]);

/** Whether a server span that ended with `code` is an error (the server's fault). */
export function isServerSpanError(code: Code): boolean {
  return SERVER_ERRORS.has(code);
}

/** `rpc.system` of a call from its content type: gRPC (and gRPC-Web) or Connect. */
export function rpcSystemOf(contentType: string | null | undefined): "grpc" | "connect_rpc" {
  return (contentType ?? "").startsWith("application/grpc") ? "grpc" : "connect_rpc";
}

/** Histogram buckets (seconds) for request durations: 1 ms to 60 s. */
export const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

let instruments: { rpc: Histogram; http: Histogram } | undefined;

/** The server's duration histograms, created on first use (so the meter provider set at start is used). */
export function serverMetrics(): { rpc: Histogram; http: Histogram } {
  instruments ??= {
    rpc: meter().createHistogram("rpc.server.call.duration", {
      description: "Duration of RPCs handled, by service, method, protocol and status",
      unit: "s",
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    }),
    http: meter().createHistogram("http.server.request.duration", {
      description: "Duration of plain HTTP requests handled (routes outside the contracts)",
      unit: "s",
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    }),
  };
  return instruments;
}

/** Seconds since `startMs` (a performance.now() reading). */
export function secondsSince(startMs: number): number {
  return (performance.now() - startMs) / 1000;
}
