// The dashboard service on the kit's server: /healthz, /readyz, /metrics, /openapi.json and
// graceful drain come from the kit; the app is static files plus /config.json. It has no
// database, bus or bucket: it stores nothing and every answer it relays is verified by the browser.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { createLogger, MemoryNonceStore, Server, systemClock, type Logger } from "@deai/kit";

import type { DashboardConfig } from "./config.js";
import { dashboardHttp, dashboardRouteDocs } from "./web-server.js";

export const DASHBOARD_VERSION = "0.1.0";

/** Where the bundle lands (scripts/bundle.mjs): dist/public next to the compiled server. */
export const defaultPublicDir = join(dirname(fileURLToPath(import.meta.url)), "public");

export interface RunningDashboard {
  readonly port: number;
  readonly server: Server;
  stop(opts?: { drainMs?: number }): Promise<boolean>;
}

export async function startDashboard(
  config: DashboardConfig,
  opts: { logger?: Logger; publicDir?: string } = {},
): Promise<RunningDashboard> {
  const logger = opts.logger ?? createLogger({ service: "dashboard", level: config.LOG_LEVEL });
  const publicDir = opts.publicDir ?? defaultPublicDir;
  const server = new Server({
    host: config.HOST,
    port: config.PORT,
    bindings: [],
    logger,
    // No RPC is served, so nothing is ever signed; the kit's server still wants a policy.
    signing: { nonces: new MemoryNonceStore(), maxAgeS: config.SIGNATURE_MAX_AGE_S },
    authorities: config.PUBLIC_AUTHORITY,
    readiness: async () => ({ ready: true, checks: { bundle: "ok" } }),
    http: dashboardHttp({ config, publicDir, logger }),
    httpDocs: dashboardRouteDocs,
    metrics: config.METRICS_ENABLED,
    title: "DeAI OS dashboard",
    version: DASHBOARD_VERSION,
  });
  const port = await server.listen();
  logger.info({ port, host: config.HOST }, "listening (dashboard)");
  let stopping: Promise<boolean> | undefined;
  const stop = (stopOpts: { drainMs?: number } = {}): Promise<boolean> =>
    (stopping ??= (async () => {
      const drainMs = stopOpts.drainMs ?? 0;
      if (drainMs > 0) {
        server.beginDrain();
        logger.info({ drainMs }, "not ready; still serving while endpoints drain");
        await systemClock.sleep(drainMs);
      }
      return server.drain(systemClock.nowMs() + config.SHUTDOWN_TIMEOUT_MS);
    })());
  return { port, server, stop };
}
