// Providers and their offers: register (a key is an account), GPU offers of a catalog class
// and storage offers, both needing the minimum stake in slashing; pause, resume, withdraw
// through the offer state machine.
import { create } from "@bufbuild/protobuf";
import { randomUUID } from "node:crypto";
import { sql } from "kysely";

import {
  OfferSchema,
  OfferState,
  ProviderKind,
  type CreateGpuOfferRequest,
  type CreateStorageOfferRequest,
  type ListOffersRequest,
  type Offer,
  type Provider,
  type RegisterProviderRequest,
} from "@deai/contracts/deai/marketplace/v1/marketplace_pb";
import { transitionRow } from "@deai/kit";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, PermissionDeniedError } from "@deai/kit/errors";

import { offerStates, type OfferStateName } from "../domain/states.js";
import type { MarketContext, Trx } from "./context.js";
import { refreshReliability } from "./reputation.js";
import { durationOf, positiveInt, positiveMoney, region, text, timeOf } from "./input.js";
import { gpuOfferView, providerView, storageOfferView, type GpuOfferRow, type ProviderRow, type StorageOfferRow } from "./views.js";

const KINDS: Record<number, string> = { [ProviderKind.STORAGE]: "storage", [ProviderKind.GPU]: "gpu" };

export class Providers {
  constructor(private readonly ctx: MarketContext) {}

  async register(actor: string, req: RegisterProviderRequest): Promise<Provider> {
    const displayName = text(req.displayName, "display_name", 200, { required: true });
    const contact = text(req.contact, "contact", 500);
    const r = region(req.region, "region");
    if (req.kinds.length === 0) throw new InvalidArgumentError("kinds must name at least one of STORAGE, GPU", { field: "kinds" });
    const kinds = [...new Set(req.kinds.map((k) => KINDS[k] ?? fail(`kinds has an unknown kind ${k}`, "kinds")))].sort();
    const now = this.ctx.clock.now();
    return this.ctx.db.transaction().execute(async (trx) => {
      const row = (
        await sql<ProviderRow>`
          insert into providers (provider_id, display_name, kinds, region, contact, registered_at, updated_at)
          values (${actor}, ${displayName}, ${kinds}::text[], ${r}, ${contact}, ${now}, ${now})
          on conflict (provider_id) do update set display_name = excluded.display_name, kinds = excluded.kinds,
            region = excluded.region, contact = excluded.contact, updated_at = excluded.updated_at
          returning *`.execute(trx)
      ).rows[0]!;
      // What the DA sampler already said about this key counts from the start.
      await refreshReliability(trx, actor);
      const view = providerView(row, this.ctx.params.minStake);
      await this.ctx.events.providerRegistered(trx, view);
      return view;
    });
  }

  async get(providerId: string): Promise<Provider> {
    if (!providerId) throw new InvalidArgumentError("provider_id is required", { field: "provider_id" });
    const row = await this.ctx.db.selectFrom("providers").selectAll().where("provider_id", "=", providerId).executeTakeFirst();
    if (!row) throw new NotFoundError(`provider ${providerId} is not registered`);
    return providerView(row as ProviderRow, this.ctx.params.minStake);
  }

  /** The provider's row, its standing refreshed from slashing; FailedPrecondition when it may not offer. */
  private async eligibleProvider(actor: string, kind: "gpu" | "storage"): Promise<ProviderRow> {
    const row = (await this.ctx.db.selectFrom("providers").selectAll().where("provider_id", "=", actor).executeTakeFirst()) as
      ProviderRow | undefined;
    if (!row)
      throw new FailedPreconditionError(`provider ${actor} is not registered: RegisterProvider first`, { reason: "not_registered" });
    if (!row.kinds.includes(kind))
      throw new FailedPreconditionError(`provider ${actor} is not registered for ${kind} offers`, { reason: "wrong_kind" });
    const s = await this.ctx.standing.standing(actor);
    const now = this.ctx.clock.now();
    await this.ctx.db
      .updateTable("providers")
      .set({ status: s.status, stake: s.bonded.toString(), status_checked_at: now })
      .where("provider_id", "=", actor)
      .execute();
    if (s.status !== "active")
      throw new FailedPreconditionError(`provider ${actor} is ${s.status} in slashing: no new offers`, { reason: s.status });
    if (s.bonded < this.ctx.params.minStake) {
      throw new FailedPreconditionError(
        `provider ${actor} has ${s.bonded} bonded in slashing; offering needs ${this.ctx.params.minStake}`,
        {
          reason: "stake_below_min",
        },
      );
    }
    return { ...row, status: s.status, stake: s.bonded.toString() };
  }

  async createGpuOffer(actor: string, req: CreateGpuOfferRequest): Promise<Offer> {
    const cls = this.ctx.catalog.resolve(req.gpuClass, "gpu_class");
    const gpusPerNode = positiveInt(req.gpusPerNode, "gpus_per_node", 64);
    const nodes = positiveInt(req.nodes, "nodes", 100_000);
    const r = region(req.region, "region");
    if (req.bandwidthMbps > 10_000_000) throw new InvalidArgumentError("bandwidth_mbps is out of range", { field: "bandwidth_mbps" });
    const price = positiveMoney(req.pricePerGpuHour, "price_per_gpu_hour", this.ctx.params.currency);
    const minLeaseMs = durationOf(req.minLease, "min_lease", 366 * 24 * 3_600_000) ?? 0;
    const until = timeOf(req.availableUntil, "available_until");
    const now = this.ctx.clock.now();
    if (until && until <= now) throw new InvalidArgumentError("available_until is in the past", { field: "available_until" });
    const provider = await this.eligibleProvider(actor, "gpu");
    const offerId = `gpu-${randomUUID()}`;
    return this.ctx.db.transaction().execute(async (trx) => {
      const row = (
        await sql<GpuOfferRow>`
          insert into gpu_offers (offer_id, provider_id, class_id, gpus_per_node, nodes, nodes_free, region, bandwidth_mbps, price,
                                  min_lease_ms, available_until, state, created_at)
          values (${offerId}, ${actor}, ${cls.id}, ${gpusPerNode}, ${nodes}, ${nodes}, ${r}, ${req.bandwidthMbps}, ${price.toString()}::numeric,
                  ${minLeaseMs}, ${until ?? null}, 'active', ${now})
          returning *`.execute(trx)
      ).rows[0]!;
      const offer = create(OfferSchema, { kind: { case: "gpu", value: gpuOfferView(row, this.ctx.catalog, this.ctx.params.currency) } });
      await this.ctx.events.offerCreated(trx, offer, offerId);
      void provider;
      return offer;
    });
  }

  async createStorageOffer(actor: string, req: CreateStorageOfferRequest): Promise<Offer> {
    if (req.capacityBytes <= 0n || req.capacityBytes > 2n ** 62n)
      throw new InvalidArgumentError("capacity_bytes must be positive and at most 2^62", { field: "capacity_bytes" });
    const price = positiveMoney(req.pricePerGibMonth, "price_per_gib_month", this.ctx.params.currency);
    const endpoint = text(req.endpoint, "endpoint", 500, { required: true });
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch {
      throw new InvalidArgumentError("endpoint must be an absolute http(s) URL", { field: "endpoint" });
    }
    if (url.protocol !== "http:" && url.protocol !== "https:")
      throw new InvalidArgumentError("endpoint must be an http(s) URL", { field: "endpoint" });
    const bucket = text(req.bucket, "bucket", 63, { required: true });
    if (!/^[a-z0-9][a-z0-9.-]{1,62}$/.test(bucket)) throw new InvalidArgumentError("bucket must be an S3 bucket name", { field: "bucket" });
    const r = region(req.region, "region");
    if (req.bandwidthMbps > 10_000_000) throw new InvalidArgumentError("bandwidth_mbps is out of range", { field: "bandwidth_mbps" });
    await this.eligibleProvider(actor, "storage");
    const offerId = `storage-${randomUUID()}`;
    const now = this.ctx.clock.now();
    return this.ctx.db.transaction().execute(async (trx) => {
      const row = (
        await sql<StorageOfferRow>`
          insert into storage_offers (offer_id, provider_id, capacity_bytes, available_bytes, price, endpoint, bucket, region, bandwidth_mbps, state, created_at)
          values (${offerId}, ${actor}, ${req.capacityBytes.toString()}::numeric, ${req.capacityBytes.toString()}::numeric, ${price.toString()}::numeric,
                  ${endpoint}, ${bucket}, ${r}, ${req.bandwidthMbps}, 'active', ${now})
          returning *`.execute(trx)
      ).rows[0]!;
      const offer = create(OfferSchema, { kind: { case: "storage", value: storageOfferView(row, this.ctx.params.currency) } });
      await this.ctx.events.offerCreated(trx, offer, offerId);
      return offer;
    });
  }

  async setOfferState(actor: string, offerId: string, state: OfferState): Promise<Offer> {
    if (!offerId) throw new InvalidArgumentError("offer_id is required", { field: "offer_id" });
    const to: OfferStateName | undefined =
      state === OfferState.ACTIVE
        ? "active"
        : state === OfferState.PAUSED
          ? "paused"
          : state === OfferState.WITHDRAWN
            ? "withdrawn"
            : undefined;
    if (!to) throw new InvalidArgumentError("state must be ACTIVE, PAUSED or WITHDRAWN", { field: "state" });
    const table = offerId.startsWith("gpu-") ? "gpu_offers" : offerId.startsWith("storage-") ? "storage_offers" : undefined;
    if (!table) throw new NotFoundError(`offer ${offerId} not found`);
    return this.ctx.db.transaction().execute(async (trx: Trx) => {
      const owner = await trx.selectFrom(table).select("provider_id").where("offer_id", "=", offerId).executeTakeFirst();
      if (!owner) throw new NotFoundError(`offer ${offerId} not found`);
      if (owner.provider_id !== actor) throw new PermissionDeniedError(`offer ${offerId} belongs to another provider`);
      const row: unknown = await transitionRow(trx, offerStates, { table, key: { offer_id: offerId }, to });
      return table === "gpu_offers"
        ? create(OfferSchema, {
            kind: { case: "gpu", value: gpuOfferView(row as GpuOfferRow, this.ctx.catalog, this.ctx.params.currency) },
          })
        : create(OfferSchema, { kind: { case: "storage", value: storageOfferView(row as StorageOfferRow, this.ctx.params.currency) } });
    });
  }

  async list(req: ListOffersRequest): Promise<{ offers: Offer[]; nextPageToken: string }> {
    const size = req.pageSize === 0 ? 100 : Math.min(req.pageSize, 1000);
    const after = req.pageToken;
    if (after.length > 200) throw new InvalidArgumentError("page_token is malformed", { field: "page_token" });
    const offers: { id: string; offer: Offer }[] = [];
    if (req.kind !== ProviderKind.STORAGE) {
      let q = this.ctx.db
        .selectFrom("gpu_offers as o")
        .innerJoin("providers as p", "p.provider_id", "o.provider_id")
        .selectAll("o")
        .select(["p.status", "p.stake"]);
      if (req.providerId) q = q.where("o.provider_id", "=", req.providerId);
      if (req.region) q = q.where("o.region", "=", req.region);
      if (!req.includeInactive) q = q.where("o.state", "=", "active").where("o.nodes_free", ">", 0).where("p.status", "=", "active");
      if (req.gpuVendor || req.gpuModel) {
        const ids = this.ctx.catalog.classes
          .filter((c) => (!req.gpuVendor || c.vendor === req.gpuVendor) && (!req.gpuModel || c.model === req.gpuModel))
          .map((c) => c.id);
        if (ids.length === 0) return { offers: [], nextPageToken: "" };
        q = q.where("o.class_id", "in", ids);
      }
      if (after) q = q.where("o.offer_id", ">", after);
      const rows = await q
        .orderBy("o.offer_id")
        .limit(size + 1)
        .execute();
      for (const r of rows as (GpuOfferRow & { status: string; stake: string })[]) {
        const matchable = r.status === "active" && BigInt(r.stake) >= this.ctx.params.minStake;
        offers.push({
          id: r.offer_id,
          offer: create(OfferSchema, {
            kind: { case: "gpu", value: gpuOfferView(r, this.ctx.catalog, this.ctx.params.currency, matchable) },
          }),
        });
      }
    }
    if (req.kind !== ProviderKind.GPU && !req.gpuVendor && !req.gpuModel) {
      let q = this.ctx.db.selectFrom("storage_offers").selectAll();
      if (req.providerId) q = q.where("provider_id", "=", req.providerId);
      if (req.region) q = q.where("region", "=", req.region);
      if (!req.includeInactive) q = q.where("state", "=", "active");
      if (after) q = q.where("offer_id", ">", after);
      const rows = await q
        .orderBy("offer_id")
        .limit(size + 1)
        .execute();
      for (const r of rows as StorageOfferRow[])
        offers.push({
          id: r.offer_id,
          offer: create(OfferSchema, { kind: { case: "storage", value: storageOfferView(r, this.ctx.params.currency) } }),
        });
    }
    offers.sort((a, b) => (a.id < b.id ? -1 : 1));
    const page = offers.slice(0, size);
    return { offers: page.map((o) => o.offer), nextPageToken: offers.length > size ? page[page.length - 1]!.id : "" };
  }
}

function fail(message: string, field: string): never {
  throw new InvalidArgumentError(message, { field });
}
