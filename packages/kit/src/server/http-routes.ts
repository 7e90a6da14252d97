/**
 * Tracing and metrics of the app's plain HTTP routes (App.http: streamed uploads, content
 * reads, tlog-tiles): an HTTP server span `{method} {http.route}` from the caller's
 * traceparent, lasting until the response has been sent (a streamed body included), and one
 * `http.server.request.duration` point. 5xx, and a response cut before its end, are errors.
 */
import { SpanKind, SpanStatusCode, context, trace } from "@opentelemetry/api";

import { extractContext, tracer } from "../telemetry.js";
import { headersOf, type NodeRequest, type NodeResponse } from "./rest-gateway.js";
import { secondsSince, serverMetrics } from "./rpc-telemetry.js";

/** Runs `handler` for a request that matched `template`, inside its server span. */
export async function tracedHttpRoute(
  req: NodeRequest,
  res: NodeResponse,
  path: string,
  template: string,
  handler: (req: NodeRequest, res: NodeResponse) => Promise<boolean>,
): Promise<boolean> {
  const started = performance.now();
  const method = req.method ?? "GET";
  const parent = extractContext(headersOf(req));
  const span = tracer().startSpan(
    `${method} ${template}`,
    {
      kind: SpanKind.SERVER,
      attributes: { "http.request.method": method, "http.route": template, "url.path": path, "url.scheme": "http" },
    },
    parent,
  );
  let handled = false;
  const sent = new Promise<void>((resolve) => res.once("close", resolve));
  try {
    handled = await context.with(trace.setSpan(parent, span), () => handler(req, res));
  } catch (e) {
    span.recordException(e as Error);
    throw e;
  } finally {
    if (!handled) span.end();
    else
      void sent.then(() => {
        const status = res.statusCode;
        span.setAttribute("http.response.status_code", status);
        const cut = !res.writableFinished;
        if (cut) span.setAttribute("error.type", "response_incomplete");
        if (status >= 500 || cut)
          span.setStatus({ code: SpanStatusCode.ERROR, message: cut ? "the response was cut before its end" : undefined });
        span.end();
        serverMetrics().http.record(secondsSince(started), {
          "http.request.method": method,
          "http.route": template,
          "http.response.status_code": status,
        });
      });
  }
  return handled;
}
