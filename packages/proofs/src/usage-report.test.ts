import {
  dsseSign,
  ed25519DsseSigner,
  IN_TOTO_PAYLOAD_TYPE,
  usageReportPayload,
  verifyUsageReport,
  type UsageReportPredicate,
} from "@deai/proofs";

const seed = (n: number) => new Uint8Array(32).fill(n);
const provider = ed25519DsseSigner(seed(1));
const operator = ed25519DsseSigner(seed(2));
const other = ed25519DsseSigner(seed(3));
const base: UsageReportPredicate = {
  leaseId: "lease-1",
  epoch: 0,
  periodStart: "2026-03-01T00:00:00Z",
  periodEnd: "2026-03-01T01:00:00Z",
  gpuSeconds: 28_800,
  heartbeatsMissed: 0,
  provider: provider.keyid,
  operator: operator.keyid,
};
const sign = (p: UsageReportPredicate, signers = [provider, operator]) => dsseSign(IN_TOTO_PAYLOAD_TYPE, usageReportPayload(p), signers);

describe("usage reports", () => {
  it("verifies a provider-signed, operator-countersigned report", () => {
    const v = verifyUsageReport(sign(base));
    expect(v.predicate).toEqual(base);
    expect(v.signers).toEqual([provider.keyid, operator.keyid]);
    expect(v.payloadSha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it("refuses a report missing either signature, a forged one, or malformed fields", () => {
    expect(() => verifyUsageReport(sign(base, [provider]))).toThrow(/countersigned by its operator/);
    expect(() => verifyUsageReport(sign(base, [operator]))).toThrow(/signed by its provider/);
    expect(() => verifyUsageReport(sign(base, [other, operator]))).toThrow(/signed by its provider/);
    const e = sign(base);
    const tampered = { ...e, payload: usageReportPayload({ ...base, gpuSeconds: 99_999 }) };
    expect(() => verifyUsageReport(tampered)).toThrow(/does not verify/);
    expect(() => verifyUsageReport(sign({ ...base, gpuSeconds: -1 }))).toThrow(/gpuSeconds/);
    expect(() => verifyUsageReport(sign({ ...base, epoch: 1.5 }))).toThrow(/epoch/);
    expect(() => verifyUsageReport(sign({ ...base, periodEnd: base.periodStart }))).toThrow(/periodEnd/);
    expect(() => verifyUsageReport(sign({ ...base, operator: provider.keyid }, [provider]))).toThrow(/different keys/);
  });
});
