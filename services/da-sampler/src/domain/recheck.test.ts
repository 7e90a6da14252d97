import { attestationId, hexEncode, parseSamplingAttestation, samplingAttestationPayload } from "@deai/proofs";

import { backoffDelayMs } from "./backoff.js";
import { outcomeOf } from "./outcomes.js";
import { recheckPredicate, roundsPredicate, voteVerdict } from "./recheck.js";
import { slotStates } from "./slot-states.js";

const ref = {
  datasetId: "ds",
  contentDigest: hexEncode(new Uint8Array(32).fill(1)),
  shardRoot: hexEncode(new Uint8Array(32).fill(2)),
  provider: "p3",
  slot: 3,
  stripes: 40,
};
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
const trigger = {
  sampler: "sampler-a",
  round: 7,
  checkpointSize: 12,
  checkpointRoot: hexEncode(new Uint8Array(32).fill(3)),
  samples: 2,
  stripe: 9,
  outcome: "missing" as const,
  sampledAt: "2026-01-01T00:00:00.000Z",
};

describe("re-check statements", () => {
  it("are the same bytes whatever order the stripes come in, and valid predicates", () => {
    const a = samplingAttestationPayload(recheckPredicate(ref, policy, trigger, [9, 4], "unavailable"));
    const b = samplingAttestationPayload(recheckPredicate(ref, { ...policy }, { ...trigger }, [4, 9], "unavailable"));
    expect(attestationId(a)).toBe(attestationId(b));
    const p = parseSamplingAttestation(a);
    expect(p.samplesFailed).toBe(2);
    const avail = parseSamplingAttestation(samplingAttestationPayload(recheckPredicate(ref, policy, trigger, [4, 9], "available")));
    expect(avail.samplesOk).toBe(2);
  });
  it("a rounds summary counts what the rounds did", () => {
    const p = roundsPredicate(
      ref,
      policy,
      "sampler-a",
      [{ round: 5, checkpointSize: 1, checkpointRoot: trigger.checkpointRoot, samples: 3, failures: [] }],
      trigger.sampledAt,
    );
    expect(p.samplesOk).toBe(3);
    expect(p.verdict).toBe("available");
  });
});

describe("votes", () => {
  it("confirm a failure only when every stripe failed and the control read passed", () => {
    expect(voteVerdict(["missing", "invalid"], true)).toBe("unavailable");
    expect(voteVerdict(["missing", "invalid"], false)).toBeUndefined();
    expect(voteVerdict(["ok", "ok"], false)).toBe("available");
    expect(voteVerdict(["ok", "missing"], true)).toBeUndefined();
    expect(voteVerdict([], true)).toBeUndefined();
  });
});

describe("outcomes and back-off", () => {
  it("tells slow-but-serving (late) from gone (timeout) and wrong bytes (invalid)", () => {
    const bytes = { kind: "bytes", observedLeaf: new Uint8Array(32), matches: true } as const;
    expect(outcomeOf(bytes, 100, 2000)).toBe("ok");
    expect(outcomeOf(bytes, 2500, 2000)).toBe("late");
    expect(outcomeOf({ ...bytes, matches: false }, 10, 2000)).toBe("invalid");
    expect(outcomeOf({ kind: "timeout", detail: "" }, 6000, 2000)).toBe("timeout");
    expect(outcomeOf({ kind: "missing", detail: "" }, 5, 2000)).toBe("missing");
  });
  it("backs off exponentially and caps", () => {
    expect([0, 1, 2, 3, 10].map((n) => backoffDelayMs(n, 1000))).toEqual([0, 1000, 2000, 4000, 16000]);
  });
  it("slot states allow one piece of evidence per outage", () => {
    expect(slotStates.canTransition("unavailable", "suspect")).toBe(false);
    expect(slotStates.canTransition("suspect", "unavailable")).toBe(true);
    expect(slotStates.canTransition("unavailable", "available")).toBe(true);
  });
});
