// An OTLP/HTTP receiver for tests: takes what services export to OTEL_EXPORTER_OTLP_ENDPOINT
// (`/v1/traces`, `/v1/metrics`, `/v1/logs`) in the OTLP JSON encoding the kit's exporters use,
// and keeps the spans, flattened, with their resource attributes.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** One attribute value in OTLP JSON. */
interface AnyValue {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
  arrayValue?: { values?: AnyValue[] };
}
interface KeyValue {
  key: string;
  value: AnyValue;
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: KeyValue[];
  status?: { code?: number; message?: string };
  links?: { traceId: string; spanId: string }[];
}
interface TracesRequest {
  resourceSpans?: { resource?: { attributes?: KeyValue[] }; scopeSpans?: { spans?: OtlpSpan[] }[] }[];
}

export type AttributeValue = string | number | boolean | AttributeValue[] | undefined;

/** A received span, decoded. */
export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  /** Undefined for a root span. */
  readonly parentSpanId: string | undefined;
  readonly name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  readonly kind: number;
  readonly attributes: Record<string, AttributeValue>;
  readonly resource: Record<string, AttributeValue>;
  /** OTLP status code: 0 unset, 1 ok, 2 error. */
  readonly statusCode: number;
  readonly links: readonly { traceId: string; spanId: string }[];
}

export interface OtlpReceiver {
  /** The endpoint to put in OTEL_EXPORTER_OTLP_ENDPOINT. */
  readonly url: string;
  readonly spans: ReceivedSpan[];
  /** Raw metric export requests (OTLP JSON). */
  readonly metricRequests: unknown[];
  /** Requests whose content type was not JSON (the receiver only decodes OTLP JSON). */
  readonly undecoded: string[];
  close(): Promise<void>;
}

function valueOf(v: AnyValue | undefined): AttributeValue {
  if (!v) return undefined;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.arrayValue) return (v.arrayValue.values ?? []).map(valueOf);
  return undefined;
}

function attributesOf(kvs: KeyValue[] | undefined): Record<string, AttributeValue> {
  return Object.fromEntries((kvs ?? []).map((kv) => [kv.key, valueOf(kv.value)]));
}

/** Starts a receiver on a free loopback port. */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const metricRequests: unknown[] = [];
  const undecoded: string[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const type = req.headers["content-type"] ?? "";
      if (!type.startsWith("application/json")) {
        undecoded.push(`${req.url} ${type}`);
      } else {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
        if (req.url === "/v1/traces") {
          for (const rs of (body as TracesRequest).resourceSpans ?? []) {
            const resource = attributesOf(rs.resource?.attributes);
            for (const ss of rs.scopeSpans ?? [])
              for (const s of ss.spans ?? [])
                spans.push({
                  traceId: s.traceId,
                  spanId: s.spanId,
                  parentSpanId: s.parentSpanId ? s.parentSpanId : undefined,
                  name: s.name,
                  kind: s.kind,
                  attributes: attributesOf(s.attributes),
                  resource,
                  statusCode: s.status?.code ?? 0,
                  links: s.links ?? [],
                });
          }
        } else if (req.url === "/v1/metrics") metricRequests.push(body);
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    metricRequests,
    undecoded,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
