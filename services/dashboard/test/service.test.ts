// The dashboard process: kit health and metrics, the bundle, /config.json from env, the
// read-only passthrough (only GET/HEAD of /v1/ paths of a configured API), SIGTERM drain.
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";

import { spawnService, type ServiceProcess } from "@deai/testkit";
import { generateNoteKey } from "@deai/proofs";

import { loadDashboardConfig } from "../src/config.js";

const mainJs = new URL("../dist/main.js", import.meta.url).pathname;
const key = generateNoteKey("ledger.test/dash-service");

let upstream: Server;
let upstreamUrl: string;
const seen: string[] = [];
let svc: ServiceProcess | undefined;

/** GET with the path sent exactly as given. */
function rawStatus(path: string): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port: svc!.port, path, method: "GET" }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on("error", reject);
    req.end();
  });
}
let base: string;

beforeAll(async () => {
  upstream = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ slashes: [], path: req.url }));
  });
  await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  svc = await spawnService(mainJs, {
    HOST: "127.0.0.1",
    PORT: "0",
    SHUTDOWN_DRAIN_MS: "300",
    DASHBOARD_LOG_KEY: key.verifierKey,
    DASHBOARD_LEDGER_URL: "http://ledger.example:7101/",
    DASHBOARD_SLASHING_URL: upstreamUrl,
  });
  base = `http://127.0.0.1:${svc.port}`;
});

afterAll(async () => {
  if (svc && svc.proc.exitCode === null) {
    svc.kill("SIGKILL");
    await svc.exited;
  }
  await new Promise<void>((r) => upstream.close(() => r()));
});

it("serves the bundle, health, readiness and metrics", async () => {
  const index = await fetch(`${base}/`);
  expect(index.status).toBe(200);
  expect(index.headers.get("content-security-policy")).toContain("script-src 'self'");
  expect(await index.text()).toContain('<script type="module" src="app.js">');
  const app = await fetch(`${base}/app.js`);
  expect(app.headers.get("content-type")).toContain("javascript");
  // Everything is bundled: no import of anything outside the file.
  expect(await app.text()).not.toMatch(/from\s*["']https?:/);
  expect((await fetch(`${base}/healthz`)).status).toBe(200);
  expect((await fetch(`${base}/readyz`)).status).toBe(200);
  expect((await fetch(`${base}/metrics`)).status).toBe(200);
  expect((await fetch(`${base}/app.js`, { method: "POST" })).status).toBe(405);
});

it("gives the browser the pinned key and where each API is", async () => {
  const cfg = (await (await fetch(`${base}/config.json`)).json()) as { logKey: string; apis: Record<string, string> };
  expect(cfg.logKey).toBe(key.verifierKey);
  // The ledger sends CORS itself: direct; the others go through the passthrough.
  expect(cfg.apis).toEqual({ ledger: "http://ledger.example:7101", slashing: "/api/slashing" });
});

it("forwards only GET/HEAD of /v1/ read paths to a configured API", async () => {
  const ok = await fetch(`${base}/api/slashing/v1/slashing/slashes?pageSize=5`);
  expect(ok.status).toBe(200);
  expect(await ok.json()).toEqual({ slashes: [], path: "/v1/slashing/slashes?pageSize=5" });
  const before = seen.length;
  expect((await fetch(`${base}/api/slashing/v1/slashing/evidence`, { method: "POST", body: "{}" })).status).toBe(405);
  expect((await fetch(`${base}/api/slashing/metrics`)).status).toBe(400);
  // Raw paths (fetch would normalize them first): dot segments, plain or percent-encoded, are
  // refused and never reach the upstream (checked below with `seen`).
  for (const raw of ["/api/slashing/v1/../metrics", "/api/slashing/v1/%2e%2e/metrics", "/api/slashing/v1/%2E%2e/%2e%2E/healthz"]) {
    expect([400, 404]).toContain(await rawStatus(raw));
  }
  expect((await fetch(`${base}/api/marketplace/v1/marketplace/leases`)).status).toBe(404);
  expect((await fetch(`${base}/api/nope/v1/x`)).status).toBe(404);
  expect(seen.length).toBe(before);
  const err = (await (await fetch(`${base}/api/slashing/metrics`)).json()) as { code: string; message: string };
  expect(err.code).toBe("invalid_argument");
});

it("refuses a bad log key or URL at start", () => {
  expect(() => loadDashboardConfig({ DASHBOARD_LOG_KEY: "not a key" })).toThrow(/DASHBOARD_LOG_KEY/);
  expect(() => loadDashboardConfig({ DASHBOARD_SLASHING_URL: "ftp://x" })).toThrow(/DASHBOARD_SLASHING_URL/);
  expect(() => loadDashboardConfig({ DASHBOARD_SAMPLER_URL: "::" })).toThrow(/DASHBOARD_SAMPLER_URL/);
});

it("drains on SIGTERM: not ready, then exits 0", async () => {
  svc!.kill("SIGTERM");
  const deadline = Date.now() + 2000;
  let status = 200;
  while (status === 200 && Date.now() < deadline)
    status = await fetch(`${base}/readyz`).then(
      (r) => r.status,
      () => 0,
    );
  expect(status).toBe(503);
  expect(await svc!.exited).toBe(0);
});
