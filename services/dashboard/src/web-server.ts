// The dashboard's HTTP routes: the single-page app's static files, /config.json (where the
// browser finds each API and the pinned log key) and a read-only GET passthrough to the
// services that send no CORS headers. Nothing here verifies or trusts anything: the browser does.
import { readFile } from "node:fs/promises";
import { join } from "node:path";

import type { HttpRouteDoc, Logger, NodeRequest, NodeResponse } from "@deai/kit";

import { API_NAMES, apiUrls, type ApiName, type DashboardConfig } from "./config.js";

/** What /config.json gives the browser. */
export interface BrowserConfig {
  readonly logKey: string | null;
  readonly ledgerTilesPrefix: string;
  /** Base URL (absolute, or a same-origin path) per API; absent = not configured. */
  readonly apis: Partial<Record<ApiName, string>>;
}

export function browserConfig(config: DashboardConfig): BrowserConfig {
  const urls = apiUrls(config);
  const apis: Partial<Record<ApiName, string>> = {};
  for (const name of API_NAMES) {
    if (urls[name] === undefined) continue;
    // The ledger answers browsers itself (CORS on its reads and tiles); the others do not.
    apis[name] = name === "ledger" || !config.DASHBOARD_PROXY ? urls[name] : `/api/${name}`;
  }
  return { logKey: config.DASHBOARD_LOG_KEY ?? null, ledgerTilesPrefix: config.DASHBOARD_LEDGER_TILES_PREFIX, apis };
}

const STATIC: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/index.html": { file: "index.html", type: "text/html; charset=utf-8" },
  "/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/style.css": { file: "style.css", type: "text/css; charset=utf-8" },
};

const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  // Scripts and styles only from here (no CDN at runtime); the APIs may live anywhere.
  "content-security-policy":
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src *; frame-ancestors 'none'",
};

function send(res: NodeResponse, status: number, type: string, body: string | Uint8Array, extra: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": type, "cache-control": "no-cache", ...SECURITY_HEADERS, ...extra });
  res.end(body);
}

function sendError(res: NodeResponse, status: number, code: string, message: string): void {
  send(res, status, "application/json", JSON.stringify({ code, message, details: {} }));
}

export interface WebServerOptions {
  readonly config: DashboardConfig;
  /** Directory holding index.html, app.js and style.css (the bundle). */
  readonly publicDir: string;
  readonly logger: Logger;
}

/** The kit server's `http` hook: true when the request was one of the dashboard's routes. */
export function dashboardHttp(opts: WebServerOptions): (req: NodeRequest, res: NodeResponse) => Promise<boolean> {
  const urls = apiUrls(opts.config);
  const cfg = JSON.stringify(browserConfig(opts.config));
  const cache = new Map<string, Uint8Array>();
  return async (req, res) => {
    const url = new URL(req.url ?? "/", "http://dashboard");
    const method = req.method ?? "GET";
    const path = url.pathname;
    const api = /^\/api\/([a-z]+)(\/.*)?$/.exec(path);
    if (api) {
      await passthrough(req, res, api[1]!, api[2] ?? "/", url.search, urls, opts);
      return true;
    }
    if (path !== "/config.json" && STATIC[path] === undefined) return false;
    if (method !== "GET" && method !== "HEAD") {
      sendError(res, 405, "method_not_allowed", `${method} ${path}: only GET and HEAD`);
      return true;
    }
    if (path === "/config.json") {
      send(res, 200, "application/json", cfg);
      return true;
    }
    const asset = STATIC[path]!;
    let body = cache.get(asset.file);
    if (body === undefined) {
      try {
        body = new Uint8Array(await readFile(join(opts.publicDir, asset.file)));
      } catch {
        sendError(res, 503, "unavailable", `${asset.file} is missing: build the dashboard (npm run build -w @deai/dashboard)`);
        return true;
      }
      cache.set(asset.file, body);
    }
    send(res, 200, asset.type, method === "HEAD" ? new Uint8Array() : body);
    return true;
  };
}

async function passthrough(
  req: NodeRequest,
  res: NodeResponse,
  name: string,
  rest: string,
  search: string,
  urls: Partial<Record<ApiName, string>>,
  opts: WebServerOptions,
): Promise<void> {
  const method = req.method ?? "GET";
  if (!opts.config.DASHBOARD_PROXY) return sendError(res, 404, "not_found", "the passthrough is off (DASHBOARD_PROXY=false)");
  if (!(API_NAMES as readonly string[]).includes(name)) return sendError(res, 404, "not_found", `unknown API ${JSON.stringify(name)}`);
  const base = urls[name as ApiName];
  if (base === undefined) return sendError(res, 404, "not_found", `the ${name} API is not configured`);
  if (method !== "GET" && method !== "HEAD") return sendError(res, 405, "method_not_allowed", `${method}: the passthrough is read-only`);
  // Public REST reads only: /v1/... (no health, metrics or admin paths of the upstream).
  if (!/^\/v1\/[A-Za-z0-9._~:@%/-]*$/.test(rest) || rest.includes("/../") || rest.endsWith("/..")) {
    return sendError(res, 400, "invalid_argument", `path ${JSON.stringify(rest)}: only /v1/ read paths are forwarded`);
  }
  // After URL normalization too (%2e%2e is a dot segment to the URL parser).
  const target = new URL(`${base}${rest}${search}`);
  if (!target.pathname.startsWith(`${new URL(base).pathname.replace(/\/$/, "")}/v1/`)) {
    return sendError(res, 400, "invalid_argument", `path ${JSON.stringify(rest)}: only /v1/ read paths are forwarded`);
  }
  let upstream: Response;
  try {
    upstream = await fetch(target, {
      method,
      headers: { accept: "application/json" },
      redirect: "manual",
      signal: AbortSignal.timeout(opts.config.DASHBOARD_PROXY_TIMEOUT_MS),
    });
  } catch (e) {
    opts.logger.warn({ api: name, err: (e as Error).message }, "passthrough: upstream unreachable");
    return sendError(res, 502, "unavailable", `the ${name} API did not answer: ${(e as Error).message}`);
  }
  const body = new Uint8Array(await upstream.arrayBuffer());
  if (body.length > opts.config.DASHBOARD_PROXY_MAX_BYTES) {
    return sendError(res, 502, "unavailable", `the ${name} API answered ${body.length} bytes, over DASHBOARD_PROXY_MAX_BYTES`);
  }
  send(
    res,
    upstream.status,
    upstream.headers.get("content-type") ?? "application/octet-stream",
    method === "HEAD" ? new Uint8Array() : body,
  );
}

const html = (description: string): Record<string, unknown> => ({ description, content: { "text/html": { schema: { type: "string" } } } });
const tags = ["dashboard"];

/** OpenAPI operations of the routes above. */
export const dashboardRouteDocs: readonly HttpRouteDoc[] = [
  {
    method: "get",
    path: "/",
    pattern: /^\/(index\.html|app\.js|style\.css)?$/,
    operation: {
      operationId: "dashboard_static",
      summary: "The single-page app (index.html, app.js, style.css)",
      description: "Everything the browser runs, bundled (no CDN). Served with a content security policy.",
      tags,
      security: [],
      responses: { "200": html("the app"), "405": { description: "not GET or HEAD" } },
    },
  },
  {
    method: "get",
    path: "/config.json",
    operation: {
      operationId: "dashboard_config",
      summary: "Where the browser finds each API, and the pinned log key",
      tags,
      security: [],
      responses: { "200": { description: "the browser config", content: { "application/json": { schema: { type: "object" } } } } },
    },
  },
  {
    method: "get",
    path: "/api/{name}/{path}",
    pattern: /^\/api\/.*$/,
    operation: {
      operationId: "dashboard_passthrough",
      summary: "Read-only passthrough to a service's public REST reads (/v1/...)",
      description: "GET and HEAD only, for services that send no CORS headers. The browser verifies what comes back.",
      tags,
      security: [],
      parameters: [
        { name: "name", in: "path", required: true, schema: { type: "string", enum: [...API_NAMES] } },
        { name: "path", in: "path", required: true, description: "the service's REST path, starting with v1/", schema: { type: "string" } },
      ],
      responses: {
        "200": { description: "the service's answer, as it gave it" },
        "400": { description: "not a /v1/ read path" },
        "404": { description: "unknown or unconfigured API" },
        "405": { description: "not GET or HEAD" },
        "502": { description: "the service did not answer" },
      },
    },
  },
];
