// Builds real, signed evidence of every kind (and forgeries of it) for the slashing tests, the
// property test and the benchmark: samplers, operators, checkers and providers are Ed25519 keys.
import { randomBytes } from "node:crypto";

import {
  challengeStripes,
  contributionPayload,
  dsseSign,
  ed25519DsseSigner,
  hexEncode,
  IN_TOTO_PAYLOAD_TYPE,
  leaseBreachPayload,
  samplingAttestationPayload,
  spotCheckPayload,
  statementBytes,
  statementOf,
  PredicateTypes,
  type DsseEnvelope,
  type DsseSigner,
  type EvidenceInput,
  type EvidenceKindName,
  type EvidenceTrust,
  type SamplingAttestationPredicate,
} from "@deai/proofs";

export interface Signer extends DsseSigner {
  readonly seed: Uint8Array;
}

export function newSigner(): Signer {
  const seed = new Uint8Array(randomBytes(32));
  return { ...ed25519DsseSigner(seed), seed };
}

export interface World {
  readonly samplers: Signer[];
  readonly operators: Signer[];
  readonly checkers: Signer[];
  readonly tenant: Signer;
  readonly trust: EvidenceTrust;
}

export function newWorld(): World {
  const samplers = [newSigner(), newSigner(), newSigner()];
  const operators = [newSigner()];
  const checkers = [newSigner()];
  const tenant = newSigner();
  return {
    samplers,
    operators,
    checkers,
    tenant,
    trust: {
      samplers: samplers.map((s) => s.keyid),
      quorumThreshold: 2,
      operators: operators.map((s) => s.keyid),
      countersigners: [tenant.keyid],
      checkers: checkers.map((s) => s.keyid),
      minMissedHeartbeats: 3,
    },
  };
}

const iso = (ms: number): string => new Date(ms).toISOString();
const sign = (payload: Uint8Array, by: readonly DsseSigner[]): DsseEnvelope => dsseSign(IN_TOTO_PAYLOAD_TYPE, payload, by);

/** A quorum re-check attestation that `provider`'s slot is unavailable, at `atMs`, signed by `signers` samplers. */
export function unavailability(w: World, provider: string, atMs: number, opts: { signers?: number; variant?: number } = {}): EvidenceInput {
  const shardRoot = new Uint8Array(32).fill(5);
  const checkpointRoot = new Uint8Array(32).fill(6);
  const trigger = w.samplers[0]!;
  const stripes = 50;
  const round = Math.floor(atMs / 60_000);
  const stripe = challengeStripes({
    seed: { checkpointSize: 8, checkpointRoot },
    samplerId: trigger.keyid,
    shardRoot,
    slot: 2,
    round,
    stripes,
    samples: 3,
  })[0]!;
  const p: SamplingAttestationPredicate = {
    kind: "recheck",
    datasetId: `ds-${opts.variant ?? 0}`,
    contentDigest: "ab".repeat(32),
    shardRoot: hexEncode(shardRoot),
    provider,
    slot: 2,
    stripes,
    policy: {
      missingFraction: 0.1,
      epsilon: 0.01,
      windowMs: 3_600_000,
      roundIntervalMs: 60_000,
      samplers: 3,
      auditBudget: 1,
      deadlineMs: 1000,
      quorumThreshold: 2,
    },
    verdict: "unavailable",
    confidence: 0.5,
    samplesOk: 0,
    samplesFailed: 1,
    issuedAt: iso(atMs),
    trigger: {
      sampler: trigger.keyid,
      round,
      checkpointSize: 8,
      checkpointRoot: hexEncode(checkpointRoot),
      samples: 3,
      stripe,
      outcome: "missing",
      sampledAt: iso(atMs),
    },
    recheckedStripes: [stripe],
  };
  return {
    kind: "unavailability",
    attestation: sign(samplingAttestationPayload(JSON.parse(JSON.stringify(p))), w.samplers.slice(0, opts.signers ?? 3)),
  };
}

/** Two different usage reports for one lease epoch, both signed by the provider. */
export function equivocation(provider: Signer, atMs: number, epoch = 1): EvidenceInput {
  const report = (units: number) =>
    statementBytes(
      statementOf(PredicateTypes.usageReport, [{ name: `lease/l-${epoch}`, digest: { sha256: "cd".repeat(32) } }], {
        leaseId: `lease-${epoch}`,
        epoch,
        provider: provider.keyid,
        units,
        issuedAt: iso(atMs),
      }),
    );
  return { kind: "equivocation", first: sign(report(10), [provider]), second: sign(report(99), [provider]) };
}

export function leaseBreach(w: World, provider: string, atMs: number, leaseId = "lease-1"): EvidenceInput {
  const payload = leaseBreachPayload({
    leaseId,
    provider,
    operator: w.operators[0]!.keyid,
    missedFrom: iso(atMs - 60_000),
    missedUntil: iso(atMs),
    heartbeatIntervalMs: 10_000,
    missedHeartbeats: 5,
  });
  return { kind: "lease-breach", leaseId, attestations: [sign(payload, [w.operators[0]!, w.tenant])] };
}

export function invalidContribution(w: World, provider: Signer, atMs: number, round = 1): EvidenceInput {
  const c = contributionPayload({
    jobId: "job-1",
    round,
    group: 0,
    provider: provider.keyid,
    updateDigest: "11".repeat(32),
    issuedAt: iso(atMs),
  });
  const s = spotCheckPayload({
    jobId: "job-1",
    round,
    group: 0,
    provider: provider.keyid,
    checker: w.checkers[0]!.keyid,
    contribution: c,
    recomputedDigest: "22".repeat(32),
    issuedAt: iso(atMs + 1000),
  });
  return { kind: "invalid-contribution", jobId: "job-1", contribution: sign(c, [provider]), spotCheck: sign(s, [w.checkers[0]!]) };
}

/** Evidence of `kind` against `provider` at `atMs`. */
export function evidenceOf(w: World, kind: EvidenceKindName, provider: Signer, atMs: number, variant = 0): EvidenceInput {
  switch (kind) {
    case "unavailability":
      return unavailability(w, provider.keyid, atMs, { variant });
    case "equivocation":
      return equivocation(provider, atMs, variant + 1);
    case "lease-breach":
      return leaseBreach(w, provider.keyid, atMs, `lease-${variant}`);
    case "invalid-contribution":
      return invalidContribution(w, provider, atMs, variant + 1);
  }
}

/** A forgery of valid evidence: one flipped signature bit, or a signature by a stranger. */
export function forge(e: EvidenceInput, how: "flip" | "stranger"): EvidenceInput {
  const spoil = (env: DsseEnvelope): DsseEnvelope => {
    if (how === "stranger") return sign(env.payload, [newSigner()]);
    const sig = new Uint8Array(env.signatures[0]!.sig);
    sig[7] = sig[7]! ^ 1;
    return { ...env, signatures: [{ keyid: env.signatures[0]!.keyid, sig }, ...env.signatures.slice(1)] };
  };
  switch (e.kind) {
    case "unavailability":
      return { ...e, attestation: spoil(e.attestation) };
    case "equivocation":
      return { ...e, second: spoil(e.second) };
    case "lease-breach":
      return { ...e, attestations: [spoil(e.attestations[0]!)] };
    case "invalid-contribution":
      return { ...e, contribution: spoil(e.contribution) };
  }
}
