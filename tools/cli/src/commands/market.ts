// deai market offer|order|status|leases|cancel: the marketplace's REST API. Mutations are signed
// by the key file's actor (RFC 9421, the kit's signer); GPU classes are the catalog's ids
// (packages/kit/data/gpu-classes.json, e.g. nvidia-h100-80g-sxm5); amounts are base units.
import { readKeyFile } from "../actor-key.js";
import { ApiClient } from "../api-client.js";
import { count, flag, list, requireStr, str, UsageError, type Context } from "../cli.js";

type Json = Record<string, unknown> & { [k: string]: any }; // eslint-disable-line @typescript-eslint/no-explicit-any

/** A catalog GPU class id as the contract's GpuClass; an unknown id is a usage error naming the known ones. */
async function gpuClass(id: string): Promise<Json> {
  const { loadGpuClassCatalog } = await import("@deai/kit");
  const catalog = loadGpuClassCatalog();
  const c = catalog.byClassId(id);
  if (!c) throw new UsageError(`--gpu ${JSON.stringify(id)} is not a catalog class (${catalog.classes.map((x) => x.id).join(", ")})`);
  return { vendor: c.vendor, model: c.model, vramGib: c.vramGib, interface: c.interface, interconnect: c.interconnect };
}

/** A positive amount of base units, as the contract's Money. */
function money(ctx: Context, name: string): Json {
  const v = requireStr(ctx, name);
  if (!/^[1-9][0-9]{0,38}$/.test(v)) throw new UsageError(`--${name} must be a positive integer of base units, got ${JSON.stringify(v)}`);
  return { currency: str(ctx, "currency") ?? "DEAI", micros: v };
}

function positive(ctx: Context, name: string, fallback?: number): number {
  const v = count(str(ctx, name), `--${name}`) ?? fallback;
  if (v === undefined) throw new UsageError(`--${name} is required`);
  if (v === 0) throw new UsageError(`--${name} must be positive`);
  return v;
}

const short = (s: string | undefined) => (s ?? "").replace(/^(ORDER|LEASE|OFFER|REMATCH|NO_MATCH_CODE)_STATE_|^NO_MATCH_CODE_/, "");

function leaseLine(l: Json): string {
  const link = l.replacedByLeaseId ? ` → replaced by ${l.replacedByLeaseId}` : l.replacesLeaseId ? ` (replaces ${l.replacesLeaseId})` : "";
  const rematch = l.rematchState && l.rematchState !== "REMATCH_STATE_UNSPECIFIED" ? ` rematch ${short(l.rematchState)}` : "";
  return (
    `${l.leaseId} group ${l.group ?? 0} ${short(l.state)} at ${l.providerId}: ${l.gpus} GPUs × ${l.pricePerGpuHour?.micros ?? 0} ` +
    `${l.pricePerGpuHour?.currency ?? ""}/GPU-h, ${l.startsAt} to ${l.endsAt}, settled through epoch ${l.settledThroughEpoch ?? -1}` +
    `${l.closeReason ? `; closed: ${l.closeReason}` : ""}${rematch}${link}`
  );
}

/** deai market offer --key FILE --gpu CLASS --gpus-per-node N --nodes N --region R --price P [--bandwidth-mbps N] [--name NAME] */
async function offer(ctx: Context, client: ApiClient): Promise<void> {
  if (ctx.positionals.length > 0) throw new UsageError("market offer takes no arguments");
  const key = await readKeyFile(requireStr(ctx, "key"));
  const regions = list(ctx, "region");
  if (regions.length !== 1) throw new UsageError("market offer takes one --region");
  const region = regions[0]!;
  const name = str(ctx, "name");
  // Registering is idempotent (it updates the provider): only when asked, so a display name is never overwritten by accident.
  if (name) await client.postSigned("/v1/marketplace/providers", { displayName: name, kinds: ["PROVIDER_KIND_GPU"], region }, key);
  const body = {
    gpuClass: await gpuClass(requireStr(ctx, "gpu")),
    gpusPerNode: positive(ctx, "gpus-per-node"),
    nodes: positive(ctx, "nodes"),
    region,
    bandwidthMbps: count(str(ctx, "bandwidth-mbps"), "--bandwidth-mbps") ?? 0,
    pricePerGpuHour: money(ctx, "price"),
  };
  const r = await client.postSigned<{ offer: Json }>("/v1/marketplace/offers/gpu", body, key);
  ctx.emit(r);
  const o = r.offer;
  ctx.say(
    `offer ${o.offerId} ${short(o.state)}: ${o.nodes} × ${o.gpusPerNode} ${o.gpuClass.model} in ${o.region} at ${o.pricePerGpuHour.micros} ${o.pricePerGpuHour.currency}/GPU-h`,
  );
}

/** deai market order --key FILE --gpu CLASS --gpus-per-group N --groups N --max-price P --hours H [...] */
async function order(ctx: Context, client: ApiClient): Promise<void> {
  if (ctx.positionals.length > 0) throw new UsageError("market order takes no arguments");
  const key = await readKeyFile(requireStr(ctx, "key"));
  const hours = positive(ctx, "hours");
  const regions = list(ctx, "region");
  const minBandwidth = count(str(ctx, "min-bandwidth-mbps"), "--min-bandwidth-mbps");
  const spec = {
    gpuClass: await gpuClass(requireStr(ctx, "gpu")),
    gpusPerGroup: positive(ctx, "gpus-per-group"),
    groups: positive(ctx, "groups", 1),
    maxPricePerGpuHour: money(ctx, "max-price"),
    duration: `${hours * 3600}s`,
    constraints: {
      ...(regions.length ? { regions } : {}),
      ...(minBandwidth ? { minBandwidthMbps: minBandwidth } : {}),
      ...(flag(ctx, "distinct-providers") ? { distinctProviders: true } : {}),
    },
  };
  const idempotencyKey = str(ctx, "idempotency-key") ?? `cli-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
  const r = await client.postSigned<{ order: Json }>("/v1/marketplace/orders", { spec, idempotencyKey }, key);
  const o = r.order;
  let deposit: Json | undefined;
  const amount = str(ctx, "deposit");
  if (amount !== undefined) {
    deposit = await client.postSigned<Json>(
      `/v1/marketplace/escrow-accounts/${encodeURIComponent(o.escrowAccountId)}/deposits`,
      { amount: money(ctx, "deposit"), idempotencyKey: `${idempotencyKey}-deposit` },
      key,
    );
  }
  const status = await statusOf(client, o.orderId);
  ctx.emit({ ...status, idempotencyKey, ...(deposit ? { deposit } : {}) });
  ctx.say(`order ${o.orderId} (key ${idempotencyKey}), escrow account ${o.escrowAccountId}`);
  sayStatus(ctx, status);
}

async function statusOf(client: ApiClient, orderId: string): Promise<Json> {
  const id = encodeURIComponent(orderId);
  const { order: o } = await client.getJson<{ order: Json }>(`/v1/marketplace/orders/${id}`);
  const matches = await client.getJson<Json>(`/v1/marketplace/orders/${id}/matches`);
  const escrow = await client.getJson<{ account: Json }>(`/v1/marketplace/escrow-accounts/${encodeURIComponent(o.escrowAccountId)}`);
  const leases = await client.getJson<{ leases?: Json[] }>(`/v1/marketplace/leases?orderId=${id}`);
  return { order: o, matches, escrow: escrow.account, leases: leases.leases ?? [] };
}

function sayStatus(ctx: Context, s: Json): void {
  const o = s.order;
  ctx.say(`${o.orderId}: ${short(o.state)}${o.reservedUntil ? ` until ${o.reservedUntil}` : ""}`);
  for (const m of (s.matches.matches as Json[] | undefined) ?? [])
    ctx.say(
      `  group ${m.group ?? 0} → ${m.providerId} offer ${m.offerId}: ${m.gpus} GPUs at ${m.pricePerGpuHour.micros}/GPU-h (score ${m.score?.total})`,
    );
  const e = s.matches.explanation as Json | undefined;
  if (e) {
    ctx.say(
      `  no match: ${e.eligibleFreeGpus ?? 0} eligible free GPUs of ${e.neededGpus} needed, ${e.groupsPlaceable ?? 0} groups placeable`,
    );
    for (const d of (e.dimensions as Json[] | undefined) ?? [])
      if (d.offersExcluded)
        ctx.say(`    ${short(d.code)}: ${d.offersExcluded} offers of ${d.providersExcluded ?? 0} providers — ${d.message}`);
    for (const f of (e.freeCapacity as Json[] | undefined) ?? [])
      ctx.say(`    free at ${f.providerId} (${f.region}): ${f.freeGpus} GPUs, largest block ${f.largestBlockGpus ?? 0}`);
  }
  const a = s.escrow;
  ctx.say(`  escrow ${a.accountId}: available ${a.available?.micros ?? 0}, held ${a.held?.micros ?? 0} ${a.available?.currency ?? ""}`);
  for (const l of s.leases as Json[]) ctx.say(`  ${leaseLine(l)}`);
}

/** deai market status <ORDER_ID> */
async function status(ctx: Context, client: ApiClient): Promise<void> {
  const [orderId, ...rest] = ctx.positionals;
  if (orderId === undefined || rest.length > 0) throw new UsageError("market status takes one order id");
  const s = await statusOf(client, orderId);
  ctx.emit(s);
  sayStatus(ctx, s);
}

/** deai market leases [--order ID] [--provider ID] [--tenant ID] */
async function leases(ctx: Context, client: ApiClient): Promise<void> {
  if (ctx.positionals.length > 0) throw new UsageError("market leases takes no arguments");
  const q = new URLSearchParams();
  for (const [opt, field] of [
    ["order", "orderId"],
    ["provider", "providerId"],
    ["tenant", "tenantId"],
  ] as const) {
    const v = str(ctx, opt);
    if (v) q.set(field, v);
  }
  q.set("pageSize", "1000");
  const r = await client.getJson<{ leases?: Json[] }>(`/v1/marketplace/leases?${q.toString()}`);
  ctx.emit({ leases: r.leases ?? [] });
  for (const l of r.leases ?? []) ctx.say(leaseLine(l));
  if ((r.leases ?? []).length === 0) ctx.say("no leases");
}

/** deai market cancel <ORDER_ID> --key FILE --reason TEXT */
async function cancel(ctx: Context, client: ApiClient): Promise<void> {
  const [orderId, ...rest] = ctx.positionals;
  if (orderId === undefined || rest.length > 0) throw new UsageError("market cancel takes one order id");
  const key = await readKeyFile(requireStr(ctx, "key"));
  const r = await client.postSigned<Json>(
    `/v1/marketplace/orders/${encodeURIComponent(orderId)}/cancel`,
    { reason: requireStr(ctx, "reason") },
    key,
  );
  ctx.emit(r);
  ctx.say(`${orderId}: ${short(r.order.state)}; ${(r.closedLeases as Json[] | undefined)?.length ?? 0} leases closed`);
  ctx.say(`  escrow ${r.escrow.accountId}: available ${r.escrow.available?.micros ?? 0}, held ${r.escrow.held?.micros ?? 0}`);
}

export async function market(ctx: Context): Promise<void> {
  const [sub, ...rest] = ctx.positionals;
  const mctx = { ...ctx, positionals: rest };
  const client = new ApiClient(ctx.server, "the marketplace");
  if (sub === "offer") await offer(mctx, client);
  else if (sub === "order") await order(mctx, client);
  else if (sub === "status") await status(mctx, client);
  else if (sub === "leases") await leases(mctx, client);
  else if (sub === "cancel") await cancel(mctx, client);
  else throw new UsageError(`unknown market command ${JSON.stringify(sub ?? "")} (offer, order, status, leases, cancel)`);
}
