// Leases and settlement: a reservation becomes one lease per group once the order's escrow
// covers every group's first epoch; each epoch is paid from a two-phase hold (escrow →
// provider revenue) placed before the epoch starts, and posted from a usage report signed by
// the provider and countersigned by the operator. An escrow that cannot fund the next epoch
// marks the lease overdrawn; it is paused when the grace period ends or the unfunded epoch
// starts, whichever is first, so no epoch ever runs without a hold; a top-up resumes it.
// Closing releases the lease's nodes at once and voids the holds of epochs not yet begun.
import { create, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { randomUUID } from "node:crypto";
import { sql } from "kysely";

import type { DsseEnvelope as DsseEnvelopeMessage } from "@deai/contracts/deai/common/v1/common_pb";
import {
  type LeaseState,
  ListLeasesResponseSchema,
  OrderSpecSchema,
  SubmitUsageReportResponseSchema,
  type Lease,
  type ListLeasesRequest,
  type ListLeasesResponse,
  type SubmitUsageReportResponse,
} from "@deai/contracts/deai/marketplace/v1/marketplace_pb";
import {
  availableBalance,
  createAccount,
  createTransfers,
  getHold,
  lockAccounts,
  mulDiv,
  transitionRow,
  type Hold,
  type TransferInput,
} from "@deai/kit";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, PermissionDeniedError } from "@deai/kit/errors";
import { dsseToJson, ProofError, verifyUsageReport, type DsseEnvelope } from "@deai/proofs";

import { leaseStates, orderStates, type LeaseStateName } from "../domain/states.js";
import { enqueueAnchor, leaseStatement, receiptOf } from "./anchors.js";
import { queueEquivocation } from "./equivocation.js";
import { accountIds, type MarketContext, type Trx } from "./context.js";
import type { Escrow } from "./escrow.js";
import { text } from "./input.js";
import { marketMetrics } from "./metrics.js";
import { releaseAllocations } from "./orders.js";
import { leaseStateToProto, leaseView, money, type AllocationRow, type LeaseRow, type OrderRow } from "./views.js";

const HOUR_MS = 3_600_000n;

/** Epoch `e` of a lease: [start, end), the last one cut at the lease's end. */
export function epochBounds(l: Pick<LeaseRow, "starts_at" | "ends_at" | "epoch_ms">, e: number): { start: number; end: number } {
  const start = l.starts_at.getTime() + e * Number(l.epoch_ms);
  return { start, end: Math.min(start + Number(l.epoch_ms), l.ends_at.getTime()) };
}

/** What epoch `e` can cost at most: price × GPUs × its hours, rounded down (the charge rounds down the same way). */
export function epochCost(l: Pick<LeaseRow, "starts_at" | "ends_at" | "epoch_ms" | "price" | "gpus">, e: number): bigint {
  const { start, end } = epochBounds(l, e);
  return (BigInt(l.price) * BigInt(l.gpus) * BigInt(end - start)) / HOUR_MS;
}

export interface CloseOptions {
  /** The provider lost its standing: the group is matched again on other providers (rematch.ts), so the order does not complete. */
  readonly rematch?: boolean;
  /** False: leave the order's state to the caller (cancellation). @default true */
  readonly completeOrder?: boolean;
}

export const holdId = (leaseId: string, epoch: number): string => `hold:${leaseId}:${epoch}`;

export class Leases {
  constructor(
    private readonly ctx: MarketContext,
    private readonly escrow: Escrow,
  ) {}

  private holdInput(l: LeaseRow, escrowId: string, e: number): TransferInput | undefined {
    const amount = epochCost(l, e);
    if (amount === 0n) return undefined;
    const { end } = epochBounds(l, e);
    return {
      kind: "pending",
      id: holdId(l.lease_id, e),
      debitAccountId: escrowId,
      creditAccountId: accountIds.revenue(l.provider_id),
      amount: amount as never,
      ledger: this.ctx.params.currency,
      code: "lease.epoch",
      reference: l.lease_id,
      timeoutMs: Math.max(1, end - this.ctx.clock.nowMs() + this.ctx.params.settlementWindowMs),
    };
  }

  async view(l: LeaseRow): Promise<Lease> {
    const v = leaseView(l, this.ctx.catalog, this.ctx.params.currency, accountIds.escrow(l.order_id));
    const receipt = await receiptOf(this.ctx.db, l.lease_id, "lease.created");
    if (receipt) v.receipt = receipt;
    return v;
  }

  async get(leaseId: string): Promise<Lease> {
    if (!leaseId) throw new InvalidArgumentError("lease_id is required", { field: "lease_id" });
    const l = (await this.ctx.db.selectFrom("leases").selectAll().where("lease_id", "=", leaseId).executeTakeFirst()) as
      LeaseRow | undefined;
    if (!l) throw new NotFoundError(`lease ${leaseId} not found`);
    return this.view(l);
  }

  async list(req: ListLeasesRequest): Promise<ListLeasesResponse> {
    const size = req.pageSize === 0 ? 100 : Math.min(req.pageSize, 1000);
    let q = this.ctx.db.selectFrom("leases").selectAll();
    if (req.orderId) q = q.where("order_id", "=", req.orderId);
    if (req.providerId) q = q.where("provider_id", "=", req.providerId);
    if (req.tenantId) q = q.where("tenant_id", "=", req.tenantId);
    if (req.state) {
      const name = (Object.entries(leaseStateToProto) as [LeaseStateName, LeaseState][]).find(([, v]) => v === req.state)?.[0];
      if (!name) throw new InvalidArgumentError("state is not a lease state", { field: "state" });
      q = q.where("state", "=", name);
    }
    if (req.pageToken) q = q.where("lease_id", ">", req.pageToken);
    const rows = (await q
      .orderBy("lease_id")
      .limit(size + 1)
      .execute()) as LeaseRow[];
    const page = rows.slice(0, size);
    return create(ListLeasesResponseSchema, {
      leases: await Promise.all(page.map((l) => this.view(l))),
      nextPageToken: rows.length > size ? page[page.length - 1]!.lease_id : "",
    });
  }

  /**
   * Turns an order's reservation into leases when its escrow covers epoch 0 of every group:
   * leases, holds, allocation and order states in one transaction. False when the order is
   * not reserved (any more) or the escrow is short.
   */
  async fund(orderId: string): Promise<boolean> {
    return this.ctx.db.transaction().execute(async (trx) => {
      const order = (await sql<OrderRow>`select * from orders where order_id = ${orderId} for update`.execute(trx)).rows[0];
      const now = this.ctx.clock.now();
      if (!order || order.state !== "reserved" || !order.reserved_until || order.reserved_until <= now) return false;
      const allocations = (await trx
        .selectFrom("allocations")
        .selectAll()
        .where("order_id", "=", orderId)
        .where("state", "=", "reserved")
        .orderBy("group_index")
        .execute()) as AllocationRow[];
      const spec = fromJson(OrderSpecSchema, order.spec as JsonValue);
      const startsAt = new Date(Math.max(now.getTime(), order.start_after?.getTime() ?? 0));
      const endsAt = new Date(startsAt.getTime() + durationMs(spec.duration!));
      if (!(await this.openLeases(trx, order, allocations, startsAt, endsAt))) return false;
      await transitionRow(trx, orderStates, {
        table: "orders",
        key: { order_id: orderId },
        from: ["reserved"],
        to: "active",
        set: { updated_at: now },
      });
      return true;
    });
  }

  /**
   * Inside `trx` (the order row locked): one lease per reserved allocation from `startsAt` to
   * `endsAt`, each with its epoch-0 hold, the allocations moved to leased, the events and the
   * lease statements queued. False, having written nothing, when the escrow cannot hold epoch 0
   * of every lease. `replaces` maps a group to the lease it takes over (re-matching).
   */
  async openLeases(
    trx: Trx,
    order: OrderRow,
    allocations: readonly AllocationRow[],
    startsAt: Date,
    endsAt: Date,
    replaces: ReadonlyMap<number, string> = new Map(),
  ): Promise<LeaseRow[] | false> {
    const now = this.ctx.clock.now();
    const epochMs = this.ctx.params.epochMs;
    const duration = endsAt.getTime() - startsAt.getTime();
    const leases: LeaseRow[] = allocations.map((a) => ({
      lease_id: `lease-${randomUUID()}`,
      order_id: order.order_id,
      group_index: a.group_index,
      allocation_id: a.allocation_id,
      provider_id: a.provider_id,
      tenant_id: order.tenant_id,
      offer_id: a.offer_id,
      class_id: order.class_id,
      nodes: a.nodes,
      gpus: a.gpus,
      price: a.price,
      state: "active",
      starts_at: startsAt,
      ends_at: endsAt,
      epoch_ms: BigInt(epochMs),
      epochs: Math.ceil(duration / epochMs),
      settled_through: -1,
      held_through: 0,
      overdrawn_since: null,
      paused_at: null,
      close_reason: null,
      closed_at: null,
      state_seq: 0,
      created_at: now,
      replaces_lease_id: replaces.get(a.group_index) ?? null,
      replaced_by_lease_id: null,
      rematch_state: null,
      rematch_until: null,
      rematch_explanation: null,
    }));
    const holds = leases.flatMap((l) => this.holdInput(l, order.escrow_account_id, 0) ?? []);
    const need = holds.reduce((s, h) => s + (h as { amount: bigint }).amount, 0n);
    const locked = await lockAccounts(trx, [order.escrow_account_id]);
    if (availableBalance(locked.get(order.escrow_account_id)!) < need) return false;
    for (const l of leases) {
      const revenue = accountIds.revenue(l.provider_id);
      await createAccount(trx, this.ctx.clock, {
        id: revenue,
        ledger: this.ctx.params.currency,
        kind: "revenue",
        flags: { debitsMustNotExceedCredits: true },
      });
      await sql`insert into escrow_owners (account_id, owner_id) values (${revenue}, ${l.provider_id}) on conflict do nothing`.execute(trx);
    }
    await trx
      .insertInto("leases")
      .values(leases.map((l) => ({ ...l, rematch_explanation: null })))
      .execute();
    await sql`update allocations set state = 'leased' where allocation_id = any(${allocations.map((a) => a.allocation_id)}::text[]) and state = 'reserved'`.execute(
      trx,
    );
    await createTransfers(trx, this.ctx.clock, holds);
    for (const l of leases) {
      const view = leaseView(l, this.ctx.catalog, this.ctx.params.currency, order.escrow_account_id);
      await this.ctx.events.leaseCreated(trx, view);
      await enqueueAnchor(
        trx,
        this.ctx,
        `lease.created:${l.lease_id}`,
        "lease.created",
        l.lease_id,
        leaseStatement(this.ctx, {
          event: "created",
          leaseId: l.lease_id,
          orderId: order.order_id,
          provider: l.provider_id,
          tenant: l.tenant_id,
          offerId: l.offer_id,
          resource: { gpuClass: l.class_id, gpus: l.gpus, nodes: l.nodes },
          pricePerGpuHour: l.price,
          currency: this.ctx.params.currency,
          startsAt: l.starts_at.toISOString(),
          endsAt: l.ends_at.toISOString(),
          epochMs,
          escrowAccount: order.escrow_account_id,
          ...(l.replaces_lease_id ? { group: l.group_index, replaces: l.replaces_lease_id } : {}),
        }),
      );
    }
    return leases;
  }

  /** After a deposit: fund a reservation, resume paused leases, clear overdraws. */
  async onDeposit(orderId: string): Promise<void> {
    await this.fund(orderId);
    const live = await this.ctx.db
      .selectFrom("leases")
      .select("lease_id")
      .where("order_id", "=", orderId)
      .where("state", "in", ["active", "paused"])
      .execute();
    for (const l of live) await this.renewOne(l.lease_id as string);
  }

  /** The hold loop: places next-epoch holds half an epoch ahead, pauses overdrawn leases, ends leases past their end. */
  async tick(limit = 500): Promise<void> {
    const now = this.ctx.clock.now();
    const due = await this.ctx.db
      .selectFrom("leases")
      .select("lease_id")
      .where("state", "in", ["active", "paused"])
      .orderBy("lease_id")
      .limit(limit)
      .execute();
    for (const l of due) await this.renewOne(l.lease_id as string);
    const ended = await this.ctx.db
      .selectFrom("leases")
      .select("lease_id")
      .where("state", "in", ["active", "paused"])
      .where("ends_at", "<=", now)
      .limit(limit)
      .execute();
    for (const l of ended) await this.closeAs(l.lease_id as string, "ran its duration", "ended");
  }

  /** One lease's funding step, in its own transaction. */
  async renewOne(leaseId: string): Promise<void> {
    await this.ctx.db.transaction().execute(async (trx) => {
      const l = (await sql<LeaseRow>`select * from leases where lease_id = ${leaseId} for update skip locked`.execute(trx)).rows[0];
      if (!l || (l.state !== "active" && l.state !== "paused")) return;
      const now = this.ctx.clock.nowMs();
      const escrowId = accountIds.escrow(l.order_id);
      const current = Math.floor((now - l.starts_at.getTime()) / Number(l.epoch_ms));
      if (l.state === "paused") {
        if (current >= l.epochs) return;
        if (current > l.held_through) {
          if (!(await this.placeHold(trx, l, escrowId, current))) return;
        }
        await this.setState(trx, l, "active", "escrow topped up", {
          held_through: Math.max(l.held_through, current),
          overdrawn_since: null,
          paused_at: null,
        });
        return;
      }
      const next = l.held_through + 1;
      if (next >= l.epochs) return;
      const { start } = epochBounds(l, next);
      if (now < start - Number(l.epoch_ms) / 2) return;
      if (await this.placeHold(trx, l, escrowId, next)) {
        await trx.updateTable("leases").set({ held_through: next, overdrawn_since: null }).where("lease_id", "=", leaseId).execute();
        return;
      }
      const since = l.overdrawn_since?.getTime() ?? now;
      if (!l.overdrawn_since)
        await trx
          .updateTable("leases")
          .set({ overdrawn_since: new Date(now) })
          .where("lease_id", "=", leaseId)
          .execute();
      if (now >= Math.min(since + this.ctx.params.graceMs, start)) {
        await this.setState(trx, l, "paused", "escrow cannot fund the next epoch", { paused_at: new Date(now) });
      }
    });
  }

  private async placeHold(trx: Trx, l: LeaseRow, escrowId: string, e: number): Promise<boolean> {
    const h = this.holdInput(l, escrowId, e);
    if (!h) return true;
    const locked = await lockAccounts(trx, [escrowId]);
    if (availableBalance(locked.get(escrowId)!) < (h as { amount: bigint }).amount) return false;
    await createTransfers(trx, this.ctx.clock, [h]);
    return true;
  }

  private async setState(trx: Trx, l: LeaseRow, to: LeaseStateName, reason: string, set: Record<string, unknown> = {}): Promise<LeaseRow> {
    const row = await transitionRow<LeaseStateName, LeaseRow>(trx, leaseStates, {
      table: "leases",
      key: { lease_id: l.lease_id },
      from: [l.state],
      to,
      set: { ...set, state_seq: l.state_seq + 1 },
    });
    const view = leaseView(row, this.ctx.catalog, this.ctx.params.currency, accountIds.escrow(l.order_id));
    marketMetrics.leaseTransitions.add(1, { state: to });
    await this.ctx.events.leaseStateChanged(trx, view, leaseStateToProto[l.state], row.state_seq, reason);
    return row;
  }

  /** Closes a lease at the request of its tenant, its provider or an operator. */
  async close(actor: string, leaseId: string, reasonIn: string): Promise<Lease> {
    const reason = text(reasonIn, "reason", 500, { required: true });
    const l = (await this.ctx.db.selectFrom("leases").selectAll().where("lease_id", "=", leaseId).executeTakeFirst()) as
      LeaseRow | undefined;
    if (!leaseId) throw new InvalidArgumentError("lease_id is required", { field: "lease_id" });
    if (!l) throw new NotFoundError(`lease ${leaseId} not found`);
    if (actor !== l.tenant_id && actor !== l.provider_id && !this.ctx.params.operators.includes(actor))
      throw new PermissionDeniedError(`only the tenant, the provider or an operator may close lease ${leaseId}`);
    return this.view(await this.closeAs(leaseId, reason, "ended"));
  }

  /** Ends a live lease now: capacity released at once, holds of epochs not begun voided, order completed when it was the last. */
  async closeAs(leaseId: string, reason: string, to: "ended" | "breached", opts: CloseOptions = {}): Promise<LeaseRow> {
    return this.ctx.db.transaction().execute((trx) => this.closeIn(trx, leaseId, reason, to, opts));
  }

  /** `closeAs` inside the caller's transaction (an event's inbox transaction, a cancellation). */
  async closeIn(trx: Trx, leaseId: string, reason: string, to: "ended" | "breached", opts: CloseOptions = {}): Promise<LeaseRow> {
    const l = (await sql<LeaseRow>`select * from leases where lease_id = ${leaseId} for update`.execute(trx)).rows[0];
    if (!l) throw new NotFoundError(`lease ${leaseId} not found`);
    if (l.state !== "active" && l.state !== "paused") throw leaseStates.illegal(l.state, to, leaseId);
    const now = this.ctx.clock.now();
    const row = await this.setState(trx, l, to, reason, {
      close_reason: reason,
      closed_at: now,
      ends_at: new Date(Math.min(now.getTime(), l.ends_at.getTime())),
      // The group is matched again elsewhere until the lease's planned end (rematch.ts).
      ...(opts.rematch && l.ends_at > now ? { rematch_state: "pending", rematch_until: l.ends_at } : {}),
    });
    await releaseAllocations(trx, this.ctx, l.order_id, ["leased"], reason, [l.allocation_id]);
    const voids: TransferInput[] = [];
    for (let e = l.settled_through + 1; e <= l.held_through; e++) {
      if (epochBounds(l, e).start < now.getTime()) continue;
      const hold = await getHold(trx, holdId(leaseId, e)).catch(() => undefined);
      if (hold?.state === "pending")
        voids.push({ kind: "void", id: `void:${leaseId}:${e}`, pendingId: hold.transfer.id, reference: leaseId });
    }
    if (voids.length > 0) await createTransfers(trx, this.ctx.clock, voids);
    const left = await trx
      .selectFrom("leases")
      .select("lease_id")
      .where("order_id", "=", l.order_id)
      .where((eb) =>
        eb.or([
          eb("state", "in", ["active", "paused"]),
          eb.and([eb("rematch_state", "in", ["pending", "unmatched", "unfunded"]), eb("rematch_until", ">", now)]),
        ]),
      )
      .executeTakeFirst();
    if (!left && !(opts.rematch && l.ends_at > now) && opts.completeOrder !== false)
      await transitionRow(trx, orderStates, {
        table: "orders",
        key: { order_id: l.order_id },
        from: ["active"],
        to: "completed",
        set: { updated_at: now },
      }).catch(() => undefined);
    await enqueueAnchor(
      trx,
      this.ctx,
      `lease.closed:${leaseId}`,
      "lease.closed",
      leaseId,
      leaseStatement(this.ctx, {
        event: "closed",
        leaseId,
        orderId: l.order_id,
        provider: l.provider_id,
        reason,
        closedAt: now.toISOString(),
        settledThroughEpoch: l.settled_through,
        ...(opts.rematch && l.ends_at > now ? { rematch: true } : {}),
      }),
    );
    return row;
  }

  /**
   * Settles one epoch from a usage report. Refused with no state change: a report that does
   * not verify, is not the lease's provider's or not countersigned by an operator or the
   * tenant, skips an epoch, reports an epoch not over yet, or uses more than the lease's GPUs
   * could. The same report again answers `duplicate`; a different one for a settled epoch is
   * refused and recorded as equivocation evidence.
   */
  async settle(leaseId: string, envelopeIn: DsseEnvelopeMessage | undefined): Promise<SubmitUsageReportResponse> {
    if (!leaseId) throw new InvalidArgumentError("lease_id is required", { field: "lease_id" });
    if (!envelopeIn) throw new InvalidArgumentError("report is required", { field: "report" });
    const envelope: DsseEnvelope = { payloadType: envelopeIn.payloadType, payload: envelopeIn.payload, signatures: envelopeIn.signatures };
    let v;
    try {
      v = verifyUsageReport(envelope);
    } catch (e) {
      if (e instanceof ProofError) throw new InvalidArgumentError(`report: ${e.message}`, { field: "report" });
      throw e;
    }
    const p = v.predicate;
    if (p.leaseId !== leaseId)
      throw new InvalidArgumentError(`report is for lease ${p.leaseId.slice(0, 100)}, not ${leaseId}`, { field: "report" });
    const outcome = await this.ctx.db.transaction().execute(async (trx) => {
      const l = (await sql<LeaseRow>`select * from leases where lease_id = ${leaseId} for update`.execute(trx)).rows[0];
      if (!l) throw new NotFoundError(`lease ${leaseId} not found`);
      if (p.provider !== l.provider_id)
        throw new PermissionDeniedError(`report is signed as provider ${p.provider}; lease ${leaseId} is ${l.provider_id}'s`);
      if (p.operator !== l.tenant_id && !this.ctx.params.operators.includes(p.operator))
        throw new PermissionDeniedError(`report is countersigned by ${p.operator}, who is neither an operator nor the lease's tenant`);
      const prior = (
        await sql<{ payload_sha256: string; envelope: unknown; gpu_seconds: bigint; amount: string }>`
          select payload_sha256, envelope, gpu_seconds, amount from usage_reports where lease_id = ${leaseId} and epoch = ${p.epoch}`.execute(
          trx,
        )
      ).rows[0];
      if (prior) {
        if (prior.payload_sha256 === v.payloadSha256)
          return { kind: "duplicate" as const, l, gpuSeconds: BigInt(prior.gpu_seconds), amount: BigInt(prior.amount) };
        return { kind: "conflict" as const, l, prior };
      }
      if (p.epoch >= l.epochs)
        throw new InvalidArgumentError(`report epoch ${p.epoch} is past the lease's last epoch ${l.epochs - 1}`, { field: "report" });
      if (p.epoch !== l.settled_through + 1)
        throw new FailedPreconditionError(
          `lease ${leaseId} is settled through epoch ${l.settled_through}: the next report must be for epoch ${l.settled_through + 1}, not ${p.epoch}`,
          {
            reason: "out_of_order",
          },
        );
      const { start, end } = epochBounds(l, p.epoch);
      if (start >= l.ends_at.getTime())
        throw new FailedPreconditionError(`epoch ${p.epoch} of lease ${leaseId} never began (closed first)`);
      if (Date.parse(p.periodStart) !== start || Date.parse(p.periodEnd) !== end)
        throw new InvalidArgumentError(
          `report period must be epoch ${p.epoch}: ${new Date(start).toISOString()} to ${new Date(end).toISOString()}`,
          { field: "report" },
        );
      if (this.ctx.clock.nowMs() < end)
        throw new FailedPreconditionError(`epoch ${p.epoch} of lease ${leaseId} is not over until ${new Date(end).toISOString()}`);
      const maxSeconds = BigInt(l.gpus) * BigInt(Math.floor((end - start) / 1000));
      const gpuSeconds = BigInt(p.gpuSeconds);
      if (gpuSeconds > maxSeconds)
        throw new InvalidArgumentError(`report claims ${gpuSeconds} GPU-seconds; the lease's ${l.gpus} GPUs had at most ${maxSeconds}`, {
          field: "report",
        });
      const hold: Hold | undefined = await getHold(trx, holdId(leaseId, p.epoch)).catch(() => undefined);
      let amount = mulDiv(BigInt(l.price) as never, gpuSeconds, 3600n);
      const transfers: TransferInput[] = [];
      if (hold && hold.state === "pending") {
        if (amount > hold.transfer.amount) amount = hold.transfer.amount;
        transfers.push(
          amount > 0n
            ? {
                kind: "post",
                id: `settle:${leaseId}:${p.epoch}`,
                pendingId: hold.transfer.id,
                amount: amount,
                code: "lease.settlement",
                reference: leaseId,
              }
            : { kind: "void", id: `settle:${leaseId}:${p.epoch}`, pendingId: hold.transfer.id, reference: leaseId },
        );
      } else if (amount > 0n) {
        throw new FailedPreconditionError(
          hold
            ? `the hold for epoch ${p.epoch} is ${hold.state} (the report came after the settlement window)`
            : `epoch ${p.epoch} was never funded (the lease was paused): only zero usage can be reported`,
          { reason: "epoch_not_funded" },
        );
      }
      const results = await createTransfers(trx, this.ctx.clock, transfers);
      await sql`insert into usage_reports (lease_id, epoch, payload_sha256, envelope, gpu_seconds, amount, settled_at)
                values (${leaseId}, ${p.epoch}, ${v.payloadSha256}, ${JSON.stringify(dsseToJson(envelope))}::jsonb, ${gpuSeconds}, ${amount.toString()}::numeric, ${this.ctx.clock.now()})`.execute(
        trx,
      );
      await trx.updateTable("leases").set({ settled_through: p.epoch }).where("lease_id", "=", leaseId).execute();
      await enqueueAnchor(trx, this.ctx, `usage:${leaseId}:${p.epoch}`, "usage-report", leaseId, envelope);
      const escrowView = await this.escrow.view(accountIds.escrow(l.order_id), trx);
      await this.ctx.events.usageSettled(trx, {
        leaseId,
        providerId: l.provider_id,
        escrowAccountId: accountIds.escrow(l.order_id),
        epoch: p.epoch,
        gpuSeconds,
        amount,
        escrowAvailable: escrowView.available?.micros ?? 0n,
        leasePaused: l.state === "paused",
        reportHash: Buffer.from(v.payloadSha256, "hex"),
      });
      return { kind: "settled" as const, l, gpuSeconds, amount, transfers: results.map((r) => r.transfer), escrowView };
    });
    if (outcome.kind === "conflict") {
      // The pair and its submission to slashing in one commit (equivocation.ts sends it once).
      await this.ctx.db.transaction().execute(async (trx) => {
        await sql`insert into usage_conflicts (lease_id, epoch, provider_id, first_sha256, second_sha256, first_envelope, second_envelope, detected_at)
                  values (${leaseId}, ${p.epoch}, ${p.provider}, ${outcome.prior.payload_sha256}, ${v.payloadSha256}, ${JSON.stringify(outcome.prior.envelope)}::jsonb,
                          ${JSON.stringify(dsseToJson(envelope))}::jsonb, ${this.ctx.clock.now()})
                  on conflict do nothing`.execute(trx);
        await queueEquivocation(trx, this.ctx, { leaseId, epoch: p.epoch, providerId: p.provider, secondSha256: v.payloadSha256 });
      });
      marketMetrics.settlements.add(1, { outcome: "conflict" });
      throw new FailedPreconditionError(
        `epoch ${p.epoch} of lease ${leaseId} was settled from a different report signed by the same provider: refused, and kept as equivocation evidence`,
        { reason: "conflicting_report" },
      );
    }
    marketMetrics.settlements.add(1, { outcome: outcome.kind });
    if (outcome.kind === "settled") marketMetrics.settledAmount.add(Number(outcome.amount));
    const escrowView = outcome.kind === "settled" ? outcome.escrowView : await this.escrow.view(accountIds.escrow(outcome.l.order_id));
    return create(SubmitUsageReportResponseSchema, {
      leaseId,
      epoch: BigInt(p.epoch),
      gpuSeconds: outcome.gpuSeconds,
      amount: money(this.ctx.params.currency, outcome.amount),
      transfers: outcome.kind === "settled" ? outcome.transfers.map((t) => this.escrow.transferView(t)) : [],
      escrow: escrowView,
      leasePaused: outcome.l.state === "paused",
      duplicate: outcome.kind === "duplicate",
    });
  }
}
