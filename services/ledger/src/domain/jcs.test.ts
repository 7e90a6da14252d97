import { canonicalJson } from "./jcs.js";

describe("canonicalJson (RFC 8785)", () => {
  it("sorts keys by UTF-16 code units and drops whitespace", () => {
    expect(canonicalJson({ b: 1, a: [true, null, "x"], "\u20ac": 2, "\ud83d\ude00": 3, A: { z: 0, y: -0.5 } })).toBe(
      '{"A":{"y":-0.5,"z":0},"a":[true,null,"x"],"b":1,"\u20ac":2,"\ud83d\ude00":3}',
    );
  });

  it("writes numbers in ECMAScript shortest form (RFC 8785 §3.2.2.3 examples)", () => {
    expect(canonicalJson([1e21, 1e-7, 333333333.3333333, 4.5, 2e-3, 0.000001, -0])).toBe(
      "[1e+21,1e-7,333333333.3333333,4.5,0.002,0.000001,0]",
    );
  });

  it("escapes control characters and keeps other characters literal", () => {
    expect(canonicalJson('\u000f\n"\\é')).toBe('"\\u000f\\n\\"\\\\é"');
  });

  it("refuses non-finite numbers", () => {
    expect(() => canonicalJson(Number.NaN)).toThrow(/non-finite/);
  });
});
