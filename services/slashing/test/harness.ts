// Test harness: real Postgres and NATS (test env), the real ledger process slash records are
// anchored in, an evidence world (samplers, operators, checkers, council) and the slashing
// configuration that trusts it, plus the contract's form of evidence.
import { create } from "@bufbuild/protobuf";

import { DsseEnvelopeSchema, type DsseEnvelope as DsseEnvelopeProto } from "@deai/contracts/deai/common/v1/common_pb";
import { SubmitEvidenceRequestSchema, type SubmitEvidenceRequest } from "@deai/contracts/deai/slashing/v1/slashing_pb";
import { actorKeyFromSeed, type ActorKey } from "@deai/kit";
import { generateNoteKey, parseVerifierKey, type DsseEnvelope, type EvidenceInput, type NoteVerifier } from "@deai/proofs";
import { createTestEnv, spawnService, type ServiceProcess, type TestEnv } from "@deai/testkit";

import { newSigner, newWorld, type Signer, type World } from "./evidence-factory.js";

export const ORIGIN = "ledger.slashing-test/log";
const ledgerMain = new URL("../../ledger/dist/main.js", import.meta.url).pathname;
export const slashingMain = new URL("../dist/main.js", import.meta.url).pathname;

export interface SlashHarness {
  readonly env: TestEnv;
  readonly ledger: ServiceProcess;
  readonly ledgerUrl: string;
  readonly logKey: string;
  readonly verifier: NoteVerifier;
  readonly world: World;
  readonly council: Signer[];
  /** Environment of a slashing process (or config source) trusting the world; `overrides` win. */
  vars(overrides?: Record<string, string>): Record<string, string>;
  close(): Promise<void>;
}

export async function startSlashHarness(label: string, o: { natsUrl?: string } = {}): Promise<SlashHarness> {
  const env = await createTestEnv(label);
  const keys = generateNoteKey(ORIGIN);
  const ledger = await spawnService(
    ledgerMain,
    env.vars({ LEDGER_ORIGIN: ORIGIN, LEDGER_SIGNING_KEY: keys.signerKey, LEDGER_CHECKPOINT_INTERVAL_MS: "100" }),
    { timeoutMs: 90_000 },
  );
  const world = newWorld();
  const council = [newSigner(), newSigner()];
  const ledgerUrl = `http://127.0.0.1:${ledger.port}`;
  return {
    env,
    ledger,
    ledgerUrl,
    logKey: keys.verifierKey,
    verifier: parseVerifierKey(keys.verifierKey),
    world,
    council,
    vars: (overrides = {}) =>
      env.vars({
        ...(o.natsUrl ? { NATS_URL: o.natsUrl } : {}),
        SLASHING_SAMPLERS: world.trust.samplers.join(","),
        SLASHING_QUORUM_THRESHOLD: String(world.trust.quorumThreshold),
        SLASHING_OPERATORS: world.trust.operators.join(","),
        SLASHING_CHECKERS: world.trust.checkers.join(","),
        SLASHING_COUNTERSIGNERS: world.trust.countersigners.join(","),
        SLASHING_COUNCIL: council.map((c) => c.keyid).join(","),
        SLASHING_VETO_THRESHOLD: "1",
        SLASHING_MIN_STAKE: "1000",
        // Short timing that still satisfies the rule: 7200 ≥ 3600 + 60 + 60.
        SLASHING_EVIDENCE_MAX_AGE_S: "3600",
        SLASHING_VETO_WINDOW_S: "60",
        SLASHING_SAMPLER_DETECTION_WINDOW_S: "60",
        SLASHING_UNBONDING_DELAY_S: "7200",
        SLASHING_LEDGER_URL: ledgerUrl,
        SLASHING_LEDGER_LOG_KEY: keys.verifierKey,
        // The evidence factory's attestations use made-up challenge seeds (no sampler read this
        // ledger): checking them against it is challenge-seed.test.ts's subject, off here.
        SLASHING_CHECK_CHALLENGE_SEEDS: "false",
        SLASHING_ANCHOR_INTERVAL_MS: "200",
        SLASHING_TICK_MS: "200",
        ...overrides,
      }),
    close: async () => {
      ledger.kill("SIGKILL");
      await ledger.exited;
      await env.close();
    },
  };
}

/** The actor key (request signer) of an evidence-factory signer: the same Ed25519 key. */
export function actorOf(s: Signer): ActorKey {
  return actorKeyFromSeed(Buffer.from(s.seed).toString("base64url"));
}

export function envelopeProto(e: DsseEnvelope): DsseEnvelopeProto {
  return create(DsseEnvelopeSchema, {
    payloadType: e.payloadType,
    payload: e.payload,
    signatures: e.signatures.map((s) => ({ keyid: s.keyid, sig: s.sig })),
  });
}

/** SubmitEvidenceRequest of evidence. */
export function submitRequest(e: EvidenceInput): SubmitEvidenceRequest {
  switch (e.kind) {
    case "unavailability":
      return create(SubmitEvidenceRequestSchema, {
        evidence: { case: "unavailability", value: { attestation: envelopeProto(e.attestation) } },
      });
    case "equivocation":
      return create(SubmitEvidenceRequestSchema, {
        evidence: { case: "equivocation", value: { first: envelopeProto(e.first), second: envelopeProto(e.second) } },
      });
    case "lease-breach":
      return create(SubmitEvidenceRequestSchema, {
        evidence: { case: "leaseBreach", value: { leaseId: e.leaseId, attestations: e.attestations.map(envelopeProto) } },
      });
    case "invalid-contribution":
      return create(SubmitEvidenceRequestSchema, {
        evidence: {
          case: "invalidContribution",
          value: { jobId: e.jobId, contribution: envelopeProto(e.contribution), spotCheck: envelopeProto(e.spotCheck) },
        },
      });
  }
}
