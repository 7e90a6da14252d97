import { randomInt } from "node:crypto";

import { create } from "@bufbuild/protobuf";
import { DurationSchema, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  SamplingPolicySchema,
  SlotAvailabilitySchema,
  type GetProviderAvailabilityResponse,
  type RequestSampleResponse,
  type SampleResult,
} from "@deai/contracts/deai/da/v1/da_pb";
import { InvalidArgumentError, NotFoundError, ResourceExhaustedError } from "@deai/kit/errors";
import { planSlot, samplesForTarget } from "@deai/proofs";
import { sql } from "kysely";

import { outcomeToProto } from "../domain/outcomes.js";
import type { Attestations } from "./attestations.js";
import type { DatasetCatalog } from "./catalog.js";
import type { SamplerContext } from "./context.js";
import type { Rounds } from "./rounds.js";
import { recordSamples, sampleResult } from "./rounds.js";
import { leafOf } from "./catalog.js";

const DAY_MS = 86_400_000;

const durationOf = (ms: number) => create(DurationSchema, { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 });

/** The use cases behind the deai.da.v1 API. */
export class SamplingService {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly c: SamplerContext,
    private readonly catalog: DatasetCatalog,
    private readonly rounds: Rounds,
    readonly attestations: Attestations,
    private readonly requestsPerMinute: number,
  ) {}

  policy(target?: { missingFraction?: number; epsilon?: number }) {
    const p = this.c.policy;
    const f = target?.missingFraction ?? p.missingFraction;
    const eps = target?.epsilon ?? p.epsilon;
    if (!(f > 0 && f < 1)) throw new InvalidArgumentError("missing_fraction must be in (0, 1)");
    if (!(eps > 0 && eps < 1)) throw new InvalidArgumentError("epsilon must be in (0, 1)");
    return {
      policy: create(SamplingPolicySchema, {
        missingFraction: p.missingFraction,
        epsilon: p.epsilon,
        // For an unbounded slot; a small slot's plan (planSlot) may need fewer, or buy less within the budget.
        samplesPerRound: planSlot(p, 2 ** 40).samplesPerRound,
        roundInterval: durationOf(p.roundIntervalMs),
        quorumSize: this.c.knownSamplers.length,
        quorumThreshold: p.quorumThreshold,
        sampleTimeout: durationOf(p.deadlineMs),
      }),
      samplesForTarget: samplesForTarget(f, eps),
    };
  }

  async availability(
    providerId: string,
    windowMs: number | undefined,
    asOfTreeSize?: bigint,
  ): Promise<Omit<GetProviderAvailabilityResponse, "$typeName">> {
    if (!providerId) throw new InvalidArgumentError("provider_id is required");
    if (asOfTreeSize !== undefined && asOfTreeSize < 1n) throw new InvalidArgumentError("as_of_tree_size must be ≥ 1");
    const window = windowMs ?? DAY_MS;
    if (!(window > 0 && window <= 366 * DAY_MS)) throw new InvalidArgumentError("window must be in (0, 366 days]");
    const since = new Date(this.c.clock.nowMs() - window);
    const counts = await this.c.db
      .selectFrom("samples")
      .select([sql<number>`count(*)::int`.as("total"), sql<number>`(count(*) filter (where outcome <> 'ok'))::int`.as("failed")])
      .where("provider_id", "=", providerId)
      .where("sampled_at", ">=", since)
      .executeTakeFirstOrThrow();
    const slots = await this.c.db
      .selectFrom("slot_states")
      .selectAll()
      .where("provider_id", "=", providerId)
      .orderBy("dataset_id")
      .orderBy("slot")
      .execute();
    const rep = await this.attestations.reputation(providerId, asOfTreeSize);
    if (counts.total === 0 && slots.length === 0 && rep.attestations === 0)
      throw new NotFoundError(`provider ${providerId} holds no sampled slot`);
    return {
      providerId,
      availability: counts.total === 0 ? 0 : (counts.total - counts.failed) / counts.total,
      samplesTotal: BigInt(counts.total),
      samplesFailed: BigInt(counts.failed),
      window: durationOf(window),
      reputation: this.attestations.scoreOf(rep, this.c.clock.now()),
      reputationTreeSize: rep.treeSize,
      reputationAttestations: rep.attestations,
      slots: slots.map((s) =>
        create(SlotAvailabilitySchema, {
          datasetId: s.dataset_id,
          slot: s.slot,
          ...(s.last_sampled_at ? { lastSampledAt: timestampFromDate(s.last_sampled_at) } : {}),
          lastOutcome: outcomeToProto(s.last_outcome ?? ""),
          consecutiveFailures: s.consecutive_failures,
        }),
      ),
    };
  }

  /** Token bucket per caller: `requestsPerMinute`, refilled continuously. */
  private admit(caller: string): void {
    const now = this.c.clock.nowMs();
    const b = this.buckets.get(caller) ?? { tokens: this.requestsPerMinute, at: now };
    b.tokens = Math.min(this.requestsPerMinute, b.tokens + ((now - b.at) * this.requestsPerMinute) / 60_000);
    b.at = now;
    if (b.tokens < 1) throw new ResourceExhaustedError(`at most ${this.requestsPerMinute} on-demand samples per minute per caller`);
    b.tokens -= 1;
    this.buckets.set(caller, b);
  }

  /**
   * On-demand challenge by the first local identity: explicit stripes, or a regular round per slot
   * (derived stripes, opening the quorum re-check on failure) when none are named.
   */
  async requestSample(
    caller: string,
    req: { datasetId: string; slot?: number; samples: number; stripes: readonly bigint[] },
  ): Promise<Omit<RequestSampleResponse, "$typeName">> {
    if (!req.datasetId) throw new InvalidArgumentError("dataset_id is required");
    const ds = await this.catalog.get(req.datasetId);
    const n = ds.k + ds.m;
    if (req.slot !== undefined && req.slot >= n) throw new InvalidArgumentError(`slot ${req.slot} is beyond the dataset's ${n} slots`);
    if (req.stripes.length > 64) throw new InvalidArgumentError("at most 64 explicit stripes");
    if (req.samples > 64) throw new InvalidArgumentError("samples must be ≤ 64");
    for (const s of req.stripes)
      if (s >= BigInt(ds.stripes)) throw new InvalidArgumentError(`stripe ${s} is beyond the dataset's ${ds.stripes} stripes`);
    this.admit(caller);
    const sampler = this.c.identities[0]!;
    const slots = req.slot !== undefined ? [req.slot] : ds.placements.map((p) => p.slot);
    const results: SampleResult[] = [];
    const pending: string[] = [];
    for (const slot of slots) {
      const placement = ds.placements[slot]!;
      if (req.stripes.length === 0 && req.samples === 0) {
        const r = await this.rounds.run(sampler, ds.datasetId, slot, this.c.clock.now());
        results.push(...r.samples.map((s) => sampleResult(sampler.id, ds, slot, s)));
        if (r.recheckId) pending.push(r.recheckId);
        continue;
      }
      const stripes = req.stripes.length > 0 ? req.stripes.map(Number) : Array.from({ length: req.samples }, () => randomInt(ds.stripes));
      const samples = await Promise.all(
        stripes.map((s) => this.c.reader.sample(placement.providerId, placement.key, s, ds.shardSize, leafOf(ds, s, slot))),
      );
      await this.c.db.transaction().execute((trx) => recordSamples(trx, sampler.id, ds, slot, "request", samples));
      for (const s of samples) this.c.metrics.samples.add(1, { outcome: s.outcome, purpose: "request" });
      results.push(...samples.map((s) => sampleResult(sampler.id, ds, slot, s)));
    }
    return { results, pendingAttestationIds: pending };
  }
}
