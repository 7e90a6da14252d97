import { serviceConfigSchema, loadConfig, type ServiceConfig } from "@deai/kit";

import { createTestDatabase, type TestDatabase } from "./postgres.js";
import { deleteNatsStreams, natsUrl, uniqueNatsPrefix } from "./nats.js";
import { startS3, type TestS3 } from "./s3.js";

export interface TestEnv {
  readonly database: TestDatabase;
  readonly natsPrefix: string;
  readonly s3: TestS3;
  /** A service config pointing at this env, on port 0, quiet logs; `overrides` win. */
  config(overrides?: Record<string, string>): ServiceConfig;
  /** Environment variables for a child process of a service using this env. */
  vars(overrides?: Record<string, string>): Record<string, string>;
  close(): Promise<void>;
}

/** Real Postgres (fresh database), NATS (unique prefix) and an in-process S3 server for one test file. */
export async function createTestEnv(label: string): Promise<TestEnv> {
  const database = await createTestDatabase(label);
  const s3 = await startS3({ buckets: ["deai"] });
  const natsPrefix = uniqueNatsPrefix(label);
  const vars = (overrides: Record<string, string> = {}): Record<string, string> => ({
    HOST: "127.0.0.1",
    PORT: "0",
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    DATABASE_URL: database.url,
    DB_POOL_SIZE: "5",
    NATS_URL: natsUrl,
    NATS_PREFIX: natsPrefix,
    S3_ENDPOINT: s3.endpoint,
    S3_BUCKET: "deai",
    S3_ACCESS_KEY: s3.accessKey,
    S3_SECRET_KEY: s3.secretKey,
    S3_REGION: s3.region,
    SHUTDOWN_TIMEOUT_MS: "10000",
    SHUTDOWN_DRAIN_MS: "0",
    ...overrides,
  });
  return {
    database,
    natsPrefix,
    s3,
    vars,
    config: (overrides) => loadConfig(serviceConfigSchema, vars(overrides)),
    close: async () => {
      await s3.destroy();
      await deleteNatsStreams(natsPrefix).catch(() => undefined);
      await database.drop();
    },
  };
}
