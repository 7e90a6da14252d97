// Many concurrent gang matches from two app instances (two connection pools, one schema, as two
// replicas would be) over scarce offers: no node allocated twice, no partial gang, every order
// reserved or explained, the capacity ledger consistent. MARKET_CONCURRENCY_ORDERS sets the count.
import { sql } from "kysely";

import { OrderState } from "@deai/contracts/deai/marketplace/v1/marketplace_pb";
import { createTestDatabase, type TestDatabase } from "@deai/testkit";

import { closeWorlds, gpuProvider, newActor, newWorld, spec } from "./fixtures.js";

const ORDERS = Number(process.env.MARKET_CONCURRENCY_ORDERS ?? 300);

let tdb: TestDatabase;
beforeAll(async () => {
  tdb = await createTestDatabase("marketplace-concurrency");
});
afterAll(async () => {
  await closeWorlds();
  await tdb.drop();
});

it(`${ORDERS} concurrent gang orders on two replicas: no GPU twice, no partial gang, each reserved or explained`, async () => {
  const w = await newWorld(tdb.url, {}, 8);
  const replica = await w.replica();
  // 40 offers of 1–4 nodes: 100 nodes for orders that want 2–4 groups of 8 or 16 GPUs each.
  for (let i = 0; i < 40; i++)
    await gpuProvider(w, { nodes: 1 + (i % 4), price: BigInt(1 + (i % 5)) * 500_000n, region: i % 2 ? "eu-west" : "us-east" });
  const total = (await sql<{ n: number }>`select sum(nodes)::int as n from gpu_offers`.execute(w.database.db)).rows[0]!.n;
  const results = await Promise.all(
    Array.from({ length: ORDERS }, async (_, i) => {
      const m = i % 2 === 0 ? w.market : replica;
      const groups = 2 + (i % 3);
      const o = await m.orders.create(newActor().id, spec({ groups, gpusPerGroup: i % 5 === 0 ? 16 : 8, distinct: i % 7 === 0 }), `k${i}`);
      return { o, groups };
    }),
  );
  const reserved = results.filter((r) => r.o.state === OrderState.RESERVED);
  const unmatched = results.filter((r) => r.o.state === OrderState.UNMATCHED);
  expect(reserved.length + unmatched.length).toBe(ORDERS);
  expect(reserved.length).toBeGreaterThan(10);
  expect(unmatched.length).toBeGreaterThan(0);
  // No partial gang: a reserved order has exactly one live allocation per group.
  const perOrder = await sql<{ order_id: string; n: number; groups: number }>`
    select a.order_id, count(*)::int as n, count(distinct a.group_index)::int as groups from allocations a where a.state <> 'released' group by a.order_id`.execute(
    w.database.db,
  );
  const want = new Map(reserved.map((r) => [r.o.orderId, r.groups]));
  expect(perOrder.rows.length).toBe(reserved.length);
  for (const r of perOrder.rows) {
    expect(r.n).toBe(want.get(r.order_id));
    expect(r.groups).toBe(r.n);
  }
  // No node twice: every offer's free nodes = nodes − live allocations, never below zero.
  const ledger = await sql<{ offer_id: string; nodes: number; nodes_free: number; held: number }>`
    select o.offer_id, o.nodes, o.nodes_free, coalesce(sum(a.nodes) filter (where a.state <> 'released'), 0)::int as held
    from gpu_offers o left join allocations a on a.offer_id = o.offer_id group by o.offer_id`.execute(w.database.db);
  let held = 0;
  for (const r of ledger.rows) {
    expect(r.held).toBeLessThanOrEqual(r.nodes);
    expect(r.nodes_free).toBe(r.nodes - r.held);
    held += r.held;
  }
  expect(held).toBeLessThanOrEqual(total);
  // Every unmatched order says why.
  for (const u of unmatched.slice(0, 20)) expect((await w.market.orders.listMatches(u.o.orderId)).reasons.length).toBeGreaterThan(0);
}, 120_000);
