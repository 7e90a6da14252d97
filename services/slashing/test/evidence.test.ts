// Every evidence verifier on real signed statements: valid evidence of each kind verifies and
// names its provider; forgeries and malformed variants are refused with a precise reason.
import { dsseSign, evidenceId, IN_TOTO_PAYLOAD_TYPE, usageReportPayload, verifyEvidence, type EvidenceInput } from "@deai/proofs";

import {
  equivocation,
  evidenceOf,
  forge,
  invalidContribution,
  leaseBreach,
  newSigner,
  newWorld,
  unavailability,
} from "./evidence-factory.js";

const w = newWorld();
const p = newSigner();
const at = Date.parse("2026-03-01T10:00:00Z");

describe("evidence verifiers", () => {
  it.each(["unavailability", "equivocation", "lease-breach", "invalid-contribution"] as const)(
    "%s: verifies and names the provider and time",
    (kind) => {
      const e = evidenceOf(w, kind, p, at);
      const v = verifyEvidence(e, w.trust);
      expect(v.provider).toBe(p.keyid);
      expect(v.kind).toBe(kind);
      expect(Math.abs(v.infractionAtMs - at)).toBeLessThanOrEqual(1000);
      expect(v.evidenceId).toMatch(/^[0-9a-f]{64}$/);
    },
  );
  it.each(["unavailability", "equivocation", "lease-breach", "invalid-contribution"] as const)(
    "%s: a forged signature is refused",
    (kind) => {
      const e = evidenceOf(w, kind, p, at);
      expect(() => verifyEvidence(forge(e, "flip"), w.trust)).toThrow(/does not verify/);
      expect(() => verifyEvidence(forge(e, "stranger"), w.trust)).toThrow();
    },
  );
  it("unavailability: below the quorum, a stranger sampler, a stripe not due", () => {
    expect(() => verifyEvidence(unavailability(w, p.keyid, at, { signers: 1 }), w.trust)).toThrow(/needs 2 distinct sampler signatures/);
    const other = newWorld();
    expect(() => verifyEvidence(unavailability(other, p.keyid, at), w.trust)).toThrow(/unknown sampler/);
    const e = unavailability(w, p.keyid, at) as Extract<EvidenceInput, { kind: "unavailability" }>;
    const st = JSON.parse(new TextDecoder().decode(e.attestation.payload));
    const stripe = st.predicate.trigger.stripe as number;
    const notDue = (stripe + 1) % 50;
    st.predicate.trigger.stripe = notDue;
    st.predicate.recheckedStripes = [notDue];
    const bad = dsseSign(IN_TOTO_PAYLOAD_TYPE, new TextEncoder().encode(JSON.stringify(st)), w.samplers);
    expect(() => verifyEvidence({ kind: "unavailability", attestation: bad }, w.trust)).toThrow(/was not due|challenge derivation/);
  });
  it("equivocation: the same claim twice, or two slots, is not equivocation; signed by another key is refused", () => {
    const e = equivocation(p, at) as Extract<EvidenceInput, { kind: "equivocation" }>;
    expect(() => verifyEvidence({ ...e, second: e.first }, w.trust)).toThrow(/same claim/);
    const other = equivocation(p, at, 7) as Extract<EvidenceInput, { kind: "equivocation" }>;
    expect(() => verifyEvidence({ ...e, second: other.second }, w.trust)).toThrow(/different slots/);
    const q = newSigner();
    const resigned = dsseSign(IN_TOTO_PAYLOAD_TYPE, e.second.payload, [q]);
    expect(() => verifyEvidence({ ...e, second: resigned }, w.trust)).toThrow(/not signed by its provider/);
  });
  it("equivocation from two real usage-report/v1 statements (no issuedAt) dates the infraction at periodEnd", () => {
    const operator = newSigner();
    const report = (gpuSeconds: number) =>
      dsseSign(
        IN_TOTO_PAYLOAD_TYPE,
        usageReportPayload({
          leaseId: "lease-9",
          epoch: 3,
          periodStart: new Date(at - 60_000).toISOString(),
          periodEnd: new Date(at).toISOString(),
          gpuSeconds,
          heartbeatsMissed: 0,
          provider: p.keyid,
          operator: operator.keyid,
        }),
        [p, operator],
      );
    const v = verifyEvidence({ kind: "equivocation", first: report(100), second: report(200) }, w.trust);
    expect(v).toMatchObject({ kind: "equivocation", provider: p.keyid, infractionAtMs: at, earliestAtMs: at });
  });
  it("lease breach needs a known operator and a countersignature", () => {
    const e = leaseBreach(w, p.keyid, at) as Extract<EvidenceInput, { kind: "lease-breach" }>;
    const alone = dsseSign(IN_TOTO_PAYLOAD_TYPE, e.attestations[0]!.payload, [w.operators[0]!]);
    expect(() => verifyEvidence({ ...e, attestations: [alone] }, w.trust)).toThrow(/countersigned/);
    expect(() => verifyEvidence(e, { ...w.trust, operators: [] })).toThrow(/not a known operator/);
    expect(() => verifyEvidence(e, { ...w.trust, minMissedHeartbeats: 6 })).toThrow(/below the breach threshold/);
  });
  it("invalid contribution needs a known checker that disagrees", () => {
    const e = invalidContribution(w, p, at);
    expect(() => verifyEvidence(e, { ...w.trust, checkers: [] })).toThrow(/not a known checker/);
  });
  it("evidence id ignores signature sets and the order of the two statements", () => {
    const e = equivocation(p, at) as Extract<EvidenceInput, { kind: "equivocation" }>;
    expect(evidenceId({ ...e, first: e.second, second: e.first })).toBe(evidenceId(e));
    const u = unavailability(w, p.keyid, at) as Extract<EvidenceInput, { kind: "unavailability" }>;
    const fewer = unavailability(w, p.keyid, at, { signers: 2 });
    expect(evidenceId(fewer)).toBe(evidenceId(u));
  });
});
