// Test harness: the ingestion harness (real Postgres, NATS, in-process S3 providers, the real
// ledger process) plus a real ingestion process to upload datasets through, and sampler
// configuration for in-process and spawned samplers sharing its NATS prefix.
import { randomBytes } from "node:crypto";

import { actorKeyFromSeed } from "@deai/kit";
import { createTestDatabase, spawnService, type ServiceProcess, type TestDatabase } from "@deai/testkit";

import { startHarness, type Harness } from "../../ingestion/test/harness.js";

export { bytesOf, providerClient, uploadAll } from "../../ingestion/test/harness.js";

const ingestionMain = new URL("../../ingestion/dist/main.js", import.meta.url).pathname;
export const samplerMain = new URL("../dist/main.js", import.meta.url).pathname;

export interface Sampler {
  readonly seed: string;
  readonly id: string;
}

export function newSampler(): Sampler {
  const seed = randomBytes(32).toString("base64url");
  return { seed, id: actorKeyFromSeed(seed).id };
}

export interface DaHarness {
  readonly h: Harness;
  readonly ingestion: ServiceProcess;
  readonly ingestionUrl: string;
  /** A fresh database for one sampler process. */
  database(): Promise<TestDatabase>;
  /** Environment of a sampler process (its own database, the shared NATS prefix). */
  samplerVars(
    db: TestDatabase,
    own: readonly Sampler[],
    all: readonly Sampler[],
    overrides?: Record<string, string>,
  ): Record<string, string>;
  close(): Promise<void>;
}

/** `natsUrl`: ingestion and the samplers use this NATS (a private one a test restarts) instead of the shared one. */
export async function startDaHarness(label: string, providers: number, o: { natsUrl?: string } = {}): Promise<DaHarness> {
  const h = await startHarness(label, providers);
  const nats: Record<string, string> = o.natsUrl ? { NATS_URL: o.natsUrl } : {};
  const ingestion = await spawnService(
    ingestionMain,
    h.env.vars({ INGESTION_PROVIDERS: h.providersJson(), INGESTION_LEDGER_URL: h.ledgerUrl, INGESTION_PART_BYTES: "5242880", ...nats }),
    { timeoutMs: 90_000 },
  );
  const dbs: TestDatabase[] = [];
  return {
    h,
    ingestion,
    ingestionUrl: `http://127.0.0.1:${ingestion.port}`,
    database: async () => {
      const db = await createTestDatabase(`${label}-s`);
      dbs.push(db);
      return db;
    },
    samplerVars: (db, own, all, overrides = {}) =>
      h.env.vars({
        DATABASE_URL: db.url,
        DA_SAMPLER_KEYS: own.map((s) => s.seed).join(","),
        DA_SAMPLERS: all.map((s) => s.id).join(","),
        DA_PROVIDERS: h.providersJson(),
        DA_INGESTION_URL: `http://127.0.0.1:${ingestion.port}`,
        DA_LEDGER_URL: h.ledgerUrl,
        DA_WINDOW_MS: "60000",
        DA_ROUND_INTERVAL_MS: "1000",
        DA_AUDIT_BUDGET: "1000000",
        DA_SAMPLE_DEADLINE_MS: "1500",
        DA_SAMPLE_TIMEOUT_MS: "4000",
        DA_SUMMARY_ROUNDS: "2",
        DA_ANCHOR_INTERVAL_MS: "200",
        DA_RECHECK_TIMEOUT_MS: "60000",
        ...nats,
        ...overrides,
      }),
    close: async () => {
      ingestion.kill("SIGKILL");
      await ingestion.exited;
      await h.close();
      await Promise.all(dbs.map((d) => d.drop()));
    },
  };
}
