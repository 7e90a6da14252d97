import { LedgerService } from "@deai/contracts/deai/ledger/v1/ledger_pb";
import { generateNoteKey } from "@deai/proofs";
import { createTestEnv, describeServiceProcess, spawnService, type ServiceProcess, type TestEnv } from "@deai/testkit";

const mainJs = new URL("../dist/main.js", import.meta.url).pathname;

describeServiceProcess({
  name: "ledger",
  mainJs,
  service: LedgerService,
  setup: async () => {
    const keys = generateNoteKey("ledger.service-test/log");
    return { vars: { LEDGER_ORIGIN: "ledger.service-test/log", LEDGER_SIGNING_KEY: keys.signerKey } };
  },
});

describe("ledger without a signing key", () => {
  let env: TestEnv;
  let svc: ServiceProcess;
  beforeAll(async () => {
    env = await createTestEnv("ledger-unsigned");
    svc = await spawnService(mainJs, env.vars(), { timeoutMs: 60_000 });
  });
  afterAll(async () => {
    svc?.kill("SIGKILL");
    await svc?.exited;
    await env?.close();
  });

  it("is not ready: it could never sign a checkpoint, so no append would get a receipt", async () => {
    const r = await fetch(`http://127.0.0.1:${svc.port}/readyz`);
    expect(r.status).toBe(503);
    const body = (await r.json()) as { status: string; checks: Record<string, string> };
    expect(body.status).toBe("not ready");
    expect(body.checks.signer).toMatch(/LEDGER_SIGNING_KEY is not set/);
    expect(body.checks.postgres).toBe("ok");
    expect((await fetch(`http://127.0.0.1:${svc.port}/healthz`)).status).toBe(200);
  });
});
