// Rows of the marketplace schema and their one conversion each to the contract's messages.
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";

import { MoneySchema, type Money } from "@deai/contracts/deai/common/v1/common_pb";
import {
  DimensionShortfallSchema,
  FreeCapacitySchema,
  GpuClassSchema,
  GpuOfferSchema,
  LeaseSchema,
  LeaseState,
  MatchExplanationSchema,
  NoMatchCode,
  OfferState,
  OrderSchema,
  OrderState,
  ProviderKind,
  ProviderSchema,
  RematchState,
  StorageOfferSchema,
  type GpuClass,
  type GpuOffer,
  type Lease,
  type MatchExplanation,
  type Order,
  type OrderSpec,
  type Provider,
  type StorageOffer,
} from "@deai/contracts/deai/marketplace/v1/marketplace_pb";
import type { GpuClassCatalog } from "@deai/kit";

import type { Explanation } from "../domain/matching.js";
import type { NoMatchCodeName } from "../domain/no-match.js";

import type { LeaseStateName, OfferStateName, OrderStateName } from "../domain/states.js";

export interface ProviderRow {
  provider_id: string;
  display_name: string;
  kinds: string[];
  region: string;
  contact: string;
  status: "active" | "jailed" | "tombstoned";
  stake: string;
  reliability: number;
  status_checked_at: Date | null;
  registered_at: Date;
  updated_at: Date;
}

export interface GpuOfferRow {
  offer_id: string;
  provider_id: string;
  class_id: string;
  gpus_per_node: number;
  nodes: number;
  nodes_free: number;
  region: string;
  bandwidth_mbps: number;
  measured_bandwidth_mbps: number | null;
  price: string;
  min_lease_ms: bigint;
  available_until: Date | null;
  state: OfferStateName;
  created_at: Date;
}

export interface StorageOfferRow {
  offer_id: string;
  provider_id: string;
  capacity_bytes: string;
  available_bytes: string;
  price: string;
  endpoint: string;
  bucket: string;
  region: string;
  bandwidth_mbps: number;
  state: OfferStateName;
  created_at: Date;
}

export interface OrderRow {
  order_id: string;
  tenant_id: string;
  idempotency_key: string;
  request_sha256: string;
  spec: unknown;
  class_id: string;
  state: OrderStateName;
  escrow_account_id: string;
  reserved_until: Date | null;
  start_after: Date | null;
  start_before: Date | null;
  explanation: unknown;
  attempts: number;
  created_at: Date;
  updated_at: Date;
}

export interface AllocationRow {
  allocation_id: string;
  order_id: string;
  group_index: number;
  offer_id: string;
  provider_id: string;
  nodes: number;
  gpus: number;
  price: string;
  score: { total: number; price: number; reliability: number; bandwidth: number };
  state: "reserved" | "leased" | "released";
  reserved_until: Date;
  release_reason: string | null;
  created_at: Date;
  released_at: Date | null;
}

export interface LeaseRow {
  lease_id: string;
  order_id: string;
  group_index: number;
  allocation_id: string;
  provider_id: string;
  tenant_id: string;
  offer_id: string;
  class_id: string;
  nodes: number;
  gpus: number;
  price: string;
  state: LeaseStateName;
  starts_at: Date;
  ends_at: Date;
  epoch_ms: bigint;
  epochs: number;
  settled_through: number;
  held_through: number;
  overdrawn_since: Date | null;
  paused_at: Date | null;
  close_reason: string | null;
  closed_at: Date | null;
  state_seq: number;
  created_at: Date;
  replaces_lease_id: string | null;
  replaced_by_lease_id: string | null;
  rematch_state: RematchStateName | null;
  rematch_until: Date | null;
  rematch_explanation: unknown;
}

export type RematchStateName = "pending" | "rematched" | "unmatched" | "unfunded" | "abandoned";

export const rematchStateToProto: Record<RematchStateName, RematchState> = {
  pending: RematchState.PENDING,
  rematched: RematchState.REMATCHED,
  unmatched: RematchState.UNMATCHED,
  unfunded: RematchState.UNFUNDED,
  abandoned: RematchState.ABANDONED,
};

export const money = (currency: string, v: bigint): Money => create(MoneySchema, { currency, micros: v });
const ts = (d: Date | null | undefined) => (d ? timestampFromDate(d) : undefined);

export const offerStateToProto: Record<OfferStateName, OfferState> = {
  active: OfferState.ACTIVE,
  paused: OfferState.PAUSED,
  withdrawn: OfferState.WITHDRAWN,
};

export const orderStateToProto: Record<OrderStateName, OrderState> = {
  matching: OrderState.MATCHING,
  unmatched: OrderState.UNMATCHED,
  reserved: OrderState.RESERVED,
  active: OrderState.ACTIVE,
  completed: OrderState.COMPLETED,
  cancelled: OrderState.CANCELLED,
  expired: OrderState.EXPIRED,
};

export const leaseStateToProto: Record<LeaseStateName, LeaseState> = {
  active: LeaseState.ACTIVE,
  paused: LeaseState.PAUSED,
  ended: LeaseState.ENDED,
  breached: LeaseState.BREACHED,
};

const KIND_NAMES: Record<string, ProviderKind> = { storage: ProviderKind.STORAGE, gpu: ProviderKind.GPU };

export function providerView(r: ProviderRow, minStake: bigint): Provider {
  return create(ProviderSchema, {
    providerId: r.provider_id,
    displayName: r.display_name,
    kinds: r.kinds.map((k) => KIND_NAMES[k] ?? ProviderKind.UNSPECIFIED),
    region: r.region,
    contact: r.contact,
    matchable: r.status === "active" && BigInt(r.stake) >= minStake,
    registeredAt: ts(r.registered_at),
  });
}

export function gpuClassView(catalog: GpuClassCatalog, classId: string): GpuClass {
  const c = catalog.byClassId(classId);
  return create(
    GpuClassSchema,
    c ? { vendor: c.vendor, model: c.model, vramGib: c.vramGib, interface: c.interface, interconnect: c.interconnect } : {},
  );
}

export function gpuOfferView(r: GpuOfferRow, catalog: GpuClassCatalog, currency: string, providerMatchable = true): GpuOffer {
  const state =
    r.state === "active" && !providerMatchable
      ? OfferState.INACTIVE
      : r.state === "active" && r.nodes_free === 0
        ? OfferState.EXHAUSTED
        : offerStateToProto[r.state];
  return create(GpuOfferSchema, {
    offerId: r.offer_id,
    providerId: r.provider_id,
    gpuClass: gpuClassView(catalog, r.class_id),
    gpusPerNode: r.gpus_per_node,
    nodes: r.nodes,
    nodesAvailable: r.nodes_free,
    region: r.region,
    bandwidthMbps: r.bandwidth_mbps,
    pricePerGpuHour: money(currency, BigInt(r.price)),
    minLease: r.min_lease_ms > 0n ? durationFromMs(Number(r.min_lease_ms)) : undefined,
    availableUntil: ts(r.available_until),
    state,
    createdAt: ts(r.created_at),
  });
}

export function storageOfferView(r: StorageOfferRow, currency: string): StorageOffer {
  return create(StorageOfferSchema, {
    offerId: r.offer_id,
    providerId: r.provider_id,
    capacityBytes: BigInt(r.capacity_bytes),
    availableBytes: BigInt(r.available_bytes),
    pricePerGibMonth: money(currency, BigInt(r.price)),
    endpoint: r.endpoint,
    bucket: r.bucket,
    region: r.region,
    bandwidthMbps: r.bandwidth_mbps,
    state: offerStateToProto[r.state],
    createdAt: ts(r.created_at),
  });
}

export function orderView(r: OrderRow, spec: OrderSpec, leaseIds: readonly string[]): Order {
  return create(OrderSchema, {
    orderId: r.order_id,
    tenantId: r.tenant_id,
    spec,
    state: orderStateToProto[r.state],
    escrowAccountId: r.escrow_account_id,
    leaseIds: [...leaseIds],
    reservedUntil: r.state === "reserved" ? ts(r.reserved_until) : undefined,
    createdAt: ts(r.created_at),
    idempotencyKey: r.idempotency_key,
  });
}

export function leaseView(r: LeaseRow, catalog: GpuClassCatalog, currency: string, escrowAccountId: string): Lease {
  return create(LeaseSchema, {
    leaseId: r.lease_id,
    orderId: r.order_id,
    group: r.group_index,
    providerId: r.provider_id,
    tenantId: r.tenant_id,
    offerId: r.offer_id,
    gpuClass: gpuClassView(catalog, r.class_id),
    nodes: r.nodes,
    gpus: r.gpus,
    pricePerGpuHour: money(currency, BigInt(r.price)),
    state: leaseStateToProto[r.state],
    startsAt: ts(r.starts_at),
    endsAt: ts(r.ends_at),
    escrowAccountId,
    epoch: durationFromMs(Number(r.epoch_ms)),
    settledThroughEpoch: BigInt(r.settled_through),
    closeReason: r.close_reason ?? "",
    closedAt: ts(r.closed_at),
    pausedAt: ts(r.paused_at),
    replacesLeaseId: r.replaces_lease_id ?? "",
    replacedByLeaseId: r.replaced_by_lease_id ?? "",
    rematchState: r.rematch_state ? rematchStateToProto[r.rematch_state] : RematchState.UNSPECIFIED,
    rematchExplanation: r.rematch_explanation ? explanationView(r.rematch_explanation as Explanation) : undefined,
  });
}

export const NO_MATCH: Record<NoMatchCodeName, NoMatchCode> = {
  no_offers_for_class: NoMatchCode.NO_OFFERS_FOR_CLASS,
  price_above_max: NoMatchCode.PRICE_ABOVE_MAX,
  insufficient_capacity: NoMatchCode.INSUFFICIENT_CAPACITY,
  bandwidth_below_min: NoMatchCode.BANDWIDTH_BELOW_MIN,
  region_excluded: NoMatchCode.REGION_EXCLUDED,
  provider_ineligible: NoMatchCode.PROVIDER_INELIGIBLE,
  reliability_below_min: NoMatchCode.RELIABILITY_BELOW_MIN,
  stake_below_min: NoMatchCode.STAKE_BELOW_MIN,
  duration_unsupported: NoMatchCode.DURATION_UNSUPPORTED,
  gang_incomplete: NoMatchCode.GANG_INCOMPLETE,
};

/** A stored explanation (domain/matching.ts) as the contract's MatchExplanation. */
export function explanationView(e: Explanation): MatchExplanation {
  return create(MatchExplanationSchema, {
    dimensions: e.dimensions.map((d) =>
      create(DimensionShortfallSchema, {
        code: NO_MATCH[d.code],
        offersExcluded: d.offersExcluded,
        providersExcluded: d.providersExcluded,
        message: d.message,
      }),
    ),
    freeCapacity: e.freeCapacity.map((f) => create(FreeCapacitySchema, f)),
    eligibleFreeGpus: e.eligibleFreeGpus,
    neededGpus: e.neededGpus,
    groupsPlaceable: e.groupsPlaceable,
  });
}
