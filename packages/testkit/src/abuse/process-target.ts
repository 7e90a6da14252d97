import { createTestEnv } from "../env.js";
import { spawnService, type ServiceProcess } from "../process.js";
import { ABUSE_SERVER_LIMITS } from "./server-limits.js";
import type { AbuseTarget } from "./run-abuse-suite.js";
import { postgresSnapshot } from "./state-snapshot.js";

/**
 * An AbuseTarget over a spawned service process: alive while the process has not exited,
 * state = its Postgres schema. `close` tears down what the test started besides it.
 */
export function processTarget(o: {
  service: ServiceProcess;
  databaseUrl: string;
  schema: string;
  /** Tables left out of the snapshot. @default the kit's nonce and inbox tables */
  exclude?: readonly string[];
  close?: () => Promise<void>;
}): AbuseTarget {
  return {
    baseUrl: `http://127.0.0.1:${o.service.port}`,
    alive: () => o.service.proc.exitCode === null && o.service.proc.signalCode === null,
    errorLogs: () =>
      o.service.logs.flatMap((l) => {
        const line = l as { level?: number; msg?: string; err?: { message?: string } };
        // pino levels: 50 error, 60 fatal.
        return typeof line.level === "number" && line.level >= 50
          ? [`${line.msg ?? ""}${line.err?.message ? `: ${line.err.message}` : ""}`]
          : [];
      }),
    snapshot: postgresSnapshot({ url: o.databaseUrl, schema: o.schema, ...(o.exclude ? { exclude: o.exclude } : {}) }),
    stop: async () => {
      if (o.service.proc.exitCode === null && o.service.proc.signalCode === null) {
        o.service.kill("SIGKILL");
        await o.service.exited;
      }
      await o.close?.();
    },
  };
}

/**
 * The usual target: a fresh test env (Postgres, NATS, S3), the built service spawned on it
 * with the abuse server limits and `vars`, and its schema as the state.
 */
export async function spawnAbuseTarget(o: {
  mainJs: string;
  /** The service name: the env label and (dashes as underscores) its Postgres schema. */
  name: string;
  vars?: Record<string, string>;
  exclude?: readonly string[];
}): Promise<AbuseTarget> {
  const env = await createTestEnv(`${o.name}-abuse`);
  try {
    const service = await spawnService(o.mainJs, env.vars({ ...ABUSE_SERVER_LIMITS.env, ...o.vars }));
    return processTarget({
      service,
      databaseUrl: env.database.url,
      schema: o.name.replace(/-/g, "_"),
      ...(o.exclude ? { exclude: o.exclude } : {}),
      close: () => env.close(),
    });
  } catch (e) {
    await env.close();
    throw e;
  }
}
