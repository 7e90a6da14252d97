import { dsseToJson, type DsseEnvelope, type SamplingAttestationPredicate } from "@deai/proofs";
import type { Kysely, Transaction } from "kysely";

import type { DaSamplerDb } from "./tables.js";

type Db = Kysely<DaSamplerDb> | Transaction<DaSamplerDb>;

/** One stored attestation. */
export interface StoredAttestation {
  readonly id: string;
  readonly predicate: SamplingAttestationPredicate;
  readonly envelope: DsseEnvelope;
  readonly signers: readonly string[];
  readonly evidence: boolean;
  readonly ledgerIndex: bigint | undefined;
  readonly receipt: unknown;
  readonly createdAt: Date;
}

/** Inserts an attestation; false when one with the same id is already stored (nothing changes). */
export async function insertAttestation(
  db: Db,
  a: {
    id: string;
    predicate: SamplingAttestationPredicate;
    envelope: DsseEnvelope;
    signers: readonly string[];
    evidence: boolean;
    anchorHere: boolean;
    ledgerIndex?: bigint;
    receipt?: unknown;
    at: Date;
  },
): Promise<boolean> {
  const r = await db
    .insertInto("attestations")
    .values({
      attestation_id: a.id,
      kind: a.predicate.kind,
      verdict: a.predicate.verdict,
      evidence: a.evidence,
      dataset_id: a.predicate.datasetId,
      provider_id: a.predicate.provider,
      slot: a.predicate.slot,
      payload: Buffer.from(a.envelope.payload),
      envelope: JSON.stringify(dsseToJson(a.envelope)),
      signers: JSON.stringify(a.signers),
      confidence: a.predicate.confidence,
      issued_at: new Date(a.predicate.issuedAt),
      anchor_here: a.anchorHere,
      ledger_index: a.ledgerIndex ?? null,
      receipt: a.receipt === undefined ? null : JSON.stringify(a.receipt),
      refused: null,
      created_at: a.at,
    })
    .onConflict((oc) => oc.column("attestation_id").doNothing())
    .executeTakeFirst();
  return Number(r.numInsertedOrUpdatedRows ?? 0n) === 1;
}
