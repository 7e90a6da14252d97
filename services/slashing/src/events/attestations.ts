// Unavailability evidence from the DA sampler: every `deai.da.attestation_issued` with verdict
// UNAVAILABLE is submitted as evidence, once per event (consumeOnce), and idempotent anyway by the
// evidence id (a redelivery after a crash between the evidence commit and the inbox commit finds
// the evidence and changes nothing). The evidence is verified like any other: known samplers
// (SLASHING_SAMPLERS), the quorum, every signature, the challenge derivation. A refusal that can
// never succeed (does not verify, expired, tombstoned) is acked, counted and logged; anything else
// (the database) is retried by redelivery.
import { AttestationIssuedSchema } from "@deai/contracts/deai/events/v1/da_pb";
import { AttestationVerdict } from "@deai/contracts/deai/da/v1/da_pb";
import { consumeOnce, DomainError, type Clock, type EventBus, type Logger } from "@deai/kit";
import { parseSamplingAttestation } from "@deai/proofs";
import type { Kysely } from "kysely";

import type { Slashing } from "../app/slashing.js";

export const ATTESTATIONS_DURABLE = "slashing-da-attestations";

function refusedForGood(e: unknown): e is DomainError {
  return e instanceof DomainError && ["invalid_argument", "permission_denied", "failed_precondition"].includes(e.kind);
}

export async function consumeAttestations(o: {
  bus: EventBus;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  db: Kysely<any>;
  clock: Clock;
  logger: Logger;
  app: Slashing;
  /** Counts refusals by reason. */
  refused?: (reason: string) => void;
}): Promise<void> {
  await o.bus.ensureStream("da");
  await consumeOnce(o.bus, {
    domain: "da",
    durable: ATTESTATIONS_DURABLE,
    subject: "deai.da.attestation_issued",
    schema: AttestationIssuedSchema,
    db: o.db,
    clock: o.clock,
    handler: async (e) => {
      if (e.verdict !== AttestationVerdict.UNAVAILABLE) return;
      const env = e.attestation?.envelope;
      if (!env) {
        o.logger.warn({ attestation: e.attestationId }, "attestation_issued without an envelope: ignored");
        o.refused?.("no-envelope");
        return;
      }
      const attestation = { payloadType: env.payloadType, payload: env.payload, signatures: env.signatures.map((s) => ({ ...s })) };
      // The reporter (rewarded when the slash applies) is the sampler whose round found the fault.
      let reporter: string;
      try {
        reporter = parseSamplingAttestation(attestation.payload).trigger?.sampler ?? env.signatures[0]?.keyid ?? "da-sampler";
      } catch {
        reporter = env.signatures[0]?.keyid ?? "da-sampler";
      }
      // Its own transaction, not the inbox's: a refusal must leave nothing behind (the app rolls
      // its transaction back), and the evidence id makes a second run after a crash a no-op.
      try {
        const r = await o.app.submitEvidence({ kind: "unavailability", attestation }, reporter);
        o.logger.info(
          { attestation: e.attestationId, ...r },
          r.duplicate ? "attestation already submitted" : "attestation submitted as evidence",
        );
      } catch (err) {
        if (!refusedForGood(err)) throw err;
        o.refused?.(err.kind);
        o.logger.warn({ err, attestation: e.attestationId, provider: e.providerId }, "attestation refused as evidence");
      }
    },
  });
}
