import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { AttestationVerdict } from "@deai/contracts/deai/da/v1/da_pb";
import { RecheckVotedSchema, type RecheckRequested, type RecheckVoted } from "@deai/contracts/deai/events/v1/da_pb";
import { enqueueEvent } from "@deai/kit";
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  PermissionDeniedError,
  UnavailableError,
} from "@deai/kit/errors";
import {
  attestationId,
  dsseVerify,
  IN_TOTO_PAYLOAD_TYPE,
  parseSamplingAttestation,
  ProofError,
  samplingAttestationPayload,
  type DsseEnvelope,
  type SamplingAttestationPredicate,
} from "@deai/proofs";
import type { Kysely, Transaction } from "kysely";

import { recheckPredicate, voteVerdict } from "../domain/recheck.js";
import { slotStates } from "../domain/slot-states.js";
import { insertAttestation } from "../store/attestations.js";
import type { DaSamplerDb } from "../store/tables.js";
import { leafOf, type DatasetCatalog } from "./catalog.js";
import type { SamplerContext } from "./context.js";
import { envelopeFromProto, envelopeToProto } from "./envelopes.js";
import { noteSlotChange } from "./provider-availability.js";
import { recordSamples, sampleResult } from "./rounds.js";

/** A re-check statement's two variants, recomputed from the unavailable one a requester signed. */
interface RecheckPair {
  readonly unavailable: SamplingAttestationPredicate;
  readonly unavailableId: string;
  readonly available: SamplingAttestationPredicate;
  readonly availableId: string;
}

function pairOf(payload: Uint8Array): RecheckPair {
  const p = parseSamplingAttestation(payload);
  if (p.kind !== "recheck" || p.verdict !== "unavailable")
    throw new InvalidArgumentError("a re-check request must carry an unavailable re-check statement");
  const ref = {
    datasetId: p.datasetId,
    contentDigest: p.contentDigest,
    shardRoot: p.shardRoot,
    provider: p.provider,
    slot: p.slot,
    stripes: p.stripes,
  };
  const unavailable = recheckPredicate(ref, p.policy, p.trigger!, p.recheckedStripes!, "unavailable");
  const canonical = samplingAttestationPayload(unavailable);
  if (attestationId(canonical) !== attestationId(payload))
    throw new InvalidArgumentError("the re-check statement is not in canonical form");
  const available = recheckPredicate(ref, p.policy, p.trigger!, p.recheckedStripes!, "available");
  return {
    unavailable,
    unavailableId: attestationId(canonical),
    available,
    availableId: attestationId(samplingAttestationPayload(available)),
  };
}

/**
 * The quorum. A re-check request (another sampler's, or a local identity's) is answered by every
 * local identity but the requester: it re-reads the failed stripes once, with the deadline, plus a
 * control read elsewhere, and signs the statement of its verdict (or abstains). Votes are verified
 * and counted; `quorumThreshold` distinct known samplers on one statement form the attestation:
 * evidence when the verdict is unavailable. Only the requester's process anchors it.
 */
export class Quorum {
  constructor(
    private readonly c: SamplerContext,
    private readonly catalog: DatasetCatalog,
  ) {}

  /** Verifies a re-check request; throws a precise error for anything that is not one. */
  checkRequest(e: RecheckRequested): { envelope: DsseEnvelope; pair: RecheckPair } {
    const envelope = envelopeFromProto(e.envelope);
    if (!envelope) throw new InvalidArgumentError("a re-check request carries an envelope");
    if (!this.c.knownSamplers.includes(e.requesterId))
      throw new PermissionDeniedError(`re-check requested by unknown sampler ${e.requesterId}`);
    const v = verifyOne(envelope, e.requesterId);
    void v;
    const pair = pairOf(envelope.payload);
    if (pair.unavailableId !== e.recheckId)
      throw new InvalidArgumentError(`recheck_id ${e.recheckId} is not the statement's id ${pair.unavailableId}`);
    if (pair.unavailable.trigger!.sampler !== e.requesterId) throw new InvalidArgumentError("the trigger's sampler must be the requester");
    return { envelope, pair };
  }

  /** Handles a re-check request: records it, and every local identity other than the requester votes. */
  async onRequest(e: RecheckRequested): Promise<void> {
    const { envelope, pair } = this.checkRequest(e);
    const p = pair.unavailable;
    const ds = await this.catalog.get(p.datasetId);
    const now = this.c.clock.now();
    const local = this.c.identities.some((i) => i.id === e.requesterId);
    await this.c.db.transaction().execute(async (trx) => {
      await trx
        .insertInto("rechecks")
        .values({
          recheck_id: pair.unavailableId,
          available_id: pair.availableId,
          dataset_id: p.datasetId,
          slot: p.slot,
          provider_id: p.provider,
          requester_id: e.requesterId,
          payload: Buffer.from(envelope.payload),
          state: "pending",
          local_requester: local,
          created_at: now,
          closed_at: null,
        })
        .onConflict((oc) => oc.column("recheck_id").doNothing())
        .execute();
      // The requester's own vote (already recorded when the request is local).
      const own = await trx
        .selectFrom("votes")
        .select("sampler_id")
        .where("recheck_id", "=", pair.unavailableId)
        .where("sampler_id", "=", e.requesterId)
        .executeTakeFirst();
      if (!own) await this.addVote(trx, pair, e.requesterId, "unavailable", envelope.signatures[0]!.sig);
    });
    const placement = ds.placements[p.slot]!;
    const control = ds.placements.find((x) => x.slot !== p.slot && x.providerId !== placement.providerId);
    for (const voter of this.c.identities) {
      if (voter.id === e.requesterId) continue;
      const already = await this.c.db
        .selectFrom("votes")
        .select("attestation_id")
        .where("sampler_id", "=", voter.id)
        .where("recheck_id", "=", pair.unavailableId)
        .executeTakeFirst();
      if (already) continue;
      const samples = await Promise.all(
        p.recheckedStripes!.map((s) => this.c.reader.sample(placement.providerId, placement.key, s, ds.shardSize, leafOf(ds, s, p.slot))),
      );
      let controlOk = true;
      if (control) {
        const s = await this.c.reader.sample(
          control.providerId,
          control.key,
          p.recheckedStripes![0]!,
          ds.shardSize,
          leafOf(ds, p.recheckedStripes![0]!, control.slot),
        );
        controlOk = s.outcome === "ok" || s.outcome === "late";
      }
      for (const s of samples) this.c.metrics.samples.add(1, { outcome: s.outcome, purpose: "recheck" });
      const verdict = voteVerdict(
        samples.map((s) => s.outcome),
        controlOk,
      );
      await this.c.db.transaction().execute(async (trx) => {
        await recordSamples(trx, voter.id, ds, p.slot, "recheck", samples);
        if (!verdict) return;
        const predicate = verdict === "unavailable" ? pair.unavailable : pair.available;
        const payload = samplingAttestationPayload(predicate);
        const signed = voter.signStatement(payload);
        const id = attestationId(payload);
        await enqueueEvent(
          trx as unknown as Kysely<unknown>,
          "deai.da.recheck_voted",
          RecheckVotedSchema,
          create(RecheckVotedSchema, {
            eventId: `da/vote/${id}/${voter.id}`,
            occurredAt: timestampFromDate(this.c.clock.now()),
            recheckId: pair.unavailableId,
            attestationId: id,
            samplerId: voter.id,
            verdict: verdict === "unavailable" ? AttestationVerdict.UNAVAILABLE : AttestationVerdict.AVAILABLE,
            envelope: envelopeToProto(signed),
            results: samples.map((s) => sampleResult(voter.id, ds, p.slot, s)),
          }),
          `da/vote/${id}/${voter.id}`,
        );
      });
      if (!verdict)
        this.c.logger.warn({ voter: voter.id, recheck: pair.unavailableId }, "re-check gave a mixed or unconfirmable result: no vote");
    }
    this.c.outbox.kick();
  }

  /**
   * Verifies and counts one vote. Refusals are precise and change nothing: a vote with other than
   * one signature, by an unknown sampler, with a bad signature, on a statement that is neither
   * variant of the re-check, a second vote of one sampler, or a vote on a re-check already closed.
   */
  async acceptVote(e: RecheckVoted): Promise<{ formed?: string }> {
    const envelope = envelopeFromProto(e.envelope);
    if (!envelope) throw new InvalidArgumentError("a vote carries an envelope");
    if (!this.c.knownSamplers.includes(e.samplerId)) throw new PermissionDeniedError(`vote by unknown sampler ${e.samplerId}`);
    verifyOne(envelope, e.samplerId);
    const id = attestationId(envelope.payload);
    if (id !== e.attestationId) throw new InvalidArgumentError(`attestation_id ${e.attestationId} is not the statement's id ${id}`);
    const recheck = await this.c.db.selectFrom("rechecks").selectAll().where("recheck_id", "=", e.recheckId).executeTakeFirst();
    // The request may still be on its way (another subject): retried by redelivery.
    if (!recheck) throw new UnavailableError(`re-check ${e.recheckId} is not known yet`);
    const verdict = id === recheck.recheck_id ? "unavailable" : id === recheck.available_id ? "available" : undefined;
    if (!verdict) throw new InvalidArgumentError(`the vote's statement is neither variant of re-check ${e.recheckId}`);
    const pair = pairOf(recheck.payload);
    return this.c.db.transaction().execute(async (trx) => {
      const r = await this.addVote(trx, pair, e.samplerId, verdict, envelope.signatures[0]!.sig);
      return r;
    });
  }

  private async addVote(
    trx: Transaction<DaSamplerDb>,
    pair: RecheckPair,
    samplerId: string,
    verdict: "available" | "unavailable",
    sig: Uint8Array,
  ): Promise<{ formed?: string }> {
    const recheck = await trx
      .selectFrom("rechecks")
      .selectAll()
      .where("recheck_id", "=", pair.unavailableId)
      .forUpdate()
      .executeTakeFirstOrThrow();
    const prior = await trx
      .selectFrom("votes")
      .select(["verdict"])
      .where("recheck_id", "=", pair.unavailableId)
      .where("sampler_id", "=", samplerId)
      .executeTakeFirst();
    if (prior) {
      if (prior.verdict === verdict) throw new AlreadyExistsError(`sampler ${samplerId} already voted on re-check ${pair.unavailableId}`);
      throw new FailedPreconditionError(
        `sampler ${samplerId} already voted ${prior.verdict} on re-check ${pair.unavailableId}; it cannot vote ${verdict}`,
      );
    }
    const id = verdict === "unavailable" ? pair.unavailableId : pair.availableId;
    const now = this.c.clock.now();
    await trx
      .insertInto("votes")
      .values({
        attestation_id: id,
        recheck_id: pair.unavailableId,
        sampler_id: samplerId,
        verdict,
        sig: Buffer.from(sig),
        received_at: now,
      })
      .execute();
    if (recheck.state !== "pending") return {};
    const votes = await trx
      .selectFrom("votes")
      .select(["sampler_id", "sig"])
      .where("attestation_id", "=", id)
      .orderBy("sampler_id")
      .execute();
    if (votes.length < this.c.policy.quorumThreshold) return {};
    const predicate = verdict === "unavailable" ? pair.unavailable : pair.available;
    const payload = samplingAttestationPayload(predicate);
    const envelope: DsseEnvelope = {
      payloadType: IN_TOTO_PAYLOAD_TYPE,
      payload,
      signatures: votes.map((v) => ({ keyid: v.sampler_id, sig: v.sig })),
    };
    await insertAttestation(trx, {
      id,
      predicate,
      envelope,
      signers: votes.map((v) => v.sampler_id),
      evidence: verdict === "unavailable",
      anchorHere: recheck.local_requester,
      at: now,
    });
    await trx
      .updateTable("rechecks")
      .set({ state: verdict === "unavailable" ? "evidence" : "cleared", closed_at: now })
      .where("recheck_id", "=", pair.unavailableId)
      .execute();
    const slot = await trx
      .selectFrom("slot_states")
      .select("state")
      .where("dataset_id", "=", predicate.datasetId)
      .where("slot", "=", predicate.slot)
      .forUpdate()
      .executeTakeFirst();
    const to = verdict === "unavailable" ? "unavailable" : "available";
    if (slot && slot.state !== to && slotStates.canTransition(slot.state as "suspect", to)) {
      await trx
        .updateTable("slot_states")
        .set({ state: to })
        .where("dataset_id", "=", predicate.datasetId)
        .where("slot", "=", predicate.slot)
        .execute();
      const change = { providerId: predicate.provider, datasetId: predicate.datasetId, slot: predicate.slot, attestationId: id };
      await noteSlotChange(trx, this.c, change);
    }
    this.c.metrics.attestations.add(1, { kind: "recheck", verdict });
    this.c.metrics.confidence.record(predicate.confidence, { kind: "recheck" });
    this.c.logger.info({ attestation: id, verdict, signers: votes.length, provider: predicate.provider }, "quorum reached");
    return { formed: id };
  }

  /** Pending re-checks past the timeout expire without evidence. */
  async expire(): Promise<number> {
    const before = new Date(this.c.clock.nowMs() - this.c.recheckTimeoutMs);
    const r = await this.c.db
      .updateTable("rechecks")
      .set({ state: "expired", closed_at: this.c.clock.now() })
      .where("state", "=", "pending")
      .where("created_at", "<", before)
      .executeTakeFirst();
    return Number(r.numUpdatedRows);
  }
}

/** A vote (or request) carries exactly one signature, by the sampler it names, and it verifies. */
function verifyOne(envelope: DsseEnvelope, samplerId: string): void {
  if (envelope.signatures.length !== 1)
    throw new InvalidArgumentError(`a vote carries exactly one signature, got ${envelope.signatures.length}`);
  if (envelope.signatures[0]!.keyid !== samplerId)
    throw new InvalidArgumentError(`the vote is signed by ${envelope.signatures[0]!.keyid}, not ${samplerId}`);
  try {
    dsseVerify(envelope, { expectedPayloadType: IN_TOTO_PAYLOAD_TYPE });
  } catch (e) {
    if (e instanceof ProofError) throw new InvalidArgumentError(`vote by ${samplerId}: ${e.message}`);
    throw e;
  }
}
