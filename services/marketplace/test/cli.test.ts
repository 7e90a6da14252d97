// `deai market offer|order|status|leases|cancel` (the built CLI) against the built marketplace
// process, slashing stood in for by a server of its own contract: two providers offer, a
// two-group order is matched across both and funded, status and leases show it, an order that
// cannot match shows the shortfall, cancel releases everything; bad input exits 2 or 1.
import { execFile } from "node:child_process";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { createTestEnv, spawnService, type ServiceProcess, type TestEnv } from "@deai/testkit";

import { startFakeSlashing, type FakeSlashing } from "./fake-slashing.js";

const mainJs = new URL("../dist/main.js", import.meta.url).pathname;
const cliJs = new URL("../../../tools/cli/dist/main.js", import.meta.url).pathname;
let env: TestEnv;
let slashing: FakeSlashing;
let svc: ServiceProcess;
let dir: string;

beforeAll(async () => {
  env = await createTestEnv("marketplace-cli");
  slashing = await startFakeSlashing();
  svc = await spawnService(mainJs, env.vars({ MARKETPLACE_SLASHING_URL: slashing.url, MARKETPLACE_TICK_MS: "200" }));
  dir = await mkdtemp(join(tmpdir(), "market-cli-"));
}, 60_000);
afterAll(async () => {
  svc?.kill("SIGKILL");
  await svc?.exited;
  await slashing?.close();
  await env?.close();
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

function deai(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(
      process.execPath,
      [cliJs, ...args],
      { env: { PATH: process.env.PATH ?? "", DEAI_MARKETPLACE_URL: `http://127.0.0.1:${svc.port}` } },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}
async function json(...args: string[]): Promise<Json> {
  const r = await deai(...args, "--json");
  if (r.code !== 0) throw new Error(`deai ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}
async function key(name: string): Promise<{ file: string; actor: string }> {
  const file = join(dir, `${name}.json`);
  expect((await deai("keygen", "--out", file)).code).toBe(0);
  return { file, actor: (JSON.parse(await readFile(file, "utf8")) as { actor: string }).actor };
}

it("offers from two providers, a two-group order matched across both and funded, status, leases, an explained non-match and cancel", async () => {
  const p1 = await key("p1");
  const p2 = await key("p2");
  const tenant = await key("tenant");
  const offer = (k: string, region: string, price: string) =>
    json(
      "market",
      "offer",
      "--key",
      k,
      "--name",
      "cli provider",
      "--gpu",
      "nvidia-h100-80g-sxm5",
      "--gpus-per-node",
      "8",
      "--nodes",
      "1",
      "--region",
      region,
      "--price",
      price,
      "--bandwidth-mbps",
      "1000",
    );
  const o1 = await offer(p1.file, "eu-west", "1000000");
  const o2 = await offer(p2.file, "us-east", "2000000");
  expect(o1.offer).toMatchObject({ providerId: p1.actor, nodes: 1, state: "OFFER_STATE_ACTIVE" });
  expect(o2.offer.providerId).toBe(p2.actor);

  const ordered = await json(
    "market",
    "order",
    "--key",
    tenant.file,
    "--gpu",
    "nvidia-h100-80g-sxm5",
    "--gpus-per-group",
    "8",
    "--groups",
    "2",
    "--max-price",
    "3000000",
    "--hours",
    "2",
    "--idempotency-key",
    "cli-1",
    "--deposit",
    "24000000",
  );
  expect(ordered.order).toMatchObject({ tenantId: tenant.actor, state: "ORDER_STATE_ACTIVE" });
  expect(ordered.leases.map((l: Json) => l.providerId).sort()).toEqual([p1.actor, p2.actor].sort());
  expect(ordered.escrow.held.micros).toBe("24000000");
  const orderId = ordered.order.orderId as string;

  const human = await deai("market", "status", orderId);
  expect(human.code).toBe(0);
  expect(human.stdout).toContain(`${orderId}: ACTIVE`);
  expect(human.stdout).toContain("escrow");
  const leases = await json("market", "leases", "--order", orderId);
  expect(leases.leases).toHaveLength(2);
  expect((await json("market", "leases", "--provider", p1.actor)).leases).toHaveLength(1);

  // Nothing left: the next order is explained.
  const none = await json(
    "market",
    "order",
    "--key",
    tenant.file,
    "--gpu",
    "nvidia-h100-80g-sxm5",
    "--gpus-per-group",
    "8",
    "--max-price",
    "3000000",
    "--hours",
    "1",
  );
  expect(none.order.state).toBe("ORDER_STATE_UNMATCHED");
  expect(none.matches.explanation.neededGpus).toBe(8);
  const why = await deai("market", "status", none.order.orderId);
  expect(why.stdout).toContain("no match: 0 eligible free GPUs of 8 needed");
  // Unmatched orders are matched again by the tick as offers change: cancel this one, or it takes
  // the nodes the cancel below gives back.
  expect((await json("market", "cancel", none.order.orderId, "--key", tenant.file, "--reason", "explained")).order.state).toBe(
    "ORDER_STATE_CANCELLED",
  );

  // Only the tenant cancels; cancel closes both leases and gives the nodes back.
  const stranger = await key("stranger");
  const denied = await deai("market", "cancel", orderId, "--key", stranger.file, "--reason", "not mine");
  expect(denied.code).toBe(1);
  expect(denied.stderr).toContain("permission_denied");
  const cancelled = await json("market", "cancel", orderId, "--key", tenant.file, "--reason", "done");
  expect(cancelled.order.state).toBe("ORDER_STATE_CANCELLED");
  expect(cancelled.closedLeases).toHaveLength(2);
  for (const l of cancelled.closedLeases) expect(l).toMatchObject({ state: "LEASE_STATE_ENDED", closeReason: "order cancelled: done" });
  const offers = await fetch(`http://127.0.0.1:${svc.port}/v1/marketplace/offers`).then((r) => r.json() as Promise<Json>);
  expect(offers.offers.map((o: Json) => o.gpu.nodesAvailable)).toEqual([1, 1]);
}, 60_000);

it("usage errors exit 2 and name the problem; server refusals exit 1 with the code", async () => {
  const k = await key("u");
  const bad = await deai(
    "market",
    "order",
    "--key",
    k.file,
    "--gpu",
    "nvidia-h100-94g",
    "--gpus-per-group",
    "8",
    "--max-price",
    "1",
    "--hours",
    "1",
  );
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain("is not a catalog class");
  expect(
    (
      await deai(
        "market",
        "order",
        "--key",
        k.file,
        "--gpu",
        "nvidia-h100-80g-sxm5",
        "--gpus-per-group",
        "8",
        "--max-price",
        "-1",
        "--hours",
        "1",
      )
    ).code,
  ).toBe(2);
  expect((await deai("market", "offer", "--key", k.file, "--bogus")).code).toBe(2);
  expect((await deai("market", "frobnicate")).code).toBe(2);
  const unregistered = await deai(
    "market",
    "offer",
    "--key",
    k.file,
    "--gpu",
    "nvidia-h100-80g-sxm5",
    "--gpus-per-node",
    "8",
    "--nodes",
    "1",
    "--region",
    "eu-west",
    "--price",
    "5",
  );
  expect(unregistered.code).toBe(1);
  expect(unregistered.stderr).toContain("failed_precondition");
  const missing = await deai("market", "status", "ord-none");
  expect(missing.code).toBe(1);
  expect(missing.stderr).toContain("not_found");
});
