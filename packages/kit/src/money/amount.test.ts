import {
  MAX_AMOUNT,
  addAmounts,
  allocate,
  amount,
  formatAmount,
  formatDecimal,
  maxAmount,
  minAmount,
  mulDiv,
  parseAmount,
  parseDecimal,
  parseSignedAmount,
  subtractAmounts,
  sumAmounts,
} from "@deai/kit/money";

const kindOf = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (e) {
    return (e as { kind?: string }).kind ?? (e as Error).name;
  }
  return undefined;
};

describe("parseAmount", () => {
  it("reads base units from their JSON string form, up to 2^128 − 1", () => {
    expect(parseAmount("0")).toBe(0n);
    expect(parseAmount("1500000")).toBe(1_500_000n);
    expect(parseAmount(MAX_AMOUNT.toString())).toBe(2n ** 128n - 1n);
    expect(parseAmount(42n)).toBe(42n);
    expect(formatAmount(parseAmount("9007199254740993"))).toBe("9007199254740993");
  });

  it.each([
    ["a float", 1.5],
    ["a safe integer as a JSON number", 7],
    ["NaN", NaN],
    ["a negative", "-1"],
    ["a fraction", "1.0"],
    ["an exponent", "1e3"],
    ["a leading zero", "007"],
    ["a plus sign", "+1"],
    ["spaces", " 1"],
    ["hex", "0x10"],
    ["empty", ""],
    ["beyond 2^128 − 1", (2n ** 128n).toString()],
    ["a very long string", "9".repeat(10_000)],
    ["a negative bigint", -1n],
    ["null", null],
  ])("refuses %s with InvalidArgument", (_, input) => {
    expect(kindOf(() => parseAmount(input, "price"))).toBe("invalid_argument");
  });

  it("names the field in the error", () => {
    expect(() => parseAmount("x", "price")).toThrow(/^price /);
  });

  it("signed amounts allow a minus sign and nothing else", () => {
    expect(parseSignedAmount("-25")).toBe(-25n);
    expect(parseSignedAmount("25")).toBe(25n);
    expect(kindOf(() => parseSignedAmount("-0"))).toBe("invalid_argument");
    expect(kindOf(() => parseSignedAmount("--1"))).toBe("invalid_argument");
  });
});

describe("decimals", () => {
  it("converts between a human decimal and base units exactly", () => {
    expect(parseDecimal("12.5", 6)).toBe(12_500_000n);
    expect(parseDecimal("0.000001", 6)).toBe(1n);
    expect(parseDecimal("3", 0)).toBe(3n);
    expect(formatDecimal(12_500_000n, 6)).toBe("12.5");
    expect(formatDecimal(1n, 18)).toBe("0.000000000000000001");
    expect(formatDecimal(-1_500_000n, 6)).toBe("-1.5");
    expect(formatDecimal(7n, 0)).toBe("7");
    for (const s of ["0", "1", "0.1", "123456789.123456789012345678"]) expect(formatDecimal(parseDecimal(s, 18), 18)).toBe(s);
  });

  it("refuses more places than the currency has instead of rounding", () => {
    expect(kindOf(() => parseDecimal("0.0000001", 6))).toBe("invalid_argument");
    expect(kindOf(() => parseDecimal("1.", 6))).toBe("invalid_argument");
    expect(kindOf(() => parseDecimal("-1", 6))).toBe("invalid_argument");
    expect(kindOf(() => parseDecimal(1.5, 6))).toBe("invalid_argument");
    expect(kindOf(() => parseDecimal("1".repeat(22), 18))).toBe("invalid_argument");
  });
});

describe("arithmetic", () => {
  const a = (n: bigint) => amount(n);

  it("throws instead of overflowing or going negative", () => {
    expect(addAmounts(a(2n), a(3n))).toBe(5n);
    expect(kindOf(() => addAmounts(MAX_AMOUNT, a(1n)))).toBe("invalid_argument");
    expect(subtractAmounts(a(5n), a(3n))).toBe(2n);
    expect(kindOf(() => subtractAmounts(a(3n), a(5n)))).toBe("invalid_argument");
    expect(sumAmounts([a(1n), a(2n), a(3n)])).toBe(6n);
    expect(kindOf(() => sumAmounts([MAX_AMOUNT, a(1n)]))).toBe("invalid_argument");
    expect(kindOf(() => amount(1 as unknown as bigint))).toBe("invalid_argument");
    expect([minAmount(a(1n), a(2n)), maxAmount(a(1n), a(2n))]).toEqual([1n, 2n]);
  });

  it("mulDiv rounds down by default, up on request, and refuses a zero denominator", () => {
    expect(mulDiv(a(1000n), 250n, 10_000n)).toBe(25n);
    expect(mulDiv(a(999n), 1n, 10n)).toBe(99n);
    expect(mulDiv(a(999n), 1n, 10n, "up")).toBe(100n);
    expect(mulDiv(a(1000n), 1n, 10n, "up")).toBe(100n);
    expect(kindOf(() => mulDiv(a(1n), 1n, 0n))).toBe("invalid_argument");
    expect(kindOf(() => mulDiv(MAX_AMOUNT, 2n, 1n))).toBe("invalid_argument");
  });

  it("allocate splits exactly, leftovers to the largest remainders", () => {
    expect(allocate(a(100n), [1n, 1n, 1n])).toEqual([34n, 33n, 33n]);
    expect(allocate(a(10n), [0n, 3n, 7n])).toEqual([0n, 3n, 7n]);
    expect(allocate(a(5n), [1n, 2n])).toEqual([2n, 3n]);
    for (let i = 0; i < 200; i++) {
      const weights = Array.from({ length: 1 + (i % 7) }, (_, k) => BigInt((i * 31 + k * 17) % 13));
      if (weights.every((w) => w === 0n)) continue;
      const total = a(BigInt(i * 7919));
      expect(allocate(total, weights).reduce((s, p) => s + p, 0n)).toBe(total);
    }
    expect(kindOf(() => allocate(a(1n), [0n]))).toBe("invalid_argument");
  });
});
