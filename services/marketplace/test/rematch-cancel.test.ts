// Real Postgres, time from a ManualClock: a provider jailed in slashing loses its running lease
// and its group is matched again on another provider (explained while nothing fits, waiting for
// escrow while it is short), the lease records linking the two; CancelOrder releases leases,
// reservations and future holds at once; a conflicting usage report goes to slashing as
// equivocation evidence exactly once through retries and a lost answer.
import { sql } from "kysely";

import { LeaseState, NoMatchCode, OrderState, RematchState } from "@deai/contracts/deai/marketplace/v1/marketplace_pb";
import { auditBooks, generateActorKey } from "@deai/kit";
import { verifyEvidence } from "@deai/proofs";
import { createTestDatabase, type TestDatabase } from "@deai/testkit";

import { SlashingEvidence, submitDueEvidence } from "../src/app/equivocation.js";
import { startFakeSlashing, type FakeSlashing } from "./fake-slashing.js";
import { closeWorlds, gpuProvider, money, newActor, newWorld, report, spec, type World } from "./fixtures.js";

let tdb: TestDatabase;
let slashing: FakeSlashing;
beforeAll(async () => {
  tdb = await createTestDatabase("marketplace-rematch");
  slashing = await startFakeSlashing();
});
afterAll(async () => {
  await closeWorlds();
  await slashing.close();
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

const M = 1_000_000n;

/** Two one-node providers at 1.0 and 2.0 per GPU-hour; a funded two-group order of 2 h on them. */
async function funded(w: World) {
  const a = await gpuProvider(w, { nodes: 1, price: 1n * M });
  const b = await gpuProvider(w, { nodes: 1, price: 2n * M });
  const tenant = newActor();
  const order = await w.market.orders.create(tenant.id, spec({ groups: 2, hours: 2 }), "k");
  await w.market.deposit(order.escrowAccountId, money(8n * M + 16n * M), "d1", "");
  const active = await w.market.orders.get(order.orderId);
  expect(active.state).toBe(OrderState.ACTIVE);
  const leases = await Promise.all(active.leaseIds.map((id) => w.market.leases.get(id)));
  return { a, b, tenant, order, leases };
}

describe("a jailed provider's groups are matched again elsewhere", () => {
  it("closes the lease as breached, explains while nothing fits, waits for escrow, then replaces the group until the planned end", async () => {
    const w = await newWorld(tdb.url, { standingMaxAgeMs: 1000 });
    const { a, b, order, leases } = await funded(w);
    const lost = leases.find((l) => l.providerId === a.actor.id)!;
    const kept = leases.find((l) => l.providerId === b.actor.id)!;
    w.standing.map.set(a.actor.id, { status: "jailed", bonded: 10_000_000n, jailedUntil: null });
    w.clock.advance(2000);
    expect(await w.market.refreshStanding()).toBe(1);
    let old = await w.market.leases.get(lost.leaseId);
    expect(old).toMatchObject({ state: LeaseState.BREACHED, rematchState: RematchState.PENDING, replacedByLeaseId: "" });
    expect(old.closeReason).toContain("provider jailed in slashing");
    expect((await w.market.orders.get(order.orderId)).state).toBe(OrderState.ACTIVE);

    // Nothing else free: unmatched, with why (the jailed provider's offer is ineligible, b is full).
    expect(await w.market.rematch.run()).toBe(0);
    old = await w.market.leases.get(lost.leaseId);
    expect(old.rematchState).toBe(RematchState.UNMATCHED);
    const dims = Object.fromEntries(old.rematchExplanation!.dimensions.map((d) => [d.code, d.offersExcluded]));
    expect(dims[NoMatchCode.PROVIDER_INELIGIBLE]).toBe(1);
    expect(old.rematchExplanation!.neededGpus).toBe(8);

    // New capacity, but the escrow holds only the first epoch of the first two leases.
    const c = await gpuProvider(w, { nodes: 1, price: 3n * M });
    expect(await w.market.rematch.run()).toBe(0);
    expect((await w.market.leases.get(lost.leaseId)).rematchState).toBe(RematchState.UNFUNDED);
    expect((await freeNodes(w))[c.offerId]).toBe(1); // nothing held by the unfunded attempt

    // A deposit re-matches at once: the replacement runs on c from now until the lost lease's planned end.
    await w.market.deposit(order.escrowAccountId, money(24n * M), "d2", "");
    old = await w.market.leases.get(lost.leaseId);
    expect(old.rematchState).toBe(RematchState.REMATCHED);
    const replacement = await w.market.leases.get(old.replacedByLeaseId);
    expect(replacement).toMatchObject({
      providerId: c.actor.id,
      group: lost.group,
      replacesLeaseId: lost.leaseId,
      state: LeaseState.ACTIVE,
      rematchState: RematchState.UNSPECIFIED,
    });
    expect(replacement.endsAt).toEqual(lost.endsAt);
    expect(replacement.startsAt!.seconds).toBe(BigInt(Math.floor(w.clock.nowMs() / 1000)));
    expect((await w.market.leases.get(kept.leaseId)).state).toBe(LeaseState.ACTIVE);
    const after = await w.market.orders.get(order.orderId);
    expect(after.state).toBe(OrderState.ACTIVE);
    expect(after.leaseIds).toHaveLength(3);
    expect(await freeNodes(w)).toEqual({ [a.offerId]: 1, [b.offerId]: 0, [c.offerId]: 0 });
    // Holds: epoch 0 of a (it ran 2 s of it, reported later), of b and of the replacement.
    const esc = await w.market.escrow.view(order.escrowAccountId);
    expect(esc.held!.micros).toBe(8n * M + 16n * M + 24n * M);
    expect(esc.available!.micros).toBe(0n);
    // Running again changes nothing.
    expect(await w.market.rematch.run()).toBe(0);
    expect((await w.market.orders.get(order.orderId)).leaseIds).toHaveLength(3);
    expect((await auditBooks(w.database.db)).problems).toEqual([]);
  });

  it("a group whose planned end has passed is abandoned and the order completes when nothing else runs", async () => {
    const w = await newWorld(tdb.url, { standingMaxAgeMs: 1000 });
    const a = await gpuProvider(w, { nodes: 1, price: 1n * M });
    const tenant = newActor();
    const order = await w.market.orders.create(tenant.id, spec({ groups: 1, hours: 1 }), "k");
    await w.market.deposit(order.escrowAccountId, money(8n * M), "d", "");
    const [leaseId] = (await w.market.orders.get(order.orderId)).leaseIds;
    w.standing.map.set(a.actor.id, { status: "tombstoned", bonded: 0n, jailedUntil: null });
    w.clock.advance(2000);
    await w.market.refreshStanding();
    expect((await w.market.orders.get(order.orderId)).state).toBe(OrderState.ACTIVE); // its one group waits for a re-match
    w.clock.advance(3_600_000);
    expect(await w.market.rematch.run()).toBe(0);
    expect((await w.market.leases.get(leaseId!)).rematchState).toBe(RematchState.ABANDONED);
    expect((await w.market.orders.get(order.orderId)).state).toBe(OrderState.COMPLETED);
  });
});

describe("CancelOrder", () => {
  it("closes every lease, releases nodes and voids holds of epochs not begun at once; repeatable; tenant only", async () => {
    const w = await newWorld(tdb.url);
    const { a, b, tenant, order } = await funded(w);
    await w.market.deposit(order.escrowAccountId, money(100n * M), "d2", "");
    w.clock.advance(40 * 60_000);
    await w.market.leases.tick(); // epoch 1 held half an epoch ahead: 8 + 16 more
    const before = await w.market.escrow.view(order.escrowAccountId);
    expect(before.held!.micros).toBe(2n * (8n * M + 16n * M));
    expect(await kindOf(w.market.cancelOrder(newActor().id, order.orderId, "not mine"))).toBe("permission_denied");
    expect(await kindOf(w.market.cancelOrder(tenant.id, order.orderId, ""))).toBe("invalid_argument");
    const r = await w.market.cancelOrder(tenant.id, order.orderId, "job done early");
    expect(r.order!.state).toBe(OrderState.CANCELLED);
    expect(r.closedLeases).toHaveLength(2);
    for (const l of r.closedLeases) expect(l).toMatchObject({ state: LeaseState.ENDED, closeReason: "order cancelled: job done early" });
    expect(await freeNodes(w)).toEqual({ [a.offerId]: 1, [b.offerId]: 1 });
    // Epoch 1 had not begun: its holds are back; epoch 0 ran and stays held for its reports.
    expect(r.escrow!.held!.micros).toBe(8n * M + 16n * M);
    expect(r.escrow!.available!.micros).toBe(before.available!.micros + 8n * M + 16n * M);
    const again = await w.market.cancelOrder(tenant.id, order.orderId, "again");
    expect(again.order!.state).toBe(OrderState.CANCELLED);
    expect(again.closedLeases).toHaveLength(0);
    // The cancelled order's groups are never matched again, whatever happens to its providers.
    expect(await w.market.rematch.run()).toBe(0);
    expect((await auditBooks(w.database.db)).problems).toEqual([]);
  });

  it("cancels a reservation, giving its nodes back; a completed order cannot be cancelled", async () => {
    const w = await newWorld(tdb.url);
    const p = await gpuProvider(w, { nodes: 2 });
    const tenant = newActor();
    const order = await w.market.orders.create(tenant.id, spec({ groups: 2 }), "k");
    expect(order.state).toBe(OrderState.RESERVED);
    expect((await freeNodes(w))[p.offerId]).toBe(0);
    expect((await w.market.cancelOrder(tenant.id, order.orderId, "changed my mind")).order!.state).toBe(OrderState.CANCELLED);
    expect((await freeNodes(w))[p.offerId]).toBe(2);
    const done = await w.market.orders.create(tenant.id, spec({ groups: 1, hours: 1 }), "k2");
    await w.market.deposit(done.escrowAccountId, money(16n * M), "d", "");
    w.clock.advance(3_600_000);
    await w.market.leases.tick();
    expect((await w.market.orders.get(done.orderId)).state).toBe(OrderState.COMPLETED);
    expect(await kindOf(w.market.cancelOrder(tenant.id, done.orderId, "late"))).toBe("failed_precondition");
    expect(await kindOf(w.market.cancelOrder(tenant.id, "ord-none", "x"))).toBe("not_found");
  });
});

describe("equivocation evidence to slashing", () => {
  async function conflict(w: World, extra: Record<string, unknown>) {
    const { a, tenant, leases } = await funded(w);
    const l = leases.find((x) => x.providerId === a.actor.id)!;
    const ctx = { leaseId: l.leaseId, startsAt: new Date(Number(l.startsAt!.seconds) * 1000), epochMs: 3_600_000 };
    w.clock.advance(3_600_000);
    const first = report(ctx, 0, 3600, a.actor, tenant, extra);
    const second = report(ctx, 0, 7200, a.actor, tenant, extra);
    await w.market.leases.settle(l.leaseId, first);
    expect(await kindOf(w.market.leases.settle(l.leaseId, second))).toBe("failed_precondition");
    expect(await kindOf(w.market.leases.settle(l.leaseId, second))).toBe("failed_precondition"); // again: still one queued
    return { first, second, provider: a.actor.id };
  }
  const outbox = async (w: World) =>
    (
      await sql<{
        state: string;
        attempts: number;
        evidence_id: string | null;
        duplicate: boolean | null;
        last_error: string | null;
      }>`select state, attempts, evidence_id, duplicate, last_error from evidence_outbox`.execute(w.database.db)
    ).rows;

  it("is submitted exactly once through slashing being down and an answer lost after it accepted", async () => {
    const sink = new SlashingEvidence(slashing.url, generateActorKey());
    const w = await newWorld(tdb.url, {}, 10, { evidence: sink });
    const { first, second, provider } = await conflict(w, { issuedAt: "2026-03-01T01:00:00Z" });
    expect(await outbox(w)).toMatchObject([{ state: "pending", attempts: 0 }]);
    slashing.plan.push("down", "down", "lost");
    const calls = slashing.calls.n;
    for (let i = 0; i < 4; i++) {
      await submitDueEvidence(w.market.ctx);
      w.clock.advance(60_000); // past the backoff
    }
    expect(slashing.calls.n - calls).toBe(4);
    const { evidenceId } = verifyEvidence(
      { kind: "equivocation", first: { ...first, signatures: first.signatures }, second: { ...second, signatures: second.signatures } },
      { samplers: [], quorumThreshold: 2, operators: [], countersigners: [], checkers: [], minMissedHeartbeats: 1 },
    );
    expect(slashing.evidence.get(evidenceId)).toBe(provider);
    expect(await outbox(w)).toMatchObject([
      { state: "submitted", attempts: 4, evidence_id: evidenceId, duplicate: true, last_error: null },
    ]);
    // Nothing more is sent.
    await submitDueEvidence(w.market.ctx);
    expect(slashing.calls.n - calls).toBe(4);
  });

  it("a pair slashing refuses for good is marked refused with its reason, not retried", async () => {
    const sink = new SlashingEvidence(slashing.url, generateActorKey());
    const w = await newWorld(tdb.url, {}, 10, { evidence: sink });
    await conflict(w, {});
    slashing.plan.push("refuse");
    await submitDueEvidence(w.market.ctx);
    const [row] = await outbox(w);
    expect(row).toMatchObject({ state: "refused", attempts: 1 });
    expect(row!.last_error).toMatch(/InvalidArgument: .*refused as planned/);
    const calls = slashing.calls.n;
    w.clock.advance(3_600_000);
    await submitDueEvidence(w.market.ctx);
    expect(slashing.calls.n).toBe(calls);
  });
});
