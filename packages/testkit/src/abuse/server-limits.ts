import type { SlowClientLimits } from "./run-abuse-suite.js";

/**
 * Small server limits for abuse runs (the kit's ConnectionLimits, one variable each), as the environment of a service process and as what
 * the slow-client tests expect of it: stalled connections closed within `boundMs`, at most
 * `maxConnections` sockets. Small, so the tests are bounded in time and sockets.
 */
export const ABUSE_SERVER_LIMITS: { readonly env: Readonly<Record<string, string>>; readonly slowClients: SlowClientLimits } = {
  // Read by the kit's service config once it maps these onto ServerOptions.limits; until then
  // a service runs with the default limits and the slow-client tests fail by their bound.
  env: {
    SERVER_HEADERS_TIMEOUT_MS: "1000",
    SERVER_IDLE_TIMEOUT_MS: "1000",
    SERVER_INACTIVITY_TIMEOUT_MS: "1000",
    SERVER_MIN_BYTES_PER_WINDOW: "1024",
    SERVER_MAX_CONNECTIONS: "64",
    // Every test client comes from 127.0.0.1.
    SERVER_MAX_CONNECTIONS_PER_ADDRESS: "64",
  },
  slowClients: { boundMs: 3_000, maxConnections: 64 },
};
