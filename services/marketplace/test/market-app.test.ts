// The marketplace use cases against real Postgres, time from a ManualClock: offers need stake,
// orders are idempotent, gangs match all or nothing across providers with an explanation
// otherwise, reservations lapse, escrow funds leases per epoch, settlement refuses replays,
// gaps and conflicts, overdraw pauses and top-up resumes, close releases at once, and the
// books always sum to zero.
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { sql } from "kysely";

import { LeaseState, NoMatchCode, OfferState, OrderState, ProviderKind } from "@deai/contracts/deai/marketplace/v1/marketplace_pb";
import { auditBooks } from "@deai/kit";
import { createTestDatabase, type TestDatabase } from "@deai/testkit";

import { closeWorlds, gpuProvider, H100, money, newActor, newWorld, report, spec, type World } from "./fixtures.js";

let tdb: TestDatabase;
beforeAll(async () => {
  tdb = await createTestDatabase("marketplace-app");
});
afterAll(async () => {
  await closeWorlds();
  await tdb.drop();
});

const kindOf = async (p: Promise<unknown>): Promise<string | undefined> =>
  p.then(
    () => undefined,
    (e: unknown) => (e as { kind?: string }).kind ?? String(e),
  );

async function freeNodes(w: World): Promise<Record<string, number>> {
  const r = await sql<{ offer_id: string; nodes_free: number }>`select offer_id, nodes_free from gpu_offers`.execute(w.database.db);
  return Object.fromEntries(r.rows.map((x) => [x.offer_id, x.nodes_free]));
}

describe("providers and offers", () => {
  it("offering needs registration, the GPU kind, an active standing and the minimum stake; unknown classes are refused", async () => {
    const w = await newWorld(tdb.url);
    const p = newActor();
    const req = {
      $typeName: "deai.marketplace.v1.CreateGpuOfferRequest" as const,
      gpuClass: { $typeName: "deai.marketplace.v1.GpuClass" as const, ...H100, interconnect: "" },
      gpusPerNode: 8,
      nodes: 2,
      region: "eu-west",
      bandwidthMbps: 1000,
      pricePerGpuHour: money(2_000_000n),
    };
    expect(await kindOf(w.market.providers.createGpuOffer(p.id, req))).toBe("failed_precondition");
    await w.market.providers.register(p.id, {
      $typeName: "deai.marketplace.v1.RegisterProviderRequest",
      displayName: "p",
      kinds: [ProviderKind.STORAGE],
      region: "eu-west",
      contact: "",
    });
    expect(await kindOf(w.market.providers.createGpuOffer(p.id, req))).toBe("failed_precondition");
    await w.market.providers.register(p.id, {
      $typeName: "deai.marketplace.v1.RegisterProviderRequest",
      displayName: "p",
      kinds: [ProviderKind.GPU],
      region: "eu-west",
      contact: "",
    });
    w.standing.map.set(p.id, { status: "active", bonded: w.params.minStake - 1n, jailedUntil: null });
    expect(await kindOf(w.market.providers.createGpuOffer(p.id, req))).toBe("failed_precondition");
    w.standing.map.set(p.id, { status: "jailed", bonded: w.params.minStake, jailedUntil: null });
    expect(await kindOf(w.market.providers.createGpuOffer(p.id, req))).toBe("failed_precondition");
    w.standing.map.delete(p.id);
    for (const bad of [
      { ...req, gpuClass: { ...req.gpuClass, vramGib: 94 } },
      { ...req, gpuClass: { ...req.gpuClass, interconnect: "pcie5" } },
      { ...req, pricePerGpuHour: money(-1n) },
      { ...req, pricePerGpuHour: { ...money(1n), currency: "USD" } },
      { ...req, nodes: 0 },
      { ...req, region: "EU West" },
    ]) {
      expect(await kindOf(w.market.providers.createGpuOffer(p.id, bad))).toBe("invalid_argument");
    }
    expect(await sql<{ n: number }>`select count(*)::int as n from gpu_offers`.execute(w.database.db).then((r) => r.rows[0]!.n)).toBe(0);
    const offer = await w.market.providers.createGpuOffer(p.id, req);
    expect(offer.kind.case).toBe("gpu");
    const id = offer.kind.value!.offerId;
    expect((await w.market.providers.setOfferState(p.id, id, OfferState.PAUSED)).kind.value!.state).toBe(OfferState.PAUSED);
    expect(await kindOf(w.market.providers.setOfferState(newActor().id, id, OfferState.ACTIVE))).toBe("permission_denied");
    expect((await w.market.providers.setOfferState(p.id, id, OfferState.WITHDRAWN)).kind.value!.state).toBe(OfferState.WITHDRAWN);
    expect(await kindOf(w.market.providers.setOfferState(p.id, id, OfferState.ACTIVE))).toBe("failed_precondition");
  });
});

describe("orders and matching", () => {
  it("creation is idempotent per tenant and key; the same key with another spec is refused", async () => {
    const w = await newWorld(tdb.url);
    await gpuProvider(w, { nodes: 4 });
    const t = newActor();
    const a = await w.market.orders.create(t.id, spec(), "k1");
    const b = await w.market.orders.create(t.id, spec(), "k1");
    expect(b.orderId).toBe(a.orderId);
    expect(await kindOf(w.market.orders.create(t.id, spec({ groups: 1 }), "k1"))).toBe("already_exists");
    expect((await w.market.orders.create(newActor().id, spec(), "k1")).orderId).not.toBe(a.orderId);
    expect(await kindOf(w.market.orders.create(t.id, spec(), ""))).toBe("invalid_argument");
    expect(await kindOf(w.market.orders.create(t.id, spec({ maxPrice: 0n }), "k2"))).toBe("invalid_argument");
  });

  it("matches a two-group gang across two providers, each group at its offer's ask, and holds the nodes", async () => {
    const w = await newWorld(tdb.url);
    const cheap = await gpuProvider(w, { nodes: 1, price: 1_000_000n });
    const dear = await gpuProvider(w, { nodes: 1, price: 2_500_000n, region: "us-east" });
    const order = await w.market.orders.create(newActor().id, spec({ groups: 2 }), "k");
    expect(order.state).toBe(OrderState.RESERVED);
    const m = await w.market.orders.listMatches(order.orderId);
    expect(m.matches.map((x) => [x.group, x.providerId, x.pricePerGpuHour?.micros])).toEqual([
      [0, cheap.actor.id, 1_000_000n],
      [1, dear.actor.id, 2_500_000n],
    ]);
    expect(await freeNodes(w)).toEqual({ [cheap.offerId]: 0, [dear.offerId]: 0 });
  });

  it("explains a gang that cannot match, with the shortfall per dimension and where free GPUs are, and matches it when capacity appears", async () => {
    const w = await newWorld(tdb.url);
    const p = await gpuProvider(w, { nodes: 1, price: 1_000_000n });
    await gpuProvider(w, { nodes: 4, price: 9_000_000n });
    const order = await w.market.orders.create(newActor().id, spec({ groups: 3 }), "k");
    expect(order.state).toBe(OrderState.UNMATCHED);
    const m = await w.market.orders.listMatches(order.orderId);
    expect(m.matches).toHaveLength(0);
    const byCode = Object.fromEntries(m.explanation!.dimensions.map((d) => [d.code, d.offersExcluded]));
    expect(byCode).toMatchObject({ 2: 1, 10: 1 }); // PRICE_ABOVE_MAX, GANG_INCOMPLETE
    expect(m.explanation!.groupsPlaceable).toBe(1);
    expect(m.explanation!.neededGpus).toBe(24);
    expect(m.explanation!.freeCapacity.map((f) => f.providerId)).toContain(p.actor.id);
    expect(m.reasons.length).toBeGreaterThan(0);
    expect(await freeNodes(w)).toEqual({
      [p.offerId]: 1,
      [(await sql<{ offer_id: string }>`select offer_id from gpu_offers where nodes = 4`.execute(w.database.db)).rows[0]!.offer_id]: 4,
    });
    await gpuProvider(w, { nodes: 2, price: 2_000_000n });
    await w.market.tick();
    expect((await w.market.orders.get(order.orderId)).state).toBe(OrderState.RESERVED);
  });

  it("a reservation lapses after its TTL and its nodes return at once", async () => {
    const w = await newWorld(tdb.url);
    const p = await gpuProvider(w, { nodes: 2 });
    const order = await w.market.orders.create(newActor().id, spec({ groups: 2, ttlMs: 60_000 }), "k");
    expect(order.state).toBe(OrderState.RESERVED);
    expect((await freeNodes(w))[p.offerId]).toBe(0);
    w.clock.advance(59_000);
    expect(await w.market.orders.expireReservations()).toBe(0);
    w.clock.advance(1_000);
    expect(await w.market.orders.expireReservations()).toBe(1);
    expect((await w.market.orders.get(order.orderId)).state).toBe(OrderState.EXPIRED);
    expect((await freeNodes(w))[p.offerId]).toBe(2);
  });
});

describe("leases, escrow and settlement", () => {
  async function funded(w: World, hours = 2) {
    const a = await gpuProvider(w, { nodes: 1, price: 1_000_000n });
    const b = await gpuProvider(w, { nodes: 1, price: 2_000_000n });
    const tenant = newActor();
    const order = await w.market.orders.create(tenant.id, spec({ groups: 2, hours }), "k");
    // Epoch 0 of both groups: 8 × 1.0 + 8 × 2.0 per hour.
    const epochCost = 8n * 1_000_000n + 8n * 2_000_000n;
    const short = await w.market.deposit(order.escrowAccountId, money(epochCost - 1n), "d1", "");
    expect(short.account!.available!.micros).toBe(epochCost - 1n);
    expect((await w.market.orders.get(order.orderId)).state).toBe(OrderState.RESERVED);
    await w.market.deposit(order.escrowAccountId, money(1n), "d2", "");
    const active = await w.market.orders.get(order.orderId);
    expect(active.state).toBe(OrderState.ACTIVE);
    expect(active.leaseIds).toHaveLength(2);
    const leases = await Promise.all(active.leaseIds.map((id) => w.market.leases.get(id)));
    const providerOf = (l: (typeof leases)[number]) => (l.providerId === a.actor.id ? a.actor : b.actor);
    return { a, b, tenant, order, leases, providerOf, epochCost };
  }

  it("a funded reservation becomes one lease per group; an epoch settles from a provider-signed, countersigned report, once", async () => {
    const w = await newWorld(tdb.url);
    const { tenant, order, leases, providerOf, epochCost } = await funded(w);
    const esc = await w.market.escrow.view(order.escrowAccountId);
    expect(esc.held!.micros).toBe(epochCost);
    expect(esc.available!.micros).toBe(0n);
    const l = leases.find((x) => x.pricePerGpuHour!.micros === 1_000_000n)!;
    const ctx = { leaseId: l.leaseId, startsAt: new Date(Number(l.startsAt!.seconds) * 1000), epochMs: 3_600_000 };
    const r0 = report(ctx, 0, 8 * 1800, providerOf(l), tenant);
    expect(await kindOf(w.market.leases.settle(l.leaseId, r0))).toBe("failed_precondition"); // epoch not over
    w.clock.advance(3_600_000);
    const s = await w.market.leases.settle(l.leaseId, r0);
    expect(s).toMatchObject({ epoch: 0n, gpuSeconds: 14_400n, duplicate: false });
    expect(s.amount!.micros).toBe(4_000_000n); // half the hold: 8 GPUs × 0.5 h × 1.0
    const again = await w.market.leases.settle(l.leaseId, r0);
    expect(again.duplicate).toBe(true);
    expect(again.amount!.micros).toBe(4_000_000n);
    const conflicting = report(ctx, 0, 8 * 3600, providerOf(l), tenant);
    expect(await kindOf(w.market.leases.settle(l.leaseId, conflicting))).toBe("failed_precondition");
    expect((await sql<{ n: number }>`select count(*)::int as n from usage_conflicts`.execute(w.database.db)).rows[0]!.n).toBe(1);
    // Out of order, over-claimed, wrong signer, not countersigned: refused, nothing written.
    const before = await auditBooks(w.database.db);
    expect(await kindOf(w.market.leases.settle(l.leaseId, report(ctx, 1, 0, providerOf(l), tenant)))).toBe("failed_precondition"); // epoch 1 is not over
    expect(await kindOf(w.market.leases.settle(l.leaseId, report(ctx, 0, 8 * 3600 + 1, providerOf(l), tenant)))).toBe(
      "failed_precondition",
    ); // a second conflict
    w.clock.advance(3_600_000);
    expect(await kindOf(w.market.leases.settle(l.leaseId, report(ctx, 1, 8 * 3600 + 1, providerOf(l), tenant)))).toBe("invalid_argument"); // more than 8 GPUs × 1 h
    const stranger = newActor();
    expect(await kindOf(w.market.leases.settle(l.leaseId, report(ctx, 1, 0, stranger, tenant)))).toBe("permission_denied");
    expect(await kindOf(w.market.leases.settle(l.leaseId, report(ctx, 1, 0, providerOf(l), stranger)))).toBe("permission_denied");
    const tampered = { ...r0, payload: new TextEncoder().encode(new TextDecoder().decode(r0.payload).replace("14400", "14401")) };
    expect(await kindOf(w.market.leases.settle(l.leaseId, tampered))).toBe("invalid_argument");
    const after = await auditBooks(w.database.db);
    expect(after.transfers).toBe(before.transfers);
    expect(after.problems).toEqual([]);
    expect(after.debitsPosted).toBe(after.creditsPosted);
  });

  it("skipping an epoch is refused; the next epoch is held half an epoch ahead; overdraw pauses after the grace period and a top-up resumes", async () => {
    const w = await newWorld(tdb.url, { graceMs: 10 * 60_000 });
    const { tenant, order, leases, providerOf } = await funded(w, 3);
    const l = leases[0]!;
    const ctx = { leaseId: l.leaseId, startsAt: new Date(Number(l.startsAt!.seconds) * 1000), epochMs: 3_600_000 };
    w.clock.advance(2 * 3_600_000);
    expect(await kindOf(w.market.leases.settle(l.leaseId, report(ctx, 1, 0, providerOf(l), tenant)))).toBe("failed_precondition");
    // No money for epoch 1: overdrawn at the first tick, paused (the unfunded epoch has begun).
    await w.market.leases.tick();
    expect((await w.market.leases.get(l.leaseId)).state).toBe(LeaseState.PAUSED);
    await w.market.deposit(order.escrowAccountId, money(100_000_000n), "top-up", "");
    expect((await w.market.leases.get(l.leaseId)).state).toBe(LeaseState.ACTIVE);
    expect((await auditBooks(w.database.db)).problems).toEqual([]);
  });

  it("closing a lease releases its nodes at once with its reason, and the last close completes the order", async () => {
    const w = await newWorld(tdb.url);
    const { tenant, order, leases } = await funded(w);
    const stranger = newActor();
    expect(await kindOf(w.market.leases.close(stranger.id, leases[0]!.leaseId, "no"))).toBe("permission_denied");
    const closed = await w.market.leases.close(tenant.id, leases[0]!.leaseId, "job finished early");
    expect(closed).toMatchObject({ state: LeaseState.ENDED, closeReason: "job finished early" });
    expect((await freeNodes(w))[leases[0]!.offerId]).toBe(1);
    expect(await kindOf(w.market.leases.close(tenant.id, leases[0]!.leaseId, "again"))).toBe("failed_precondition");
    await w.market.leases.close(tenant.id, leases[1]!.leaseId, "done");
    expect((await w.market.orders.get(order.orderId)).state).toBe(OrderState.COMPLETED);
    const anchors = await sql<{ kind: string }>`select kind from anchors order by kind`.execute(w.database.db);
    expect(anchors.rows.map((r) => r.kind)).toEqual(["lease.closed", "lease.closed", "lease.created", "lease.created"]);
    expect((await auditBooks(w.database.db)).problems).toEqual([]);
  });

  it("a provider jailed in slashing gets no new matches and its running leases close as breached, releasing their nodes", async () => {
    const w = await newWorld(tdb.url, { standingMaxAgeMs: 1000 });
    const { a, leases } = await funded(w);
    w.standing.map.set(a.actor.id, { status: "jailed", bonded: 10_000_000n, jailedUntil: null });
    w.clock.advance(2000);
    expect(await w.market.refreshStanding()).toBe(1);
    const jailedLease = leases.find((l) => l.providerId === a.actor.id)!;
    expect(await w.market.leases.get(jailedLease.leaseId)).toMatchObject({
      state: LeaseState.BREACHED,
      closeReason: "provider jailed in slashing (poll); group re-matched elsewhere",
    });
    expect((await freeNodes(w))[a.offerId]).toBe(1);
    const next = await w.market.orders.create(newActor().id, spec({ groups: 1 }), "after-jail");
    expect(next.state).toBe(OrderState.UNMATCHED);
    const why = await w.market.orders.listMatches(next.orderId);
    expect(why.explanation!.dimensions.find((d) => d.code === NoMatchCode.PROVIDER_INELIGIBLE)?.offersExcluded).toBe(1);
    expect((await auditBooks(w.database.db)).problems).toEqual([]);
  });

  it("withdraw moves only available funds of one's own account; deposits are idempotent by key", async () => {
    const w = await newWorld(tdb.url);
    await gpuProvider(w, { nodes: 1 });
    const tenant = newActor();
    const order = await w.market.orders.create(tenant.id, spec({ groups: 2 }), "k");
    await w.market.deposit(order.escrowAccountId, money(500n), "d", "");
    await w.market.deposit(order.escrowAccountId, money(500n), "d", "");
    expect((await w.market.escrow.view(order.escrowAccountId)).available!.micros).toBe(500n);
    expect(await kindOf(w.market.withdraw(newActor().id, order.escrowAccountId, money(1n), "w", "x"))).toBe("permission_denied");
    expect(await kindOf(w.market.withdraw(tenant.id, order.escrowAccountId, money(501n), "w", "x"))).toBe("failed_precondition");
    expect((await w.market.withdraw(tenant.id, order.escrowAccountId, money(200n), "w", "x")).account!.available!.micros).toBe(300n);
    expect(await kindOf(w.market.deposit(order.escrowAccountId, money(0n), "z", ""))).toBe("invalid_argument");
    void durationFromMs;
  });
});
