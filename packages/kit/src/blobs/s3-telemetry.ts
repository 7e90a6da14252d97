/**
 * S3 client spans, made by the http(s) transport every kit minio client uses (BlobStore and
 * the storage providers): one CLIENT span per request, named `S3.{operation}` with the AWS
 * SDK conventions (`rpc.system=aws-api`, `rpc.service=S3`, `rpc.method`, `aws.s3.bucket`,
 * `aws.s3.key`) and the HTTP ones (`http.request.method`, `http.response.status_code`,
 * `server.address`, `server.port`). The span lasts until the response body has been read.
 * Spans are made only inside a recording span (liveness probes from timers make none).
 */
import type http from "node:http";
import type { IncomingMessage } from "node:http";

import { SpanKind, SpanStatusCode, type Span } from "@opentelemetry/api";

import { inRecordingSpan, tracer } from "../telemetry.js";

/** What minio needs of a transport. */
export interface S3Transport {
  request: typeof http.request;
}

/** The S3 API operation of a path-style request. */
export function s3Operation(method: string, path: string): { operation: string; bucket?: string; key?: string } {
  const [p = "/", query = ""] = path.split("?", 2);
  const q = new URLSearchParams(query);
  const segments = p.replace(/^\//, "").split("/");
  const bucket = segments[0] ? decodeURIComponent(segments[0]) : undefined;
  const keyPart = segments.slice(1).join("/");
  const key = keyPart ? decodeURIComponent(keyPart) : undefined;
  const where = { ...(bucket ? { bucket } : {}), ...(key ? { key } : {}) };
  const op = (operation: string) => ({ operation, ...where });
  if (!key) {
    if (q.has("location")) return op("GetBucketLocation");
    if (method === "HEAD") return op("HeadBucket");
    if (method === "PUT") return op("CreateBucket");
    if (method === "DELETE") return op("DeleteBucket");
    if (method === "POST" && q.has("delete")) return op("DeleteObjects");
    if (method === "GET") return op(bucket ? "ListObjects" : "ListBuckets");
    return op(method);
  }
  if (method === "POST" && q.has("uploads")) return op("CreateMultipartUpload");
  if (method === "POST" && q.has("uploadId")) return op("CompleteMultipartUpload");
  if (method === "PUT" && q.has("partNumber")) return op("UploadPart");
  if (method === "DELETE" && q.has("uploadId")) return op("AbortMultipartUpload");
  if (method === "GET" && q.has("uploadId")) return op("ListParts");
  if (method === "PUT") return op("PutObject");
  if (method === "GET") return op("GetObject");
  if (method === "HEAD") return op("HeadObject");
  if (method === "DELETE") return op("DeleteObject");
  return op(method);
}

/** Wraps `base` so that each request is an S3 client span. */
export function tracedS3Transport(base: S3Transport): S3Transport {
  return {
    request: ((opts: http.RequestOptions, cb?: (res: IncomingMessage) => void) => {
      if (!inRecordingSpan()) return base.request(opts, cb);
      const method = (opts.method ?? "GET").toUpperCase();
      const { operation, bucket, key } = s3Operation(method, opts.path ?? "/");
      const span: Span = tracer().startSpan(`S3.${operation}`, {
        kind: SpanKind.CLIENT,
        attributes: {
          "rpc.system": "aws-api",
          "rpc.service": "S3",
          "rpc.method": operation,
          "http.request.method": method,
          "server.address": String(opts.hostname ?? opts.host ?? ""),
          ...(opts.port !== undefined && opts.port !== null ? { "server.port": Number(opts.port) } : {}),
          ...(bucket ? { "aws.s3.bucket": bucket } : {}),
          ...(key ? { "aws.s3.key": key } : {}),
        },
      });
      let ended = false;
      const end = (e?: Error): void => {
        if (ended) return;
        ended = true;
        if (e) {
          span.recordException(e);
          span.setStatus({ code: SpanStatusCode.ERROR, message: e.message });
        }
        span.end();
      };
      let answered = false;
      const req = base.request(opts, (res) => {
        answered = true;
        const status = res.statusCode ?? 0;
        span.setAttribute("http.response.status_code", status);
        // A missing object is an answer (stat, exists), not a failure of the call.
        if (status >= 500 || (status >= 400 && status !== 404)) span.setStatus({ code: SpanStatusCode.ERROR, message: `HTTP ${status}` });
        res.once("end", () => end());
        res.once("close", () => end());
        res.once("error", (e) => end(e));
        cb?.(res);
      });
      req.once("error", (e) => end(e));
      // Closed without a response: aborted (a deadline) or broken.
      req.once("close", () => answered || end(new Error("the request ended without a response")));
      return req;
    }) as typeof http.request,
  };
}
