import { createHash } from "node:crypto";

import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { SampleResultSchema } from "@deai/contracts/deai/da/v1/da_pb";
import { RecheckRequestedSchema, SampleFailedSchema } from "@deai/contracts/deai/events/v1/da_pb";
import { enqueueEvent, type RunContext } from "@deai/kit";
import { FailedPreconditionError } from "@deai/kit/errors";
import {
  attestationId,
  challengeStripes,
  hexEncode,
  planSlot,
  roundOf,
  samplingAttestationPayload,
  type AttestedRound,
  type RecheckTrigger,
  type SampleOutcomeName,
} from "@deai/proofs";
import { sql, type Kysely, type Transaction } from "kysely";

import { backoffDelayMs } from "../domain/backoff.js";
import { isUnreachable, outcomeToProto } from "../domain/outcomes.js";
import { recheckPredicate, roundsPredicate, type SlotRef } from "../domain/recheck.js";
import { slotStates, type SlotState } from "../domain/slot-states.js";
import { insertAttestation } from "../store/attestations.js";
import type { DaSamplerDb } from "../store/tables.js";
import { leafOf, shardRootHex, type DatasetCatalog, type SampledDataset } from "./catalog.js";
import type { SamplerContext } from "./context.js";
import { envelopeToProto } from "./envelopes.js";
import { noteSlotChange } from "./provider-availability.js";
import type { SamplerIdentity } from "./sampler-identity.js";
import type { ShardSample } from "./shard-reader.js";

/** What one round did. */
export interface RoundResult {
  readonly round: number;
  readonly skipped?: "backoff" | "done" | "no-seed";
  readonly samples: readonly ShardSample[];
  readonly recheckId?: string;
}

export function slotRef(ds: SampledDataset, slot: number): SlotRef {
  return {
    datasetId: ds.datasetId,
    contentDigest: ds.contentDigest,
    shardRoot: shardRootHex(ds),
    provider: ds.placements[slot]!.providerId,
    slot,
    stripes: ds.stripes,
  };
}

/** Name of the scheduled loop of one (sampler, dataset, slot). */
export function roundLoopName(sampler: SamplerIdentity, datasetId: string, slot: number): string {
  return `da.round.s${sampler.index}.${createHash("sha256").update(datasetId).digest("hex").slice(0, 20)}.${slot}`;
}

/**
 * Sampling rounds: one scheduled loop per (sampler identity, dataset, slot) on the kit's
 * Scheduler, at the plan's interval, its cadence persisted so a restart neither skips nor
 * doubles a round. A round derives its stripes from the latest checkpoint and the sampler's id,
 * reads them, records round and samples in one transaction, and on a failure opens the quorum
 * re-check (unless one is open for the slot) after a control read shows the sampler itself can
 * still reach the providers.
 */
export class Rounds {
  private readonly backoff = new Map<string, { failures: number; until: number }>();

  constructor(
    private readonly c: SamplerContext,
    private readonly catalog: DatasetCatalog,
  ) {}

  /** Registers the loops of a dataset's slots for every local identity (idempotent). */
  async schedule(datasetId: string): Promise<void> {
    const ds = await this.catalog.get(datasetId);
    const plan = planSlot(this.c.policy, ds.stripes);
    for (const id of this.c.identities)
      for (const p of ds.placements) {
        const name = roundLoopName(id, datasetId, p.slot);
        if (this.c.scheduler.loop(name)) continue;
        this.c.scheduler.register({
          name,
          intervalMs: plan.roundIntervalMs,
          jitter: 0.05,
          run: async (ctx: RunContext) => void (await this.run(id, datasetId, p.slot, ctx.startedAt)),
        });
      }
  }

  /** One round now (the scheduled run; tests and RequestSample call it too). */
  async run(sampler: SamplerIdentity, datasetId: string, slot: number, startedAt: Date): Promise<RoundResult> {
    const c = this.c;
    const ds = await this.catalog.get(datasetId);
    const placement = ds.placements[slot];
    if (!placement) throw new FailedPreconditionError(`dataset ${datasetId} has no slot ${slot}`);
    const plan = planSlot(c.policy, ds.stripes);
    const round = roundOf(startedAt.getTime(), plan.roundIntervalMs);
    const bkey = `${sampler.id}/${placement.providerId}`;
    const b = this.backoff.get(bkey);
    if (b && c.clock.nowMs() < b.until) return { round, skipped: "backoff", samples: [] };
    const done = await c.db
      .selectFrom("rounds")
      .select("round")
      .where("sampler_id", "=", sampler.id)
      .where("dataset_id", "=", datasetId)
      .where("slot", "=", slot)
      .where("round", "=", BigInt(round))
      .executeTakeFirst();
    if (done) return { round, skipped: "done", samples: [] };
    if (!c.checkpoints) return { round, skipped: "no-seed", samples: [] };
    const cp = await c.checkpoints.latest();
    const stripes = challengeStripes({
      seed: { checkpointSize: cp.size, checkpointRoot: cp.root },
      samplerId: sampler.id,
      shardRoot: ds.shardRoot,
      slot,
      round,
      stripes: ds.stripes,
      samples: plan.samplesPerRound,
    });
    const samples = await Promise.all(
      stripes.map((s) => c.reader.sample(placement.providerId, placement.key, s, ds.shardSize, leafOf(ds, s, slot))),
    );
    const failures = samples.filter((s) => s.outcome !== "ok");
    for (const s of samples) {
      c.metrics.samples.add(1, { outcome: s.outcome, purpose: "round" });
      c.metrics.latency.record(s.latencyMs, { provider: placement.providerId });
      if (s.outcome !== "ok") c.metrics.faults.add(1, { outcome: s.outcome });
    }
    // Back-off only for "cannot reach": wrong or missing bytes are answers, and sampling goes on.
    if (failures.length > 0 && failures.every((f) => isUnreachable(f.outcome))) {
      const n = (b?.failures ?? 0) + 1;
      this.backoff.set(bkey, { failures: n, until: c.clock.nowMs() + backoffDelayMs(n, plan.roundIntervalMs) });
    } else this.backoff.delete(bkey);
    let recheck: { trigger: RecheckTrigger; rechecked: number[] } | undefined;
    if (failures.length > 0 && (await this.canReachOthers(ds, slot, failures[0]!.stripe))) {
      const first = failures[0]!;
      recheck = {
        trigger: {
          sampler: sampler.id,
          round,
          checkpointSize: cp.size,
          checkpointRoot: hexEncode(cp.root),
          samples: stripes.length,
          stripe: first.stripe,
          outcome: first.outcome,
          sampledAt: first.sampledAt.toISOString(),
        },
        rechecked: failures.map((f) => f.stripe),
      };
    } else if (failures.length > 0) {
      c.logger.warn(
        { sampler: sampler.id, datasetId, slot },
        "round failed but a control read of another provider failed too: this sampler looks cut off; no re-check",
      );
    }
    const ref = slotRef(ds, slot);
    let recheckId: string | undefined;
    const inserted = await c.db.transaction().execute(async (trx) => {
      const r = await trx
        .insertInto("rounds")
        .values({
          sampler_id: sampler.id,
          dataset_id: datasetId,
          slot,
          round: BigInt(round),
          provider_id: placement.providerId,
          checkpoint_size: BigInt(cp.size),
          checkpoint_root: Buffer.from(cp.root),
          samples: stripes.length,
          failures: JSON.stringify(failures.map((f) => ({ stripe: f.stripe, outcome: f.outcome }))),
          started_at: startedAt,
          attestation_id: null,
        })
        .onConflict((oc) => oc.columns(["sampler_id", "dataset_id", "slot", "round"]).doNothing())
        .executeTakeFirst();
      if (Number(r.numInsertedOrUpdatedRows ?? 0n) !== 1) return false;
      await recordSamples(trx, sampler.id, ds, slot, "round", samples);
      // A slot already proven unavailable is not re-attested on every failing round: one piece
      // of evidence per outage; a passing round (the provider is back) makes it available again.
      const state = await this.updateSlot(trx, ds, slot, samples, recheck !== undefined);
      for (const f of failures) await enqueueSampleFailed(trx, sampler.id, ds, slot, f);
      if (recheck && state === "suspect") recheckId = await this.openRecheck(trx, sampler, ref, recheck.trigger, recheck.rechecked);
      await this.summarizeIfDue(trx, sampler, ds, slot);
      return true;
    });
    if (!inserted) return { round, skipped: "done", samples: [] };
    c.outbox.kick();
    return { round, samples, ...(recheckId ? { recheckId } : {}) };
  }

  /** A control read of the same stripe at another slot's provider: false when this sampler cannot reach that either. */
  private async canReachOthers(ds: SampledDataset, slot: number, stripe: number): Promise<boolean> {
    const other = ds.placements.find((p) => p.slot !== slot && p.providerId !== ds.placements[slot]!.providerId);
    if (!other) return true;
    const s = await this.c.reader.sample(other.providerId, other.key, stripe, ds.shardSize, leafOf(ds, stripe, other.slot));
    return s.outcome === "ok" || s.outcome === "late";
  }

  private async updateSlot(
    trx: Transaction<DaSamplerDb>,
    ds: SampledDataset,
    slot: number,
    samples: readonly ShardSample[],
    suspect: boolean,
  ): Promise<SlotState> {
    const failed = samples.some((s) => s.outcome !== "ok");
    const last = samples[samples.length - 1];
    const row = await trx
      .selectFrom("slot_states")
      .select(["state"])
      .where("dataset_id", "=", ds.datasetId)
      .where("slot", "=", slot)
      .forUpdate()
      .executeTakeFirstOrThrow();
    let state = row.state as SlotState;
    if (suspect && state !== "suspect" && slotStates.canTransition(state, "suspect")) state = "suspect";
    // A passing round clears an unavailable slot (the provider recovered); a suspect one waits for its quorum.
    if (!failed && state === "unavailable") state = "available";
    await trx
      .updateTable("slot_states")
      .set({
        state,
        last_sampled_at: last?.sampledAt ?? this.c.clock.now(),
        last_outcome: failed ? samples.find((s) => s.outcome !== "ok")!.outcome : "ok",
        consecutive_failures: failed ? sql`consecutive_failures + 1` : 0,
      })
      .where("dataset_id", "=", ds.datasetId)
      .where("slot", "=", slot)
      .execute();
    if (state !== row.state)
      await noteSlotChange(trx, this.c, { providerId: ds.placements[slot]!.providerId, datasetId: ds.datasetId, slot });
    return state;
  }

  /** Opens a re-check (unless one is open for the slot): this sampler's own vote, and the request to the others. */
  private async openRecheck(
    trx: Transaction<DaSamplerDb>,
    sampler: SamplerIdentity,
    ref: SlotRef,
    trigger: RecheckTrigger,
    rechecked: number[],
  ): Promise<string | undefined> {
    const open = await trx
      .selectFrom("rechecks")
      .select("recheck_id")
      .where("dataset_id", "=", ref.datasetId)
      .where("slot", "=", ref.slot)
      .where("state", "=", "pending")
      .executeTakeFirst();
    if (open) return undefined;
    const payload = samplingAttestationPayload(recheckPredicate(ref, this.c.policy, trigger, rechecked, "unavailable"));
    const id = attestationId(payload);
    const availableId = attestationId(samplingAttestationPayload(recheckPredicate(ref, this.c.policy, trigger, rechecked, "available")));
    const envelope = sampler.signStatement(payload);
    const now = this.c.clock.now();
    await trx
      .insertInto("rechecks")
      .values({
        recheck_id: id,
        available_id: availableId,
        dataset_id: ref.datasetId,
        slot: ref.slot,
        provider_id: ref.provider,
        requester_id: sampler.id,
        payload: Buffer.from(payload),
        state: "pending",
        local_requester: true,
        created_at: now,
        closed_at: null,
      })
      .onConflict((oc) => oc.column("recheck_id").doNothing())
      .execute();
    await trx
      .insertInto("votes")
      .values({
        attestation_id: id,
        recheck_id: id,
        sampler_id: sampler.id,
        verdict: "unavailable",
        sig: Buffer.from(envelope.signatures[0]!.sig),
        received_at: now,
      })
      .onConflict((oc) => oc.columns(["attestation_id", "sampler_id"]).doNothing())
      .execute();
    await enqueueEvent(
      trx as unknown as Kysely<unknown>,
      "deai.da.recheck_requested",
      RecheckRequestedSchema,
      create(RecheckRequestedSchema, {
        eventId: `da/recheck/${id}`,
        occurredAt: timestampFromDate(now),
        recheckId: id,
        envelope: envelopeToProto(envelope),
        requesterId: sampler.id,
      }),
      `da/recheck/${id}`,
    );
    return id;
  }

  /** Every `summaryRounds` rounds of a (sampler, dataset, slot) become one signed `rounds` attestation. */
  private async summarizeIfDue(trx: Transaction<DaSamplerDb>, sampler: SamplerIdentity, ds: SampledDataset, slot: number): Promise<void> {
    const rows = await trx
      .selectFrom("rounds")
      .selectAll()
      .where("sampler_id", "=", sampler.id)
      .where("dataset_id", "=", ds.datasetId)
      .where("slot", "=", slot)
      .where("attestation_id", "is", null)
      .orderBy("round")
      .execute();
    if (rows.length < this.c.summaryRounds) return;
    const rounds: AttestedRound[] = rows.map((r) => ({
      round: Number(r.round),
      checkpointSize: Number(r.checkpoint_size),
      checkpointRoot: hexEncode(r.checkpoint_root),
      samples: r.samples,
      failures: (r.failures as unknown as { stripe: number; outcome: SampleOutcomeName }[]).map((f) => ({
        stripe: f.stripe,
        outcome: f.outcome,
      })),
    }));
    const predicate = roundsPredicate(
      slotRef(ds, slot),
      this.c.policy,
      sampler.id,
      rounds,
      rows[rows.length - 1]!.started_at.toISOString(),
    );
    const payload = samplingAttestationPayload(predicate);
    const id = attestationId(payload);
    await insertAttestation(trx, {
      id,
      predicate,
      envelope: sampler.signStatement(payload),
      signers: [sampler.id],
      evidence: false,
      anchorHere: true,
      at: this.c.clock.now(),
    });
    await trx
      .updateTable("rounds")
      .set({ attestation_id: id })
      .where("sampler_id", "=", sampler.id)
      .where("dataset_id", "=", ds.datasetId)
      .where("slot", "=", slot)
      .where(
        "round",
        "in",
        rows.map((r) => r.round),
      )
      .execute();
    this.c.metrics.attestations.add(1, { kind: "rounds", verdict: predicate.verdict });
    this.c.metrics.confidence.record(predicate.confidence, { kind: "rounds" });
  }
}

/** Records samples of one slot. */
export async function recordSamples(
  trx: Transaction<DaSamplerDb>,
  samplerId: string,
  ds: SampledDataset,
  slot: number,
  purpose: "round" | "recheck" | "request",
  samples: readonly ShardSample[],
): Promise<void> {
  if (samples.length === 0) return;
  await trx
    .insertInto("samples")
    .values(
      samples.map((s) => ({
        sampler_id: samplerId,
        dataset_id: ds.datasetId,
        slot,
        provider_id: ds.placements[slot]!.providerId,
        stripe: BigInt(s.stripe),
        purpose,
        outcome: s.outcome,
        expected_leaf: leafOf(ds, s.stripe, slot),
        observed_leaf: s.observedLeaf ? Buffer.from(s.observedLeaf) : null,
        latency_ms: s.latencyMs,
        sampled_at: s.sampledAt,
        detail: s.detail.slice(0, 500),
      })),
    )
    .execute();
}

/** The contract's SampleResult of a sample. */
export function sampleResult(samplerId: string, ds: SampledDataset, slot: number, s: ShardSample) {
  return create(SampleResultSchema, {
    datasetId: ds.datasetId,
    providerId: ds.placements[slot]!.providerId,
    slot,
    stripe: BigInt(s.stripe),
    outcome: outcomeToProto(s.outcome),
    expectedLeafHash: leafOf(ds, s.stripe, slot),
    observedLeafHash: s.observedLeaf ?? new Uint8Array(),
    latency: { seconds: BigInt(Math.floor(s.latencyMs / 1000)), nanos: (s.latencyMs % 1000) * 1e6 },
    sampledAt: timestampFromDate(s.sampledAt),
    samplerId,
    detail: s.detail,
  });
}

async function enqueueSampleFailed(
  trx: Transaction<DaSamplerDb>,
  samplerId: string,
  ds: SampledDataset,
  slot: number,
  s: ShardSample,
): Promise<void> {
  const id = `da/sample_failed/${ds.datasetId}/${slot}/${s.stripe}/${samplerId}/${s.sampledAt.getTime()}`;
  await enqueueEvent(
    trx as unknown as Kysely<unknown>,
    "deai.da.sample_failed",
    SampleFailedSchema,
    create(SampleFailedSchema, {
      eventId: id,
      occurredAt: timestampFromDate(s.sampledAt),
      providerId: ds.placements[slot]!.providerId,
      datasetId: ds.datasetId,
      slot,
      stripe: BigInt(s.stripe),
      result: sampleResult(samplerId, ds, slot, s),
    }),
    id,
  );
}
