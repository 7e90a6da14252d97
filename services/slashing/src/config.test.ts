import { loadSlashingConfig } from "./config.js";

describe("slashing config", () => {
  it("starts with the defaults (21 d ≥ 14 d + 2 d + 1 d)", () => {
    const c = loadSlashingConfig({});
    expect(c.params.unbondingDelayMs).toBe(21 * 86_400_000);
    expect(c.params.minStake).toBe(1_000_000n);
  });
  it("refuses to start when the unbonding delay breaks the timing rule, naming the variable", () => {
    expect(() => loadSlashingConfig({ SLASHING_UNBONDING_DELAY_S: String(16 * 86_400) })).toThrow(
      /SLASHING_UNBONDING_DELAY_S.*timing rule broken/,
    );
    expect(() =>
      loadSlashingConfig({
        SLASHING_UNBONDING_DELAY_S: "100",
        SLASHING_EVIDENCE_MAX_AGE_S: "50",
        SLASHING_VETO_WINDOW_S: "30",
        SLASHING_SAMPLER_DETECTION_WINDOW_S: "20",
      }),
    ).not.toThrow();
    expect(() =>
      loadSlashingConfig({
        SLASHING_UNBONDING_DELAY_S: "99",
        SLASHING_EVIDENCE_MAX_AGE_S: "50",
        SLASHING_VETO_WINDOW_S: "30",
        SLASHING_SAMPLER_DETECTION_WINDOW_S: "20",
      }),
    ).toThrow(/timing rule/);
  });
  it("refuses a veto threshold above the council and a malformed minimum stake", () => {
    expect(() => loadSlashingConfig({ SLASHING_COUNCIL: "a,b", SLASHING_VETO_THRESHOLD: "3" })).toThrow(/SLASHING_VETO_THRESHOLD/);
    expect(() => loadSlashingConfig({ SLASHING_MIN_STAKE: "1.5" })).toThrow(/SLASHING_MIN_STAKE/);
  });
  it("reads the providers' infrastructure (SLASHING_PROVIDER_INFRA) and refuses a malformed one, naming the variable", () => {
    expect(loadSlashingConfig({ SLASHING_PROVIDER_INFRA: '{"p1":{"region":"eu-1","vendor":"v"},"p2":{}}' }).params.infrastructure).toEqual({
      p1: { region: "eu-1", vendor: "v" },
      p2: {},
    });
    expect(loadSlashingConfig({}).params.infrastructure).toEqual({});
    expect(() => loadSlashingConfig({ SLASHING_PROVIDER_INFRA: "[1]" })).toThrow(/SLASHING_PROVIDER_INFRA: not an object/);
    expect(() => loadSlashingConfig({ SLASHING_PROVIDER_INFRA: '{"p1":{"zone":"a"}}' })).toThrow(
      /SLASHING_PROVIDER_INFRA: p1 has unknown fields zone/,
    );
  });
});
