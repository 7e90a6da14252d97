/**
 * A kit Server without Postgres, NATS or S3: the system contract, optionally more bindings,
 * a memory nonce store, and limits small enough that timeout tests finish in a second.
 */
import type { HandlerContext } from "@connectrpc/connect";

import { SystemService, type WhoAmIRequest } from "@deai/contracts/deai/system/v1/system_pb";
import {
  MemoryNonceStore,
  Server,
  bind,
  createLogger,
  requireActor,
  type ConnectionLimits,
  type NodeRequest,
  type NodeResponse,
  type ServiceBinding,
} from "@deai/kit";

export const quietLogger = createLogger({ service: "server-test", level: "silent" });

export interface TestServer {
  server: Server;
  port: number;
  base: string;
  close(): Promise<void>;
}

export async function startTestServer(
  opts: {
    bindings?: readonly ServiceBinding[];
    limits?: ConnectionLimits;
    http?: (req: NodeRequest, res: NodeResponse) => Promise<boolean>;
    logger?: ServerLogger;
    authorities?: readonly string[];
    maxBodyBytes?: number;
  } = {},
): Promise<TestServer> {
  const system = bind(SystemService, {
    getInfo: () => ({ service: "server-test", version: "0", schema: "none", migrations: [] }),
    whoAmI: (req: WhoAmIRequest, ctx: HandlerContext) => ({ actor: requireActor(ctx), note: req.note }),
  });
  const server = new Server({
    host: "127.0.0.1",
    port: 0,
    bindings: [system, ...(opts.bindings ?? [])],
    logger: opts.logger ?? quietLogger,
    signing: { nonces: new MemoryNonceStore(), maxAgeS: 300 },
    readiness: async () => ({ ready: true, checks: {} }),
    title: "server test",
    version: "0",
    ...(opts.limits ? { limits: opts.limits } : {}),
    ...(opts.http ? { http: opts.http } : {}),
    ...(opts.authorities ? { authorities: opts.authorities } : {}),
    ...(opts.maxBodyBytes ? { maxBodyBytes: opts.maxBodyBytes } : {}),
  });
  const port = await server.listen();
  return { server, port, base: `http://127.0.0.1:${port}`, close: async () => void (await server.drain(Date.now() + 2000)) };
}

type ServerLogger = ReturnType<typeof createLogger>;

/** A logger that keeps every line (level and message) for assertions. */
export function recordingLogger(): { logger: ServerLogger; lines: { level: number; msg: string }[] } {
  const lines: { level: number; msg: string }[] = [];
  const destination = {
    write(s: string): boolean {
      for (const l of s.split("\n")) if (l.trim()) lines.push(JSON.parse(l) as { level: number; msg: string });
      return true;
    },
  } as unknown as NodeJS.WritableStream;
  return { logger: createLogger({ service: "server-test", level: "debug", destination }), lines };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
