import type { SlowClientLimits } from "./run-abuse-suite.js";

/**
 * Small server limits for abuse runs, as the environment of a service process and as what
 * the slow-client tests expect of it: stalled connections closed within `boundMs`, at most
 * `maxConnections` sockets. Small, so the tests are bounded in time and sockets.
 */
export const ABUSE_SERVER_LIMITS: { readonly env: Readonly<Record<string, string>>; readonly slowClients: SlowClientLimits } = {
  env: {
    SERVER_IDLE_TIMEOUT_MS: "1000",
    SERVER_HEADERS_TIMEOUT_MS: "1000",
    SERVER_REQUEST_TIMEOUT_MS: "2000",
    SERVER_MAX_CONNECTIONS: "64",
  },
  slowClients: { boundMs: 3_000, maxConnections: 64 },
};
