import { create, fromJson, toJson } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  AttestationVerdict,
  QuorumAttestationSchema,
  ReputationScoreSchema,
  type QuorumAttestation,
} from "@deai/contracts/deai/da/v1/da_pb";
import { AttestationIssuedSchema, ReputationUpdatedSchema, type AttestationIssued } from "@deai/contracts/deai/events/v1/da_pb";
import { ReceiptSchema } from "@deai/contracts/deai/ledger/v1/ledger_pb";
import { AnchorRefusedError, enqueueEvent, type LedgerAnchoring } from "@deai/kit";
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from "@deai/kit/errors";
import {
  computeReputation,
  dsseFromJson,
  parseSamplingAttestation,
  ProofError,
  verifySamplingAttestation,
  type Reputation,
} from "@deai/proofs";
import type { Kysely } from "kysely";

import { insertAttestation } from "../store/attestations.js";
import type { AttestationsTable } from "../store/tables.js";
import type { SamplerContext } from "./context.js";
import { envelopeFromProto, envelopeToProto } from "./envelopes.js";

/** Appends in flight from one anchoring run. */
const ANCHOR_CONCURRENCY = 8;

type Row = { [K in keyof AttestationsTable]: AttestationsTable[K] extends { __select__: infer S } ? S : AttestationsTable[K] };

/** The contract's form of a stored attestation. `rounds` attestations are never evidence: their verdict is AVAILABLE or UNSPECIFIED. */
export function toQuorumAttestation(r: {
  attestation_id: string;
  kind: string;
  verdict: string;
  dataset_id: string;
  provider_id: string;
  slot: number;
  payload: Buffer;
  envelope: unknown;
  signers: unknown;
  issued_at: Date;
  receipt: unknown;
}): QuorumAttestation {
  const p = parseSamplingAttestation(r.payload);
  const failed =
    p.kind === "rounds"
      ? p.rounds!.flatMap((x) => x.failures.map((f) => f.stripe))
      : p.verdict === "unavailable"
        ? [...p.recheckedStripes!]
        : [];
  const sampled = p.kind === "rounds" ? [] : [...p.recheckedStripes!];
  const verdict =
    p.kind === "rounds"
      ? p.verdict === "available"
        ? AttestationVerdict.AVAILABLE
        : AttestationVerdict.UNSPECIFIED
      : p.verdict === "unavailable"
        ? AttestationVerdict.UNAVAILABLE
        : AttestationVerdict.AVAILABLE;
  return create(QuorumAttestationSchema, {
    attestationId: r.attestation_id,
    datasetId: r.dataset_id,
    contentDigest: { algorithm: "sha256", hex: p.contentDigest },
    providerId: r.provider_id,
    slot: r.slot,
    stripesSampled: sampled.map(BigInt),
    failedStripes: failed.map(BigInt),
    failures: p.samplesFailed,
    verdict,
    quorumThreshold: p.kind === "rounds" ? 1 : p.policy.quorumThreshold,
    signers: r.signers as string[],
    envelope: envelopeToProto(dsseFromJson(r.envelope)),
    issuedAt: timestampFromDate(r.issued_at),
    ...(r.receipt ? { receipt: fromJson(ReceiptSchema, r.receipt as never) } : {}),
  });
}

/**
 * Attestations: anchoring this process's own (a scheduled loop; the ledger's append is idempotent,
 * so a crash between append and commit only appends the same entry again), receiving other
 * processes' (verified, refused precisely otherwise), and the reputation computed from the
 * anchored ones in ledger order, as `deai da reputation` does from the ledger.
 */
export class Attestations {
  constructor(
    private readonly c: SamplerContext,
    private readonly ledger: LedgerAnchoring | undefined,
  ) {}

  /** Anchors up to `limit` pending attestations; returns how many were anchored. */
  async anchorPending(limit = 40): Promise<number> {
    const ledger = this.ledger;
    if (!ledger) return 0;
    const rows = await this.c.db
      .selectFrom("attestations")
      .selectAll()
      .where("ledger_index", "is", null)
      .where("anchor_here", "=", true)
      .where("refused", "is", null)
      .orderBy("created_at")
      .limit(limit)
      .execute();
    let n = 0;
    let stop = false;
    // Several appends in flight: each waits for the checkpoint that integrates it, and the
    // ledger commits concurrent appends together; one at a time falls behind busy rounds.
    const anchorOne = async (r: (typeof rows)[number]): Promise<void> => {
      if (stop) return;
      const envelope = dsseFromJson(r.envelope);
      let anchored;
      try {
        anchored = await ledger.anchor(envelopeToProto(envelope));
      } catch (e) {
        if (e instanceof AnchorRefusedError) {
          await this.c.db.updateTable("attestations").set({ refused: e.message }).where("attestation_id", "=", r.attestation_id).execute();
          this.c.logger.error({ err: e, attestation: r.attestation_id }, "the ledger refused an attestation");
          return;
        }
        if (!stop) this.c.logger.warn({ err: e }, "anchoring attestations: the ledger is not taking entries; the next run retries");
        stop = true;
        return;
      }
      await this.c.db.transaction().execute(async (trx) => {
        const receipt = toJson(ReceiptSchema, anchored.receipt);
        const u = await trx
          .updateTable("attestations")
          .set({ ledger_index: anchored.index, receipt: JSON.stringify(receipt) })
          .where("attestation_id", "=", r.attestation_id)
          .where("ledger_index", "is", null)
          .executeTakeFirst();
        if (Number(u.numUpdatedRows) !== 1) return;
        const qa = toQuorumAttestation({ ...r, receipt });
        const eventId = `da/attestation/${r.attestation_id}`;
        await enqueueEvent(
          trx as unknown as Kysely<unknown>,
          "deai.da.attestation_issued",
          AttestationIssuedSchema,
          create(AttestationIssuedSchema, {
            eventId,
            occurredAt: timestampFromDate(this.c.clock.now()),
            attestationId: r.attestation_id,
            providerId: r.provider_id,
            datasetId: r.dataset_id,
            slot: r.slot,
            verdict: qa.verdict,
            attestation: qa,
          }),
          eventId,
        );
        const rep = await this.reputationIn(trx as unknown as Kysely<unknown>, r.provider_id);
        const at = this.c.clock.now();
        const repId = `da/reputation/${r.provider_id}/${at.getTime()}/${r.attestation_id.slice(0, 16)}`;
        await enqueueEvent(
          trx as unknown as Kysely<unknown>,
          "deai.da.reputation_updated",
          ReputationUpdatedSchema,
          create(ReputationUpdatedSchema, {
            eventId: repId,
            occurredAt: timestampFromDate(at),
            providerId: r.provider_id,
            availability: rep.mean,
            reputation: this.scoreOf(rep, at),
          }),
          repId,
        );
      });
      n++;
    };
    for (let i = 0; i < rows.length && !stop; i += ANCHOR_CONCURRENCY)
      await Promise.all(rows.slice(i, i + ANCHOR_CONCURRENCY).map(anchorOne));
    if (n > 0) this.c.outbox.kick();
    return n;
  }

  /**
   * Takes an attestation another sampler process anchored (deai.da.attestation_issued). Refused,
   * with nothing stored: a forged or unknown signer, a re-check short of the quorum, no receipt;
   * an attestation already stored is AlreadyExists.
   */
  async accept(e: AttestationIssued): Promise<void> {
    const qa = e.attestation;
    const envelope = envelopeFromProto(qa?.envelope);
    if (!qa || !envelope) throw new InvalidArgumentError("attestation_issued carries no attestation envelope");
    let v;
    try {
      v = verifySamplingAttestation(envelope, { samplers: this.c.knownSamplers, quorumThreshold: this.c.policy.quorumThreshold });
    } catch (err) {
      if (err instanceof ProofError)
        throw new InvalidArgumentError(`attestation ${e.attestationId} refused: ${err.message}`, { code: err.code });
      throw err;
    }
    if (v.id !== e.attestationId) throw new InvalidArgumentError(`attestation_id ${e.attestationId} is not the envelope's id ${v.id}`);
    if (!qa.receipt) throw new InvalidArgumentError(`attestation ${v.id} has no ledger receipt`);
    const stored = await insertAttestation(this.c.db, {
      id: v.id,
      predicate: v.predicate,
      envelope,
      signers: v.signers,
      evidence: v.evidence,
      anchorHere: false,
      ledgerIndex: qa.receipt.index,
      receipt: toJson(ReceiptSchema, qa.receipt),
      at: this.c.clock.now(),
    });
    if (!stored) throw new AlreadyExistsError(`attestation ${v.id} is already recorded`);
  }

  async get(id: string): Promise<QuorumAttestation> {
    if (!/^[0-9a-f]{64}$/.test(id)) throw new InvalidArgumentError("attestation_id must be 64 lowercase hex characters");
    const r = await this.c.db.selectFrom("attestations").selectAll().where("attestation_id", "=", id).executeTakeFirst();
    if (!r) throw new NotFoundError(`attestation ${id} not found`);
    return toQuorumAttestation(r);
  }

  /** Newest first; the page token is the offset. */
  async list(f: { providerId: string; datasetId: string; verdict: AttestationVerdict; pageSize: number; pageToken: string }) {
    const size = Math.min(Math.max(f.pageSize || 50, 1), 500);
    if (f.pageToken !== "" && !/^(0|[1-9]\d{0,8})$/.test(f.pageToken))
      throw new InvalidArgumentError("page_token is not one this service issued");
    const offset = f.pageToken === "" ? 0 : Number(f.pageToken);
    let q = this.c.db.selectFrom("attestations").selectAll();
    if (f.providerId) q = q.where("provider_id", "=", f.providerId);
    if (f.datasetId) q = q.where("dataset_id", "=", f.datasetId);
    if (f.verdict === AttestationVerdict.UNAVAILABLE) q = q.where("evidence", "=", true);
    else if (f.verdict === AttestationVerdict.AVAILABLE) q = q.where("verdict", "=", "available");
    const rows = await q
      .orderBy("issued_at", "desc")
      .orderBy("attestation_id")
      .limit(size + 1)
      .offset(offset)
      .execute();
    return {
      attestations: rows.slice(0, size).map((r) => toQuorumAttestation(r as Row)),
      nextPageToken: rows.length > size ? String(offset + size) : "",
    };
  }

  /**
   * A provider's reputation from the anchored attestations, in ledger order; with `asOfTreeSize`
   * only those at ledger indexes below it (the entries of the checkpoint of that size), so a
   * verifier that scanned that checkpoint recomputes exactly this. `treeSize` is the size scored at.
   */
  reputation(providerId: string, asOfTreeSize?: bigint): Promise<Reputation & { treeSize: bigint }> {
    return this.reputationIn(this.c.db as unknown as Kysely<unknown>, providerId, asOfTreeSize);
  }

  private async reputationIn(db: Kysely<unknown>, providerId: string, asOfTreeSize?: bigint): Promise<Reputation & { treeSize: bigint }> {
    let q = (db as unknown as SamplerContext["db"])
      .selectFrom("attestations")
      .select(["attestation_id", "payload", "evidence", "ledger_index"])
      .where("provider_id", "=", providerId)
      .where("ledger_index", "is not", null);
    if (asOfTreeSize !== undefined) q = q.where("ledger_index", "<", asOfTreeSize);
    const rows = await q.orderBy("ledger_index").execute();
    const rep = computeReputation(
      rows.map((r) => ({ id: r.attestation_id, predicate: parseSamplingAttestation(r.payload), evidence: r.evidence })),
      { lambda: this.c.reputationLambda, priorAlpha: 1, priorBeta: 1 },
    ).get(providerId);
    const last = rows[rows.length - 1]?.ledger_index;
    const treeSize = asOfTreeSize ?? (last === undefined || last === null ? 0n : BigInt(last) + 1n);
    return { ...(rep ?? { alpha: 1, beta: 1, mean: 0.5, attestations: 0 }), treeSize };
  }

  scoreOf(rep: Reputation, at: Date) {
    return create(ReputationScoreSchema, {
      alpha: rep.alpha,
      beta: rep.beta,
      forgettingLambda: this.c.reputationLambda,
      mean: rep.mean,
      updatedAt: timestampFromDate(at),
    });
  }
}
