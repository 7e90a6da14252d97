import { dsseSign, ed25519DsseSigner } from "./dsse.js";
import { hexEncode } from "./encoding.js";
import { IN_TOTO_PAYLOAD_TYPE } from "./in-toto.js";
import { challengeStripes, confidenceOf } from "./sampling.js";
import {
  applyOutcomes,
  attestationId,
  computeReputation,
  parseSamplingAttestation,
  samplingAttestationPayload,
  verifySamplingAttestation,
  type SamplingAttestationPredicate,
} from "./sampling-attestation.js";

const signers = [1, 2, 3, 4].map((n) => ed25519DsseSigner(new Uint8Array(32).fill(n)));
const [a, b, c, stranger] = signers as [(typeof signers)[0], (typeof signers)[0], (typeof signers)[0], (typeof signers)[0]];
const known = { samplers: [a.keyid, b.keyid, c.keyid], quorumThreshold: 2 };
const shardRoot = hexEncode(new Uint8Array(32).fill(5));
const checkpointRoot = hexEncode(new Uint8Array(32).fill(6));
const policy = {
  missingFraction: 0.01,
  epsilon: 1e-6,
  windowMs: 86_400_000,
  roundIntervalMs: 600_000,
  samplers: 3,
  auditBudget: 1,
  deadlineMs: 2000,
  quorumThreshold: 2,
};

function roundsPredicate(failures: { stripe: number; outcome: "missing" }[] = []): SamplingAttestationPredicate {
  const rounds = [10, 11].map((round, i) => ({
    round,
    checkpointSize: 7 + i,
    checkpointRoot,
    samples: 3,
    failures: i === 1 ? failures : [],
  }));
  return {
    kind: "rounds",
    datasetId: "ds1",
    contentDigest: hexEncode(new Uint8Array(32).fill(1)),
    shardRoot,
    provider: "p0",
    slot: 2,
    stripes: 50,
    policy,
    verdict: failures.length ? "unavailable" : "available",
    confidence: confidenceOf(50, 0.01, [3, 3]),
    samplesOk: 6 - failures.length,
    samplesFailed: failures.length,
    issuedAt: "2026-01-01T00:10:00.000Z",
    sampler: a.keyid,
    rounds,
  };
}

function recheckPredicate(verdict: "available" | "unavailable"): SamplingAttestationPredicate {
  return {
    ...roundsPredicate(),
    kind: "recheck",
    sampler: undefined,
    rounds: undefined,
    verdict,
    samplesOk: verdict === "available" ? 1 : 0,
    samplesFailed: verdict === "unavailable" ? 1 : 0,
    trigger: {
      sampler: a.keyid,
      round: 11,
      checkpointSize: 8,
      checkpointRoot,
      samples: 3,
      stripe: 4,
      outcome: "missing",
      sampledAt: "2026-01-01T00:10:00.000Z",
    },
    recheckedStripes: [4],
    issuedAt: "2026-01-01T00:10:00.000Z",
  };
}

const envelopeOf = (p: SamplingAttestationPredicate, by: typeof signers) =>
  dsseSign(IN_TOTO_PAYLOAD_TYPE, samplingAttestationPayload(JSON.parse(JSON.stringify(p))), by);

describe("sampling attestation", () => {
  it("round-trips a rounds attestation and recomputes its stripes", () => {
    const v = verifySamplingAttestation(envelopeOf(roundsPredicate(), [a]), known);
    expect(v.evidence).toBe(false);
    expect(v.signers).toEqual([a.keyid]);
    expect(v.predicate.rounds).toHaveLength(2);
  });
  it("refuses a failed stripe that was not due in its round (cherry-picking)", () => {
    const due = challengeStripes({
      seed: { checkpointSize: 8, checkpointRoot: new Uint8Array(32).fill(6) },
      samplerId: a.keyid,
      shardRoot: new Uint8Array(32).fill(5),
      slot: 2,
      round: 11,
      stripes: 50,
      samples: 3,
    });
    const ok = roundsPredicate([{ stripe: due[0]!, outcome: "missing" }]);
    expect(verifySamplingAttestation(envelopeOf(ok, [a]), known).predicate.samplesFailed).toBe(1);
    const notDue = Array.from({ length: 50 }, (_, i) => i).find((s) => !due.includes(s))!;
    expect(() => verifySamplingAttestation(envelopeOf(roundsPredicate([{ stripe: notDue, outcome: "missing" }]), [a]), known)).toThrow(
      /was not due/,
    );
  });
  it("refuses wrong counts, a wrong confidence, and a sampler that did not sign", () => {
    expect(() => parseSamplingAttestation(samplingAttestationPayload({ ...roundsPredicate(), samplesOk: 5 }))).toThrow(/samplesOk/);
    expect(() => parseSamplingAttestation(samplingAttestationPayload({ ...roundsPredicate(), confidence: 0.5 }))).toThrow(/confidence/);
    expect(() => verifySamplingAttestation(envelopeOf(roundsPredicate(), [b]), known)).toThrow(/signed by its sampler/);
  });
  it("needs a quorum of distinct known samplers for evidence", () => {
    const p = recheckPredicate("unavailable");
    const two = verifySamplingAttestation(envelopeOf(p, [a, b]), known);
    expect(two.evidence).toBe(true);
    expect(() => verifySamplingAttestation(envelopeOf(p, [a]), known)).toThrow(/needs 2 distinct/);
    // One key twice is one signer.
    expect(() => verifySamplingAttestation(envelopeOf(p, [a, a]), known)).toThrow(/needs 2 distinct/);
    expect(() => verifySamplingAttestation(envelopeOf(p, [a, stranger]), known)).toThrow(/unknown sampler/);
    const forged = envelopeOf(p, [a, b]);
    const bad = { ...forged, signatures: [forged.signatures[0]!, { keyid: b.keyid, sig: forged.signatures[0]!.sig }] };
    expect(() => verifySamplingAttestation(bad, known)).toThrow(/does not verify/);
  });
  it("gives every sampler the same bytes for the same re-check", () => {
    const x = samplingAttestationPayload(recheckPredicate("unavailable"));
    const y = samplingAttestationPayload(recheckPredicate("unavailable"));
    expect(attestationId(x)).toBe(attestationId(y));
    expect(attestationId(samplingAttestationPayload(recheckPredicate("available")))).not.toBe(attestationId(x));
  });
});

describe("reputation", () => {
  it("applies outcomes one at a time in closed form", () => {
    let step = { alpha: 1, beta: 1 };
    for (let i = 0; i < 5; i++) step = { alpha: 0.9 * step.alpha + 1, beta: 0.9 * step.beta };
    for (let i = 0; i < 2; i++) step = { alpha: 0.9 * step.alpha, beta: 0.9 * step.beta + 1 };
    const closed = applyOutcomes({ alpha: 1, beta: 1 }, 5, 2, 0.9);
    expect(closed.alpha).toBeCloseTo(step.alpha, 12);
    expect(closed.beta).toBeCloseTo(step.beta, 12);
  });
  it("counts passes from rounds, failures only from evidence, each attestation once", () => {
    const rounds = verifySamplingAttestation(envelopeOf(roundsPredicate(), [a]), known);
    const evidence = verifySamplingAttestation(envelopeOf(recheckPredicate("unavailable"), [a, b]), known);
    const cleared = verifySamplingAttestation(envelopeOf(recheckPredicate("available"), [b, c]), known);
    const rep = computeReputation([rounds, rounds, evidence, cleared, evidence], { lambda: 0.99, priorAlpha: 1, priorBeta: 1 });
    const want = applyOutcomes(applyOutcomes({ alpha: 1, beta: 1 }, 6, 0, 0.99), 0, 1, 0.99);
    const got = rep.get("p0")!;
    expect(got.attestations).toBe(2);
    expect(got.alpha).toBeCloseTo(want.alpha, 12);
    expect(got.beta).toBeCloseTo(want.beta, 12);
    expect(got.mean).toBeCloseTo(want.alpha / (want.alpha + want.beta), 12);
  });
});
