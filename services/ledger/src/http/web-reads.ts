// What browsers and caches need from the tlog-tiles read paths: CORS for public reads (never
// for writes: a preflight for anything but GET/HEAD is not approved, and signed requests are
// POSTs), strong ETags with If-None-Match → 304, and gzip entry bundles for clients that
// accept it (a SHOULD of C2SP tlog-tiles). Hash tiles are random bytes, so they stay identity.
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";

import type { NodeRequest, NodeResponse } from "@deai/kit";

/** Headers every public read answer carries, so any origin (monitors, the dashboard) can read the log. */
export const CORS_READ: Record<string, string> = {
  "access-control-allow-origin": "*",
  "access-control-expose-headers": "ETag, Content-Encoding, Content-Length, Cache-Control",
};

/** The answer to a CORS preflight of a read path: GET and HEAD only, If-None-Match allowed. */
export function sendPreflight(res: NodeResponse): void {
  res.writeHead(204, {
    ...CORS_READ,
    "access-control-allow-methods": "GET, HEAD",
    "access-control-allow-headers": "If-None-Match, Cache-Control",
    "access-control-max-age": "86400",
    allow: "GET, HEAD, OPTIONS",
  });
  res.end();
}

/** Whether the client accepts gzip (RFC 9110 Accept-Encoding, `q=0` refusing it). */
export function acceptsGzip(req: NodeRequest): boolean {
  const header = req.headers["accept-encoding"];
  const value = Array.isArray(header) ? header.join(",") : (header ?? "");
  for (const part of value.split(",")) {
    const [coding, ...params] = part.trim().toLowerCase().split(";");
    if (coding !== "gzip" && coding !== "*") continue;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
    return q === undefined || Number(q.slice(2)) > 0;
  }
  return false;
}

/** A strong ETag of `bytes` in one content coding (each coding is its own representation). */
export function etagOf(bytes: Uint8Array, coding: "identity" | "gzip"): string {
  const h = createHash("sha256").update(bytes).digest("base64url").slice(0, 32);
  return coding === "gzip" ? `"${h}-gz"` : `"${h}"`;
}

/** Whether If-None-Match names one of `tags` (or is `*`), by the weak comparison RFC 9110 prescribes for it. */
export function notModified(req: NodeRequest, tags: readonly string[]): boolean {
  const header = req.headers["if-none-match"];
  if (header === undefined) return false;
  const value = Array.isArray(header) ? header.join(",") : header;
  const given = value.split(",").map((t) => t.trim().replace(/^W\//, ""));
  return given.includes("*") || given.some((t) => tags.includes(t));
}

/**
 * Sends one read answer: 304 when the client has it, gzip when asked for and `compressible`,
 * always with an ETag, CORS and (for compressible bodies) Vary: Accept-Encoding.
 */
export function sendRead(
  req: NodeRequest,
  res: NodeResponse,
  body: Uint8Array,
  headers: Record<string, string>,
  opts: { compressible: boolean; head: boolean },
): void {
  const identityTag = etagOf(body, "identity");
  const gzipTag = etagOf(body, "gzip");
  const gzip = opts.compressible && acceptsGzip(req);
  const common: Record<string, string> = { ...headers, ...CORS_READ, etag: gzip ? gzipTag : identityTag };
  if (opts.compressible) common.vary = "Accept-Encoding";
  if (notModified(req, opts.compressible ? [identityTag, gzipTag] : [identityTag])) {
    delete common["content-type"];
    res.writeHead(304, common);
    res.end();
    return;
  }
  const bytes = gzip ? gzipSync(body) : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (gzip) common["content-encoding"] = "gzip";
  res.writeHead(200, { ...common, "content-length": String(bytes.length) });
  if (opts.head) res.end();
  else res.end(bytes);
}
