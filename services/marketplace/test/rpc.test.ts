// The marketplace process end to end over gRPC (grpc transport, signed calls): two providers,
// a two-group order matched across both, escrow funded, leases settled from signed reports;
// bad input refused with precise codes and nothing written; and kill -9 in the middle of
// concurrent settlement of the same report applies it exactly once.
import { setTimeout as sleep } from "node:timers/promises";

import { Code, ConnectError } from "@connectrpc/connect";
import { sql } from "kysely";

import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ProviderJailedSchema } from "@deai/contracts/deai/events/v1/slashing_pb";
import {
  MarketplaceService,
  OrderState,
  ProviderKind,
  LeaseState,
  NoMatchCode,
  RematchState,
} from "@deai/contracts/deai/marketplace/v1/marketplace_pb";
import { auditBooks, createLogger, EventBus, generateActorKey, openDatabase, serviceClient, type ActorKey } from "@deai/kit";
import { actorKeySeed } from "@deai/kit";
import { base64Decode, ed25519DsseSigner, generateNoteKey } from "@deai/proofs";
import { waitFor } from "@deai/bench";
import { createTestEnv, natsUrl, spawnService, type ServiceProcess, type TestEnv } from "@deai/testkit";

import { startFakeSlashing, type FakeSlashing } from "./fake-slashing.js";
import { H100, money, report, type Actor } from "./fixtures.js";

const mainJs = new URL("../dist/main.js", import.meta.url).pathname;
let env: TestEnv;
let slashing: FakeSlashing;
let svc: ServiceProcess;
let ledger: ServiceProcess;
const logKey = generateNoteKey("ledger.market-test/log");
const ledgerJs = new URL("../../ledger/dist/main.js", import.meta.url).pathname;
const vars = () =>
  env.vars({
    MARKETPLACE_LEDGER_URL: `http://127.0.0.1:${ledger.port}`,
    MARKETPLACE_LEDGER_LOG_KEY: logKey.verifierKey,
    MARKETPLACE_SLASHING_URL: slashing.url,
    MARKETPLACE_EPOCH_MS: "1000",
    MARKETPLACE_TICK_MS: "100",
    MARKETPLACE_STANDING_MAX_AGE_MS: "100",
  });

beforeAll(async () => {
  env = await createTestEnv("marketplace-rpc");
  slashing = await startFakeSlashing();
  ledger = await spawnService(
    ledgerJs,
    env.vars({ LEDGER_ORIGIN: "ledger.market-test/log", LEDGER_SIGNING_KEY: logKey.signerKey, LEDGER_CHECKPOINT_INTERVAL_MS: "100" }),
  );
  svc = await spawnService(mainJs, vars());
}, 60_000);
afterAll(async () => {
  svc?.kill("SIGKILL");
  await svc?.exited;
  ledger?.kill("SIGKILL");
  await ledger?.exited;
  await slashing?.close();
  await env?.close();
});

const client = (key: ActorKey) => serviceClient(MarketplaceService, { baseUrl: `http://127.0.0.1:${svc.port}`, key });
const actorOf = (key: ActorKey): Actor => ({
  id: key.id,
  signer: ed25519DsseSigner(base64Decode(actorKeySeed(key).replace(/-/g, "+").replace(/_/g, "/") + "=")!),
});
const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => Code[0] ?? "OK",
    (e: unknown) => Code[ConnectError.from(e).code],
  );

async function rowCounts(): Promise<Record<string, number>> {
  const db = openDatabase<unknown>({ url: env.database.url, schema: "marketplace", poolSize: 1 });
  try {
    const r = await sql<{ t: string; n: number }>`
      select 'offers' as t, count(*)::int as n from gpu_offers union all select 'orders', count(*)::int from orders
      union all select 'transfers', count(*)::int from money_transfers union all select 'reports', count(*)::int from usage_reports`.execute(
      db.db,
    );
    return Object.fromEntries(r.rows.map((x) => [x.t, x.n]));
  } finally {
    await db.close();
  }
}

it("matches a two-group order across two providers over gRPC, funds it and settles an epoch; bad input is refused and writes nothing; kill -9 during settlement applies once", async () => {
  const providers = [generateActorKey(), generateActorKey()];
  const tenantKey = generateActorKey();
  const tenant = client(tenantKey);
  for (const [i, key] of providers.entries()) {
    const c = client(key);
    await c.registerProvider({ displayName: `p${i}`, kinds: [ProviderKind.GPU], region: i ? "us-east" : "eu-west" });
    await c.createGpuOffer({
      gpuClass: H100,
      gpusPerNode: 8,
      nodes: 1,
      region: i ? "us-east" : "eu-west",
      bandwidthMbps: 1000,
      pricePerGpuHour: money(BigInt(i + 1) * 1_000_000n),
    });
  }
  const before = await rowCounts();
  const p0 = client(providers[0]!);
  expect(
    await codeOf(
      p0.createGpuOffer({ gpuClass: { ...H100, vramGib: 94 }, gpusPerNode: 8, nodes: 1, region: "eu-west", pricePerGpuHour: money(1n) }),
    ),
  ).toBe("InvalidArgument");
  expect(
    await codeOf(p0.createGpuOffer({ gpuClass: H100, gpusPerNode: 8, nodes: 1, region: "eu-west", pricePerGpuHour: money(-5n) })),
  ).toBe("InvalidArgument");
  expect(
    await codeOf(
      tenant.createOrder({
        spec: { gpuClass: H100, gpusPerGroup: 8, groups: 2, maxPricePerGpuHour: money(-1n), duration: { seconds: 3n } },
        idempotencyKey: "bad",
      }),
    ),
  ).toBe("InvalidArgument");
  expect(await codeOf(tenant.deposit({ accountId: "escrow:nope", amount: money(9_223_372_036_854_775_807n), idempotencyKey: "x" }))).toBe(
    "NotFound",
  );
  slashing.statuses.set(providers[1]!.id, { status: 2, bonded: 10_000_000n });
  expect(
    await codeOf(
      client(providers[1]!).createGpuOffer({ gpuClass: H100, gpusPerNode: 8, nodes: 1, region: "us-east", pricePerGpuHour: money(1n) }),
    ),
  ).toBe("FailedPrecondition");
  slashing.statuses.delete(providers[1]!.id);
  expect(await rowCounts()).toEqual(before);
  await sleep(600); // the standing mirror catches up with slashing

  // Prices above the maximum: no match, and the answer says so.
  const cheapOnly = await tenant.createOrder({
    spec: { gpuClass: H100, gpusPerGroup: 8, groups: 2, maxPricePerGpuHour: money(1_500_000n), duration: { seconds: 3n } },
    idempotencyKey: "cheap",
  });
  expect(cheapOnly.order!.state).toBe(OrderState.UNMATCHED);
  const why = await tenant.listMatches({ orderId: cheapOnly.order!.orderId });
  expect(why.reasons.map((r) => r.code)).toContain(NoMatchCode.PRICE_ABOVE_MAX);

  const { order } = await tenant.createOrder({
    spec: { gpuClass: H100, gpusPerGroup: 8, groups: 2, maxPricePerGpuHour: money(3_000_000n), duration: { seconds: 3n } },
    idempotencyKey: "o1",
  });
  expect(order!.state).toBe(OrderState.RESERVED);
  const matches = await tenant.listMatches({ orderId: order!.orderId });
  expect(new Set(matches.matches.map((m) => m.providerId))).toEqual(new Set(providers.map((p) => p.id)));
  await tenant.deposit({ accountId: order!.escrowAccountId, amount: money(1_000_000n), idempotencyKey: "d1" });
  const active = await tenant.getOrder({ orderId: order!.orderId });
  expect(active.order!.state).toBe(OrderState.ACTIVE);
  const { leases } = await tenant.listLeases({ orderId: order!.orderId });
  expect(leases).toHaveLength(2);
  const lease = leases.find((l) => l.providerId === providers[0]!.id)!;
  expect(lease.state).toBe(LeaseState.ACTIVE);
  await sleep(1200);
  const ctx = {
    leaseId: lease.leaseId,
    startsAt: new Date(Number(lease.startsAt!.seconds) * 1000 + lease.startsAt!.nanos / 1e6),
    epochMs: 1000,
  };
  const r0 = report(ctx, 0, 8, actorOf(providers[0]!), actorOf(tenantKey));

  // kill -9 while 20 copies of the same report are in flight, then restart and send it again.
  const inflight = Array.from({ length: 20 }, () => p0.submitUsageReport({ leaseId: lease.leaseId, report: r0 }).catch(() => undefined));
  await sleep(5);
  svc.kill("SIGKILL");
  await svc.exited;
  await Promise.all(inflight);
  svc = await spawnService(mainJs, vars());
  const again = await client(providers[0]!).submitUsageReport({ leaseId: lease.leaseId, report: r0 });
  expect(again.epoch).toBe(0n);
  expect(again.amount!.micros).toBe((8n * 1_000_000n) / 3600n);
  const db = openDatabase<unknown>({ url: env.database.url, schema: "marketplace", poolSize: 1 });
  try {
    const settles = await sql<{
      n: number;
    }>`select count(*)::int as n from money_transfers where id = ${`settle:${lease.leaseId}:0`}`.execute(db.db);
    expect(settles.rows[0]!.n).toBe(1);
    const reports = await sql<{ n: number }>`select count(*)::int as n from usage_reports where lease_id = ${lease.leaseId}`.execute(db.db);
    expect(reports.rows[0]!.n).toBe(1);
    const audit = await auditBooks(db.db);
    expect(audit.problems).toEqual([]);
    expect(audit.debitsPosted).toBe(audit.creditsPosted);
  } finally {
    await db.close();
  }
  // A replay after the restart is a duplicate, not a second payment.
  expect((await client(providers[0]!).submitUsageReport({ leaseId: lease.leaseId, report: r0 })).duplicate).toBe(true);
  // The lease statement and the settled report reach the real ledger; GetLease carries the receipt.
  const anchored = await waitFor(
    "the lease's ledger receipt",
    async () => {
      const l = (await client(tenantKey).getLease({ leaseId: lease.leaseId })).lease!;
      return l.receipt ? l : undefined;
    },
    20_000,
    200,
  );
  expect(anchored.receipt!.checkpoint.length).toBeGreaterThan(0);
  const db2 = openDatabase<unknown>({ url: env.database.url, schema: "marketplace", poolSize: 1 });
  try {
    await waitFor(
      "the usage report anchored",
      async () =>
        (await sql<{ state: string }>`select state from anchors where anchor_id = ${`usage:${lease.leaseId}:0`}`.execute(db2.db)).rows[0]
          ?.state === "anchored" || undefined,
      20_000,
      200,
    );
  } finally {
    await db2.close();
  }
}, 90_000);

it("in the running process: a jailed event closes the lease and the tick re-matches its group elsewhere; a conflicting report reaches slashing once; CancelOrder", async () => {
  const A100 = { vendor: "nvidia", model: "a100", vramGib: 80, interface: "sxm4" };
  const [q0, q1] = [generateActorKey(), generateActorKey()];
  for (const [i, key] of [q0, q1].entries()) {
    await client(key).registerProvider({ displayName: `q${i}`, kinds: [ProviderKind.GPU], region: "eu-west" });
    await client(key).createGpuOffer({
      gpuClass: A100,
      gpusPerNode: 8,
      nodes: 1,
      region: "eu-west",
      bandwidthMbps: 1000,
      pricePerGpuHour: money(BigInt(i + 1) * 1_000_000n),
    });
  }
  const tenantKey = generateActorKey();
  const tenant = client(tenantKey);
  const { order } = await tenant.createOrder({
    spec: { gpuClass: A100, gpusPerGroup: 8, groups: 1, maxPricePerGpuHour: money(3_000_000n), duration: { seconds: 120n } },
    idempotencyKey: "rematch",
  });
  await tenant.deposit({ accountId: order!.escrowAccountId, amount: money(10_000_000n), idempotencyKey: "d" });
  const [first] = (await tenant.listLeases({ orderId: order!.orderId })).leases;
  expect(first!.providerId).toBe(q0.id);

  // Two different reports for epoch 0, both signed by q0: the second is refused and goes to slashing once.
  await sleep(1200);
  const ctx = {
    leaseId: first!.leaseId,
    startsAt: new Date(Number(first!.startsAt!.seconds) * 1000 + first!.startsAt!.nanos / 1e6),
    epochMs: 1000,
  };
  const issuedAt = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  const extra = { issuedAt } as never;
  const evidenceBefore = slashing.evidence.size;
  await client(q0).submitUsageReport({ leaseId: first!.leaseId, report: report(ctx, 0, 8, actorOf(q0), actorOf(tenantKey), extra) });
  expect(
    await codeOf(
      client(q0).submitUsageReport({ leaseId: first!.leaseId, report: report(ctx, 0, 7, actorOf(q0), actorOf(tenantKey), extra) }),
    ),
  ).toBe("FailedPrecondition");
  await waitFor("the evidence at slashing", async () => slashing.evidence.size > evidenceBefore || undefined, 20_000, 100);
  await sleep(500);
  expect(slashing.evidence.size).toBe(evidenceBefore + 1);
  expect([...slashing.evidence.values()].at(-1)).toBe(q0.id);

  // Slashing jails q0: its event closes the lease; the tick puts the group on q1.
  const bus = await EventBus.connect({
    url: natsUrl,
    prefix: env.natsPrefix,
    name: "rpc-test",
    logger: createLogger({ service: "test", level: "warn" }),
  });
  try {
    const e = create(ProviderJailedSchema, {
      eventId: `slashing/jailed/${q0.id}/s-rpc`,
      occurredAt: timestampFromDate(new Date()),
      providerId: q0.id,
      jailedUntil: timestampFromDate(new Date(Date.now() + 3_600_000)),
      slashId: "s-rpc",
    });
    await bus.ensureStream("slashing");
    await bus.publish("deai.slashing.provider_jailed", ProviderJailedSchema, e, e.eventId);
  } finally {
    await bus.close();
  }
  const replaced = await waitFor(
    "the group re-matched",
    async () => {
      const l = (await tenant.getLease({ leaseId: first!.leaseId })).lease!;
      return l.replacedByLeaseId ? l : undefined;
    },
    20_000,
    100,
  );
  expect(replaced).toMatchObject({ state: LeaseState.BREACHED, rematchState: RematchState.REMATCHED });
  expect(replaced.closeReason).toContain("provider jailed in slashing (event, slash s-rpc)");
  const next = (await tenant.getLease({ leaseId: replaced.replacedByLeaseId })).lease!;
  expect(next).toMatchObject({ providerId: q1.id, state: LeaseState.ACTIVE, replacesLeaseId: first!.leaseId, group: 0 });
  slashing.statuses.set(q0.id, { status: 2, bonded: 10_000_000n });

  const cancelled = await tenant.cancelOrder({ orderId: order!.orderId, reason: "moving on" });
  expect(cancelled.order!.state).toBe(OrderState.CANCELLED);
  expect(cancelled.closedLeases.map((l) => l.leaseId)).toEqual([next.leaseId]);
  expect(await codeOf(client(generateActorKey()).cancelOrder({ orderId: order!.orderId, reason: "x" }))).toBe("PermissionDenied");
  expect(await codeOf(tenant.cancelOrder({ orderId: order!.orderId, reason: "" }))).toBe("InvalidArgument");
}, 90_000);
