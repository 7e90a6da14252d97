import { ConfigError, env, loadConfig, serviceConfigSchema } from "./config.js";

describe("loadConfig", () => {
  it("parses typed values, applies defaults and freezes the result", () => {
    const c = loadConfig({ A: env.int({ default: 3 }), B: env.bool(), C: env.list(), D: env.optionalString() }, { B: "yes", C: "x, y,,z" });
    expect(c).toEqual({ A: 3, B: true, C: ["x", "y", "z"], D: undefined });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it.each([
    [{ PORT: "http" }, /config: PORT: must be an integer, got "http"/],
    [{ PORT: "70000" }, /config: PORT: must be ≤ 65535, got 70000/],
    [{ DATABASE_URL: "mysql://x" }, /config: DATABASE_URL: must use postgres or postgresql, got mysql:/],
    [{ LOG_LEVEL: "loud" }, /config: LOG_LEVEL: must be one of trace, debug/],
    [{ NATS_URL: "not a url" }, /config: NATS_URL: must be a URL/],
  ])("fails fast naming the variable: %j", (source, message) => {
    expect(() => loadConfig(serviceConfigSchema, source)).toThrow(message);
  });

  it("names a required variable that is missing", () => {
    const e = (() => {
      try {
        loadConfig({ LEDGER_KEY: env.string() }, {});
      } catch (err) {
        return err;
      }
    })();
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).variable).toBe("LEDGER_KEY");
    expect((e as Error).message).toBe("config: LEDGER_KEY: is required but not set");
  });
});
