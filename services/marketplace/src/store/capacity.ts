// The capacity ledger as the batch matcher reads and writes it: offers with their providers'
// standing (all of them at start, then what changed since a watermark), the planned offers
// re-read under row locks, and one statement that inserts a batch of reserved orders with
// their allocations and escrow owners and takes their nodes from the offers.
//
// Change feed: a trigger stamps every insert or update of gpu_offers and providers with the
// writing transaction's id (`change_xid`). A read returns the xmin of its own snapshot as the
// next watermark: every transaction below it had finished when the read ran (its changes
// were seen), every one still running or later has an id at or above it, so the next read
// `change_xid >= watermark` sees it. Nothing committed is ever missed; some rows come twice.
import { sql, type RawBuilder } from "kysely";

import type { OfferCandidate } from "../domain/matching.js";
import type { Db } from "../app/context.js";
import type { OrderRow } from "../app/views.js";

/** An offer joined with its provider, as the candidate queries select it. */
export interface CandidateRow {
  offer_id: string;
  provider_id: string;
  class_id: string;
  region: string;
  bandwidth_mbps: number;
  price: string;
  gpus_per_node: number;
  nodes_free: number;
  min_lease_ms: bigint | string;
  available_until: Date | null;
  state: string;
  status: string;
  stake: string;
  reliability: number;
  /** The writing transactions of the offer row and of its provider row: `<offer xid>:<provider xid>`. */
  version: string;
}

const version = sql`o.change_xid::text || ':' || p.change_xid::text`;

/** The columns of a CandidateRow, for `select … from gpu_offers o join providers p`. */
export const candidateColumns = sql`o.offer_id, o.provider_id, o.class_id, o.region, o.bandwidth_mbps, o.price::text as price,
  o.gpus_per_node, o.nodes_free, o.min_lease_ms, o.available_until, o.state, p.status, p.stake::text as stake, p.reliability,
  ${version} as version`;

/** The matching view of a row; `minStake` is the service's floor (below it a provider is not matchable). */
export function candidateOf(row: CandidateRow, minStake: bigint): OfferCandidate {
  return {
    offerId: row.offer_id,
    providerId: row.provider_id,
    classId: row.class_id,
    region: row.region,
    bandwidthMbps: row.bandwidth_mbps,
    pricePerGpuHour: BigInt(row.price),
    gpusPerNode: row.gpus_per_node,
    nodesFree: row.nodes_free,
    minLeaseMs: Number(row.min_lease_ms),
    availableUntilMs: row.available_until ? row.available_until.getTime() : null,
    matchable: row.state === "active" && row.status === "active" && BigInt(row.stake) >= minStake,
    stake: BigInt(row.stake),
    reliability: row.reliability,
  };
}

/**
 * Offers not withdrawn (all of them when `since` is undefined, else those whose offer or
 * provider changed at or after the watermark `since`, leaving out offers last written by the
 * reader's own transactions `own`, which it knows already) and the watermark for the next read.
 */
export async function readCapacity(
  db: Db,
  since?: string,
  own: readonly string[] = [],
): Promise<{ rows: CandidateRow[]; watermark: string }> {
  const changed =
    since === undefined
      ? sql`select offer_id from gpu_offers where state <> 'withdrawn'`
      : sql`select offer_id from gpu_offers where change_xid >= ${since}::xid8 and not (change_xid = any(${[...own]}::xid8[]))
            union select o.offer_id from providers p join gpu_offers o on o.provider_id = p.provider_id where p.change_xid >= ${since}::xid8`;
  const r = await sql<CandidateRow & { watermark: string }>`
    with w as materialized (select pg_snapshot_xmin(pg_current_snapshot())::text as watermark),
         ch as (${changed})
    select w.watermark, c.* from w left join lateral (
      select ${candidateColumns} from ch join gpu_offers o on o.offer_id = ch.offer_id join providers p on p.provider_id = o.provider_id
    ) c on true`.execute(db);
  const watermark = r.rows[0]!.watermark;
  return { rows: r.rows.filter((row) => row.offer_id !== null), watermark };
}

/** An order of a batch, created reserved. */
export interface ReservedOrderInsert {
  readonly orderId: string;
  readonly tenantId: string;
  readonly idempotencyKey: string;
  readonly requestSha256: string;
  readonly specJson: string;
  readonly classId: string;
  readonly escrowAccountId: string;
  readonly startAfter: Date | null;
  readonly startBefore: Date | null;
  readonly reservedUntil: Date;
  readonly allocations: readonly AllocationInsert[];
}

export interface AllocationInsert {
  readonly allocationId: string;
  readonly groupIndex: number;
  readonly offerId: string;
  readonly providerId: string;
  readonly nodes: number;
  readonly gpus: number;
  readonly price: string;
  readonly scoreJson: string;
}

/** An offer a batch plans on: the version its plans were made on and the nodes they take together. */
export interface PlannedOffer {
  readonly offerId: string;
  readonly version: string;
  readonly nodes: number;
}

/**
 * One statement, so one transaction and one round trip, for a whole batch. It locks the
 * planned offers still at their planned version with the nodes free (in id order, so two
 * batches never wait on each other in a cycle; a row changed meanwhile is re-read after the
 * lock and drops out); the orders whose every offer is locked win. For the winners only it
 * inserts the orders as reserved, their allocations and escrow owners, takes their nodes from
 * the offers (the CHECK on nodes_free refuses the statement should any go below zero), and
 * runs `alongside`, the kit's inserts of the winners' escrow accounts and events (given the
 * subqueries of the winners' account ids and order ids). A (tenant, idempotency key) that
 * exists fails the statement (unique violation) with nothing written.
 */
export async function reserveBatch(
  db: Db,
  offers: readonly PlannedOffer[],
  orders: readonly ReservedOrderInsert[],
  now: Date,
  alongside: (won: { accountIds: RawBuilder<unknown>; orderIds: RawBuilder<unknown> }) => readonly (RawBuilder<unknown> | undefined)[],
): Promise<{ rows: OrderRow[]; xid: string | null }> {
  if (orders.length === 0) return { rows: [], xid: null };
  const allocs = orders.flatMap((o) => o.allocations.map((a) => ({ ...a, orderId: o.orderId, until: o.reservedUntil })));
  const col = <T>(f: (o: ReservedOrderInsert) => T) => orders.map(f);
  const acol = <T>(f: (a: (typeof allocs)[number]) => T) => allocs.map(f);
  const extra = alongside({ accountIds: sql`select escrow_account_id from ins`, orderIds: sql`select order_id from ins` })
    .filter((q): q is RawBuilder<unknown> => q !== undefined)
    .map((q, i) => sql`, ${sql.raw(`alongside_${i}`)} as (${q})`);
  const r = await sql<OrderRow & { xid: string }>`
    with want as (
      select * from unnest(${offers.map((o) => o.offerId)}::text[], ${offers.map((o) => o.version)}::text[], ${offers.map((o) => o.nodes)}::int[])
        as w (offer_id, version, n)
    ),
    ok as (
      select o.offer_id from gpu_offers o join providers p on p.provider_id = o.provider_id join want w on w.offer_id = o.offer_id
      where ${version} = w.version and o.nodes_free >= w.n
      order by o.offer_id
      for update of o
    ),
    plan as (
      select * from unnest(${acol((a) => a.allocationId)}::text[], ${acol((a) => a.orderId)}::text[], ${acol((a) => a.groupIndex)}::int[],
                           ${acol((a) => a.offerId)}::text[], ${acol((a) => a.providerId)}::text[], ${acol((a) => a.nodes)}::int[],
                           ${acol((a) => a.gpus)}::int[], ${acol((a) => a.price)}::numeric[], ${acol((a) => a.scoreJson)}::text[],
                           ${acol((a) => a.until)}::timestamptz[])
        as y (allocation_id, order_id, group_index, offer_id, provider_id, nodes, gpus, price, score, reserved_until)
    ),
    won as (
      select order_id from plan group by order_id having bool_and(offer_id in (select offer_id from ok))
    ),
    ins as (
      insert into orders (order_id, tenant_id, idempotency_key, request_sha256, spec, class_id, state, escrow_account_id,
                          reserved_until, start_after, start_before, attempts, created_at, updated_at)
      select order_id, tenant_id, idempotency_key, request_sha256, spec::jsonb, class_id, 'reserved', escrow_account_id,
             reserved_until, start_after, start_before, 1, ${now}, ${now}
      from unnest(${col((o) => o.orderId)}::text[], ${col((o) => o.tenantId)}::text[], ${col((o) => o.idempotencyKey)}::text[],
                  ${col((o) => o.requestSha256)}::text[], ${col((o) => o.specJson)}::text[], ${col((o) => o.classId)}::text[],
                  ${col((o) => o.escrowAccountId)}::text[], ${col((o) => o.reservedUntil)}::timestamptz[],
                  ${col((o) => o.startAfter)}::timestamptz[], ${col((o) => o.startBefore)}::timestamptz[])
        as x (order_id, tenant_id, idempotency_key, request_sha256, spec, class_id, escrow_account_id, reserved_until, start_after, start_before)
      where order_id in (select order_id from won)
      returning *
    ),
    a as (select * from plan where order_id in (select order_id from ins)),
    alloc as (
      insert into allocations (allocation_id, order_id, group_index, offer_id, provider_id, nodes, gpus, price, score, state, reserved_until, created_at)
      select allocation_id, order_id, group_index, offer_id, provider_id, nodes, gpus, price, score::jsonb, 'reserved', reserved_until, ${now} from a
    ),
    taken as (
      update gpu_offers o set nodes_free = o.nodes_free - t.n
      from (select offer_id, sum(nodes)::int as n from a group by offer_id) t
      where o.offer_id = t.offer_id
    ),
    owners as (
      insert into escrow_owners (account_id, owner_id, order_id) select escrow_account_id, tenant_id, order_id from ins
    )
    ${sql.join(extra, sql``)}
    select ins.*, pg_current_xact_id()::text as xid from ins`.execute(db);
  return { rows: r.rows, xid: r.rows[0]?.xid ?? null };
}
