import { IngestionService } from "@deai/contracts/deai/ingestion/v1/ingestion_pb";
import { generateNoteKey } from "@deai/proofs";
import {
  createTestEnv,
  describeServiceProcess,
  spawnService,
  storageProvidersJson,
  type ServiceProcess,
  type TestEnv,
} from "@deai/testkit";

const mainJs = new URL("../dist/main.js", import.meta.url).pathname;
const ledgerMain = new URL("../../ledger/dist/main.js", import.meta.url).pathname;
const ORIGIN = "ledger.ingestion-service-test/log";

// Ready means able to take an upload to its end: a reachable storage provider and a ready ledger.
describeServiceProcess({
  name: "ingestion",
  mainJs,
  service: IngestionService,
  setup: async (env) => {
    const keys = generateNoteKey(ORIGIN);
    const ledger = await spawnService(ledgerMain, env.vars({ LEDGER_ORIGIN: ORIGIN, LEDGER_SIGNING_KEY: keys.signerKey }), {
      timeoutMs: 60_000,
    });
    return {
      vars: { INGESTION_PROVIDERS: storageProvidersJson([env.s3], "deai"), INGESTION_LEDGER_URL: `http://127.0.0.1:${ledger.port}` },
      close: async () => {
        ledger.kill("SIGKILL");
        await ledger.exited;
      },
    };
  },
});

describe("ingestion without providers or a ready ledger", () => {
  let env: TestEnv;
  let ledger: ServiceProcess;
  let svc: ServiceProcess;
  beforeAll(async () => {
    env = await createTestEnv("ingestion-unready");
    // A ledger without a signing key is reachable but not ready.
    ledger = await spawnService(ledgerMain, env.vars(), { timeoutMs: 60_000 });
    svc = await spawnService(mainJs, env.vars({ INGESTION_LEDGER_URL: `http://127.0.0.1:${ledger.port}` }), { timeoutMs: 60_000 });
  });
  afterAll(async () => {
    for (const p of [svc, ledger]) {
      p?.kill("SIGKILL");
      await p?.exited;
    }
    await env?.close();
  });

  it("is not ready, naming both", async () => {
    const r = await fetch(`http://127.0.0.1:${svc.port}/readyz`);
    expect(r.status).toBe(503);
    const body = (await r.json()) as { checks: Record<string, string> };
    expect(body.checks.providers).toMatch(/no storage providers configured/);
    expect(body.checks.ledger).toMatch(/not serving \(NOT_SERVING\)/);
  });
});
