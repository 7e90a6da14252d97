// The consumers on real NATS JetStream and Postgres: slashing's provider status events jail (no
// new matches, running leases closed, their groups re-matched on another provider), release and
// tombstone (final) a provider; the DA sampler's reputation and availability events set the
// reliability matching filters and scores on, newest wins, also for a provider that registers later.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { setTimeout as sleep } from "node:timers/promises";
import { sql } from "kysely";

import {
  ProviderAvailabilityChangedSchema,
  ProviderAvailabilityState,
  ReputationUpdatedSchema,
} from "@deai/contracts/deai/events/v1/da_pb";
import { ProviderJailedSchema, ProviderReleasedSchema, ProviderTombstonedSchema } from "@deai/contracts/deai/events/v1/slashing_pb";
import { ReputationScoreSchema } from "@deai/contracts/deai/da/v1/da_pb";
import {
  LeaseState,
  ListLeasesRequestSchema,
  NoMatchCode,
  OrderConstraintsSchema,
  OrderState,
  ProviderKind,
  RematchState,
} from "@deai/contracts/deai/marketplace/v1/marketplace_pb";
import { createLogger, EventBus } from "@deai/kit";
import { createTestDatabase, deleteNatsStreams, natsUrl, uniqueNatsPrefix, type TestDatabase } from "@deai/testkit";

import { startConsumers } from "../src/events/consumers.js";
import { closeWorlds, gpuProvider, money, newActor, newWorld, spec, type World } from "./fixtures.js";

let tdb: TestDatabase;
let bus: EventBus;
let prefix: string;
let w: World;
beforeAll(async () => {
  tdb = await createTestDatabase("marketplace-events");
  prefix = uniqueNatsPrefix("market");
  bus = await EventBus.connect({
    url: natsUrl,
    prefix,
    name: "market-events-test",
    logger: createLogger({ service: "test", level: "warn" }),
  });
  w = await newWorld(tdb.url);
  await startConsumers({ bus, market: w.market, clock: w.clock, logger: createLogger({ service: "test", level: "warn" }) });
});
afterAll(async () => {
  await bus.close();
  await deleteNatsStreams(prefix);
  await closeWorlds();
  await tdb.drop();
});

async function until<T>(what: string, f: () => Promise<T | undefined | false>, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const providerRow = async (id: string) =>
  (
    await sql<{ status: string; reliability: number; jailed_until: Date | null }>`
      select status, reliability, jailed_until from providers where provider_id = ${id}`.execute(w.database.db)
  ).rows[0];

const at = (ms: number) => timestampFromDate(new Date(ms));

describe("slashing's provider status events", () => {
  it("jail: no new matches, the running lease closes and its group is re-matched on another provider; release: matchable again", async () => {
    const a = await gpuProvider(w, { nodes: 1, price: 1_000_000n });
    const b = await gpuProvider(w, { nodes: 1, price: 2_000_000n });
    const tenant = newActor();
    const order = await w.market.orders.create(tenant.id, spec({ groups: 1, hours: 2 }), "jail");
    await w.market.deposit(order.escrowAccountId, money(8n * 1_000_000n + 8n * 2_000_000n), "d", "");
    const [leaseId] = (await w.market.orders.get(order.orderId)).leaseIds;
    expect((await w.market.leases.get(leaseId!)).providerId).toBe(a.actor.id);

    const jailedUntil = w.clock.nowMs() + 3_600_000;
    const jailed = create(ProviderJailedSchema, {
      eventId: `slashing/jailed/${a.actor.id}/s1`,
      occurredAt: at(w.clock.nowMs()),
      providerId: a.actor.id,
      jailedUntil: at(jailedUntil),
      slashId: "s1",
    });
    await bus.publish("deai.slashing.provider_jailed", ProviderJailedSchema, jailed, jailed.eventId);
    const closed = await until("the lease to close", async () => {
      const l = await w.market.leases.get(leaseId!);
      return l.state === LeaseState.BREACHED && l;
    });
    expect(closed.rematchState).toBe(RematchState.PENDING);
    expect(closed.closeReason).toContain("provider jailed in slashing (event, slash s1)");
    expect(await providerRow(a.actor.id)).toMatchObject({ status: "jailed", jailed_until: new Date(jailedUntil) });

    // A second jail event (another slash) finds nothing more to close.
    const again = create(ProviderJailedSchema, { ...jailed, eventId: `slashing/jailed/${a.actor.id}/s2`, slashId: "s2" });
    await bus.publish("deai.slashing.provider_jailed", ProviderJailedSchema, again, again.eventId);
    await until("the second jail to be consumed", async () => {
      const r = await sql`select 1 from kit_inbox where event_id = ${again.eventId}`.execute(w.database.db);
      return r.rows.length > 0;
    });
    expect((await w.market.leases.list(create(ListLeasesRequestSchema, { orderId: order.orderId }))).leases).toHaveLength(1);

    // The tick's re-match puts the group on b; a gets no new match.
    expect(await w.market.rematch.run()).toBe(1);
    const replaced = await w.market.leases.get(leaseId!);
    expect(replaced.rematchState).toBe(RematchState.REMATCHED);
    expect((await w.market.leases.get(replaced.replacedByLeaseId)).providerId).toBe(b.actor.id);
    const other = await w.market.orders.create(newActor().id, spec({ groups: 1 }), "while-jailed");
    expect(other.state).toBe(OrderState.UNMATCHED);
    const why = await w.market.orders.listMatches(other.orderId);
    expect(why.explanation!.dimensions.find((d) => d.code === NoMatchCode.PROVIDER_INELIGIBLE)?.offersExcluded).toBeGreaterThanOrEqual(1);

    const released = create(ProviderReleasedSchema, {
      eventId: `slashing/released/${a.actor.id}/${jailedUntil}`,
      occurredAt: at(w.clock.nowMs()),
      providerId: a.actor.id,
    });
    await bus.publish("deai.slashing.provider_released", ProviderReleasedSchema, released, released.eventId);
    await until("the release", async () => (await providerRow(a.actor.id))?.status === "active");
    await w.market.rematch.run();
    await w.market.orders.rematch();
    expect((await w.market.orders.get(other.orderId)).state).toBe(OrderState.RESERVED); // a's freed node
  });

  it("tombstone is final: a later release does not make the provider matchable", async () => {
    const p = await gpuProvider(w, { nodes: 1 });
    const t = create(ProviderTombstonedSchema, {
      eventId: `slashing/tombstoned/${p.actor.id}`,
      occurredAt: at(w.clock.nowMs()),
      providerId: p.actor.id,
      slashId: "s9",
    });
    await bus.publish("deai.slashing.provider_tombstoned", ProviderTombstonedSchema, t, t.eventId);
    await until("the tombstone", async () => (await providerRow(p.actor.id))?.status === "tombstoned");
    const r = create(ProviderReleasedSchema, {
      eventId: `slashing/released/${p.actor.id}/1`,
      occurredAt: at(w.clock.nowMs()),
      providerId: p.actor.id,
    });
    await bus.publish("deai.slashing.provider_released", ProviderReleasedSchema, r, r.eventId);
    await until("the release to be consumed", async () => {
      const x = await sql`select 1 from kit_inbox where event_id = ${r.eventId}`.execute(w.database.db);
      return x.rows.length > 0;
    });
    expect((await providerRow(p.actor.id))?.status).toBe("tombstoned");
  });
});

describe("DA reputation and availability events", () => {
  const reputation = (providerId: string, mean: number, ms: number) =>
    create(ReputationUpdatedSchema, {
      eventId: `da/reputation/${providerId}/${ms}`,
      occurredAt: at(ms),
      providerId,
      availability: mean,
      reputation: create(ReputationScoreSchema, { alpha: mean * 10, beta: (1 - mean) * 10, forgettingLambda: 0.999, mean }),
    });
  const availability = (providerId: string, state: ProviderAvailabilityState, seq: number, ms: number) =>
    create(ProviderAvailabilityChangedSchema, {
      eventId: `da/provider_availability/${providerId}/${seq}`,
      occurredAt: at(ms),
      providerId,
      state,
      unavailableSlots: state === ProviderAvailabilityState.UNAVAILABLE ? 1 : 0,
      sequence: BigInt(seq),
    });

  it("sets the reliability matching uses: the Beta mean, halved while a slot is proven unavailable, newest event wins", async () => {
    const p = await gpuProvider(w, { nodes: 1, price: 1_000_000n, region: "ap-south" });
    expect((await providerRow(p.actor.id))?.reliability).toBe(0.5);
    const t0 = w.clock.nowMs();
    await bus.publish(
      "deai.da.reputation_updated",
      ReputationUpdatedSchema,
      reputation(p.actor.id, 0.9, t0),
      `da/reputation/${p.actor.id}/${t0}`,
    );
    await until("reliability 0.9", async () => (await providerRow(p.actor.id))?.reliability === 0.9);
    // An older snapshot arriving late changes nothing.
    await bus.publish(
      "deai.da.reputation_updated",
      ReputationUpdatedSchema,
      reputation(p.actor.id, 0.2, t0 - 1000),
      `da/reputation/${p.actor.id}/${t0 - 1000}`,
    );
    await until("the late snapshot to be consumed", async () => {
      const r = await sql`select 1 from kit_inbox where event_id = ${`da/reputation/${p.actor.id}/${t0 - 1000}`}`.execute(w.database.db);
      return r.rows.length > 0;
    });
    expect((await providerRow(p.actor.id))?.reliability).toBe(0.9);
    const down = availability(p.actor.id, ProviderAvailabilityState.UNAVAILABLE, 1, t0 + 1000);
    await bus.publish("deai.da.provider_availability_changed", ProviderAvailabilityChangedSchema, down, down.eventId);
    await until("reliability 0.45", async () => (await providerRow(p.actor.id))?.reliability === 0.45);
    const strict = spec({ groups: 1 });
    strict.constraints = create(OrderConstraintsSchema, { regions: ["ap-south"], minReliability: 0.8 });
    const o = await w.market.orders.create(newActor().id, strict, "strict");
    expect(o.state).toBe(OrderState.UNMATCHED);
    const why = await w.market.orders.listMatches(o.orderId);
    // Every offer below the floor counts there (the reliability filter comes before the region's).
    expect(why.explanation!.dimensions[0]).toMatchObject({ code: NoMatchCode.RELIABILITY_BELOW_MIN });
    const up = availability(p.actor.id, ProviderAvailabilityState.AVAILABLE, 2, t0 + 2000);
    await bus.publish("deai.da.provider_availability_changed", ProviderAvailabilityChangedSchema, up, up.eventId);
    await until("reliability 0.9 again", async () => (await providerRow(p.actor.id))?.reliability === 0.9);
    await w.market.orders.rematch();
    const m = await w.market.orders.listMatches(o.orderId);
    expect(m.state).toBe(OrderState.RESERVED);
    expect(m.matches[0]).toMatchObject({ providerId: p.actor.id });
    expect(m.matches[0]!.score!.reliability).toBe(0.9);
  });

  it("a reputation published before the provider registers counts from its registration", async () => {
    const actor = newActor();
    const t = w.clock.nowMs();
    const e = reputation(actor.id, 0.75, t);
    await bus.publish("deai.da.reputation_updated", ReputationUpdatedSchema, e, e.eventId);
    await until("the reputation to be stored", async () => {
      const r = await sql`select 1 from provider_reputation where provider_id = ${actor.id}`.execute(w.database.db);
      return r.rows.length > 0;
    });
    await w.market.providers.register(actor.id, {
      $typeName: "deai.marketplace.v1.RegisterProviderRequest",
      displayName: "late",
      kinds: [ProviderKind.STORAGE],
      region: "eu-west",
      contact: "",
    });
    expect((await providerRow(actor.id))?.reliability).toBe(0.75);
  });
});
