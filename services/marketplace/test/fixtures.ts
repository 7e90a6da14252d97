// Test wiring for the marketplace use cases: a fresh schema per world on real Postgres, time
// from a ManualClock, the slashing port faked per provider, keys that sign usage reports.
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { randomBytes } from "node:crypto";

import { MoneySchema } from "@deai/contracts/deai/common/v1/common_pb";
import { OrderSpecSchema, ProviderKind, type OrderSpec } from "@deai/contracts/deai/marketplace/v1/marketplace_pb";
import { loadGpuClassCatalog, ManualClock, migrate, openDatabase, type Database } from "@deai/kit";
import {
  dsseSign,
  ed25519DsseSigner,
  IN_TOTO_PAYLOAD_TYPE,
  usageReportPayload,
  type DsseSigner,
  type UsageReportPredicate,
} from "@deai/proofs";

import { DEFAULT_PARAMS, type MarketParams } from "../src/app/context.js";
import type { EvidenceSink } from "../src/app/equivocation.js";
import { noEvents, type MarketEvents } from "../src/app/events-port.js";
import { Market } from "../src/app/market.js";
import type { ProviderStanding, Standing } from "../src/app/provider-standing.js";
import { migrations } from "../src/store/migrations.js";

export const H100 = { vendor: "nvidia", model: "h100", vramGib: 80, interface: "sxm5" };
export const money = (micros: bigint) => create(MoneySchema, { currency: "DEAI", micros });

/** A fake of the slashing port: standing per provider, default active with enough stake. */
export class FakeStanding implements ProviderStanding {
  readonly map = new Map<string, Standing>();
  async standing(id: string): Promise<Standing> {
    return this.map.get(id) ?? { status: "active", bonded: 10_000_000n, jailedUntil: null };
  }
}

export interface World {
  readonly market: Market;
  readonly database: Database<unknown>;
  readonly standing: FakeStanding;
  readonly clock: ManualClock;
  readonly params: MarketParams;
  /** A second app instance on the same schema (another replica). */
  replica(): Promise<Market>;
}

let schemas = 0;
const opened: Database<unknown>[] = [];

export async function closeWorlds(): Promise<void> {
  for (const d of opened.splice(0)) await d.close();
}

export async function newWorld(
  url: string,
  params: Partial<MarketParams> = {},
  poolSize = 10,
  ports: { evidence?: EvidenceSink; events?: MarketEvents } = {},
): Promise<World> {
  const schema = `market_${process.pid}_${++schemas}`;
  const database = openDatabase<unknown>({ url, schema, poolSize });
  opened.push(database);
  await migrate(database, migrations);
  const clock = new ManualClock(new Date("2026-03-01T00:00:00Z"));
  const standing = new FakeStanding();
  const p: MarketParams = { ...DEFAULT_PARAMS, ...params };
  const catalog = loadGpuClassCatalog();
  const signer = ed25519DsseSigner(new Uint8Array(randomBytes(32)));
  const { events = noEvents, ...rest } = ports;
  const make = (db: Database<unknown>) => new Market({ db: db.db as never, clock, params: p, catalog, standing, events, signer, ...rest });
  const market = make(database);
  await market.init();
  return {
    market,
    database,
    standing,
    clock,
    params: p,
    replica: async () => {
      const d = openDatabase<unknown>({ url, schema, poolSize });
      opened.push(d);
      return make(d);
    },
  };
}

export interface Actor {
  readonly id: string;
  readonly signer: DsseSigner;
}

export function newActor(): Actor {
  const signer = ed25519DsseSigner(new Uint8Array(randomBytes(32)));
  return { id: signer.keyid, signer };
}

/** A registered GPU provider with one H100 offer. */
export async function gpuProvider(
  w: World,
  o: { nodes?: number; price?: bigint; region?: string; gpusPerNode?: number } = {},
): Promise<{ actor: Actor; offerId: string }> {
  const actor = newActor();
  await w.market.providers.register(actor.id, {
    $typeName: "deai.marketplace.v1.RegisterProviderRequest",
    displayName: "gpu provider",
    kinds: [ProviderKind.GPU],
    region: o.region ?? "eu-west",
    contact: "",
  });
  const offer = await w.market.providers.createGpuOffer(actor.id, {
    $typeName: "deai.marketplace.v1.CreateGpuOfferRequest",
    gpuClass: { $typeName: "deai.marketplace.v1.GpuClass", ...H100, interconnect: "" },
    gpusPerNode: o.gpusPerNode ?? 8,
    nodes: o.nodes ?? 2,
    region: o.region ?? "eu-west",
    bandwidthMbps: 1000,
    pricePerGpuHour: money(o.price ?? 2_000_000n),
  });
  return { actor, offerId: offer.kind.value!.offerId };
}

export function spec(
  o: { groups?: number; gpusPerGroup?: number; maxPrice?: bigint; hours?: number; distinct?: boolean; ttlMs?: number } = {},
): OrderSpec {
  return create(OrderSpecSchema, {
    gpuClass: H100,
    gpusPerGroup: o.gpusPerGroup ?? 8,
    groups: o.groups ?? 2,
    maxPricePerGpuHour: money(o.maxPrice ?? 3_000_000n),
    duration: durationFromMs((o.hours ?? 2) * 3_600_000),
    constraints: { distinctProviders: o.distinct ?? false },
    ...(o.ttlMs ? { reservationTtl: durationFromMs(o.ttlMs) } : {}),
  });
}

/** A usage report for `epoch` of a lease, signed by `provider` and countersigned by `operator`. */
export function report(
  lease: { leaseId: string; startsAt: Date; epochMs: number },
  epoch: number,
  gpuSeconds: number,
  provider: Actor,
  operator: Actor,
  extra: Partial<UsageReportPredicate> = {},
) {
  const start = lease.startsAt.getTime() + epoch * lease.epochMs;
  const p: UsageReportPredicate = {
    leaseId: lease.leaseId,
    epoch,
    periodStart: new Date(start).toISOString(),
    periodEnd: new Date(start + lease.epochMs).toISOString(),
    gpuSeconds,
    heartbeatsMissed: 0,
    provider: provider.id,
    operator: operator.id,
    ...extra,
  };
  const e = dsseSign(IN_TOTO_PAYLOAD_TYPE, usageReportPayload(p), [provider.signer, operator.signer]);
  return {
    $typeName: "deai.common.v1.DsseEnvelope" as const,
    payloadType: e.payloadType,
    payload: e.payload,
    signatures: e.signatures.map((s) => ({ $typeName: "deai.common.v1.DsseSignature" as const, keyid: s.keyid, sig: s.sig })),
  };
}
