// The abuse suite against the kit's bare server (the system contract and health, memory
// nonces, small limits, no database): every case must pass here, so a failure in a service's
// run is the service's or its wiring's, and the suite itself is shown to be passable.
import type { HandlerContext } from "@connectrpc/connect";

import { SystemService, type WhoAmIRequest } from "@deai/contracts/deai/system/v1/system_pb";
import { MemoryNonceStore, Server, bind, createLogger, requireActor } from "@deai/kit";

import { runAbuseSuite } from "./run-abuse-suite.js";
import { ABUSE_SERVER_LIMITS } from "./server-limits.js";

const limits = ABUSE_SERVER_LIMITS.env;

runAbuseSuite({
  name: "kit server",
  services: [],
  start: async () => {
    const server = new Server({
      host: "127.0.0.1",
      port: 0,
      bindings: [
        bind(SystemService, {
          getInfo: () => ({ service: "kit-server", version: "0", schema: "none", migrations: [] }),
          whoAmI: (req: WhoAmIRequest, ctx: HandlerContext) => ({ actor: requireActor(ctx), note: req.note }),
        }),
      ],
      logger: createLogger({ service: "kit-server", level: "silent" }),
      signing: { nonces: new MemoryNonceStore(), maxAgeS: 300 },
      readiness: async () => ({ ready: true, checks: {} }),
      title: "kit server",
      version: "0",
      limits: {
        headersTimeoutMs: Number(limits.SERVER_HEADERS_TIMEOUT_MS),
        idleTimeoutMs: Number(limits.SERVER_IDLE_TIMEOUT_MS),
        inactivityTimeoutMs: Number(limits.SERVER_INACTIVITY_TIMEOUT_MS),
        minBytesPerWindow: Number(limits.SERVER_MIN_BYTES_PER_WINDOW),
        maxConnections: Number(limits.SERVER_MAX_CONNECTIONS),
        maxConnectionsPerAddress: Number(limits.SERVER_MAX_CONNECTIONS_PER_ADDRESS),
      },
    });
    const port = await server.listen();
    return {
      baseUrl: `http://127.0.0.1:${port}`,
      // In-process: a crash would end the test run itself.
      alive: () => true,
      // The system contract keeps no state; only nonces, which are bookkeeping.
      snapshot: async () => ({}),
      stop: async () => void (await server.drain(Date.now() + 2000)),
    };
  },
});
