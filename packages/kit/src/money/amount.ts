/**
 * Amounts of money: integers in base units, as `bigint`, never a float. In JSON an amount is
 * a decimal string of base units ("1500000"); `formatDecimal`/`parseDecimal` convert to and
 * from a human form with a number of decimals ("1.5" at 6 decimals).
 *
 * The range is TigerBeetle's: 0 ≤ amount ≤ 2^128 − 1, stored as numeric(39,0) with a CHECK.
 * int8 would overflow at 9.22 whole tokens of an 18-decimal currency. Every helper here
 * throws instead of wrapping, truncating or going negative. Pure: `@deai/kit/money`.
 */
import { InvalidArgumentError } from "../errors.js";

declare const amountBrand: unique symbol;

/** A non-negative integer number of base units, at most `MAX_AMOUNT`. Make one with `amount()` or `parseAmount()`. */
export type Amount = bigint & { readonly [amountBrand]: true };

/** 2^128 − 1: the largest amount and the largest balance a column holds. */
export const MAX_AMOUNT = ((1n << 128n) - 1n) as Amount;

export const ZERO = 0n as Amount;

const BASE_UNITS = /^(0|[1-9][0-9]*)$/;
const SIGNED_BASE_UNITS = /^(0|-?[1-9][0-9]*)$/;
const DECIMAL = /^(0|[1-9][0-9]*)(?:\.([0-9]+))?$/;

function outOfRange(what: string, value: bigint, field: string): InvalidArgumentError {
  return new InvalidArgumentError(`${field} ${value} is out of range: ${what}`, { field, value: value.toString() });
}

/** Checks a bigint is a valid amount (0 ≤ v ≤ MAX_AMOUNT) and brands it. */
export function amount(value: bigint, field = "amount"): Amount {
  if (typeof value !== "bigint") {
    throw new InvalidArgumentError(`${field} must be a bigint of base units, got ${typeof value}`, { field });
  }
  if (value < 0n) throw outOfRange("an amount cannot be negative", value, field);
  if (value > MAX_AMOUNT) throw outOfRange(`an amount is at most ${MAX_AMOUNT}`, value, field);
  return value as Amount;
}

/**
 * Parses an amount from its JSON form: a string of base-unit digits, without sign, spaces,
 * leading zeros, exponent or fraction. A JS number is refused: a number in JSON may already
 * have lost precision before it got here. A bigint passes through `amount()`.
 */
export function parseAmount(input: unknown, field = "amount"): Amount {
  if (typeof input === "bigint") return amount(input, field);
  if (typeof input === "number") {
    throw new InvalidArgumentError(`${field} must be a string of base units (e.g. "1500"), not a JSON number`, { field });
  }
  if (typeof input !== "string") throw new InvalidArgumentError(`${field} must be a string of base units`, { field });
  if (!BASE_UNITS.test(input)) {
    throw new InvalidArgumentError(
      `${field} "${input.length > 64 ? `${input.slice(0, 64)}…` : input}" is not a whole number of base units (digits only, no sign, no leading zeros)`,
      { field },
    );
  }
  // 40 digits and more are out of range whatever they are; do not build a huge bigint.
  if (input.length > 39) throw new InvalidArgumentError(`${field} is out of range: an amount is at most ${MAX_AMOUNT}`, { field });
  return amount(BigInt(input), field);
}

/** Like `parseAmount`, for a signed quantity (a net balance, a delta): −MAX_AMOUNT … MAX_AMOUNT, as a plain bigint. */
export function parseSignedAmount(input: unknown, field = "amount"): bigint {
  if (typeof input === "string" && SIGNED_BASE_UNITS.test(input) && input.startsWith("-")) {
    return 0n - parseAmount(input.slice(1), field);
  }
  return parseAmount(input, field);
}

/** The JSON form of an amount: its base units as a decimal string. */
export function formatAmount(a: bigint): string {
  return a.toString();
}

/**
 * Parses a human decimal ("12.5") at `decimals` places into base units (12500000 at 6).
 * Refuses more fractional digits than the currency has rather than rounding them away.
 */
export function parseDecimal(input: unknown, decimals: number, field = "amount"): Amount {
  checkDecimals(decimals);
  if (typeof input !== "string") throw new InvalidArgumentError(`${field} must be a decimal string such as "12.5"`, { field });
  const m = DECIMAL.exec(input);
  if (!m) throw new InvalidArgumentError(`${field} "${input.slice(0, 64)}" is not a non-negative decimal number`, { field });
  const whole = m[1]!;
  const fraction = m[2] ?? "";
  if (fraction.length > decimals) {
    throw new InvalidArgumentError(`${field} "${input}" has more than ${decimals} decimal places`, { field, decimals });
  }
  if (whole.length + decimals > 39)
    throw new InvalidArgumentError(`${field} is out of range: an amount is at most ${MAX_AMOUNT}`, { field });
  return amount(BigInt(whole + fraction.padEnd(decimals, "0")), field);
}

/** Formats base units as a human decimal at `decimals` places, without trailing zeros ("12.5"). */
export function formatDecimal(a: bigint, decimals: number): string {
  checkDecimals(decimals);
  const negative = a < 0n;
  const digits = (negative ? -a : a).toString().padStart(decimals + 1, "0");
  const whole = digits.slice(0, digits.length - decimals);
  const fraction = digits.slice(digits.length - decimals).replace(/0+$/, "");
  return `${negative ? "-" : ""}${whole}${fraction ? `.${fraction}` : ""}`;
}

function checkDecimals(decimals: number): void {
  if (!Number.isSafeInteger(decimals) || decimals < 0 || decimals > 38)
    throw new RangeError(`decimals must be an integer in 0…38, got ${decimals}`);
}

/** a + b; throws when the sum exceeds MAX_AMOUNT. */
export function addAmounts(a: Amount, b: Amount): Amount {
  return amount(a + b, "sum");
}

/** Σ amounts; throws when the total exceeds MAX_AMOUNT. */
export function sumAmounts(amounts: Iterable<Amount>): Amount {
  let total = ZERO;
  for (const a of amounts) total = addAmounts(total, a);
  return total;
}

/** a − b; throws when b > a instead of going negative. */
export function subtractAmounts(a: Amount, b: Amount): Amount {
  if (b > a) throw new InvalidArgumentError(`cannot subtract ${b} from ${a}: an amount cannot be negative`, { a: `${a}`, b: `${b}` });
  return (a - b) as Amount;
}

/**
 * a × numerator ÷ denominator, rounded down (the default: a fee or a slash never takes more
 * than its share) or up. For rates: `mulDiv(stake, 250n, 10_000n)` is 2.5 %.
 */
export function mulDiv(a: Amount, numerator: bigint, denominator: bigint, rounding: "down" | "up" = "down"): Amount {
  if (numerator < 0n) throw new InvalidArgumentError(`numerator ${numerator} cannot be negative`);
  if (denominator <= 0n) throw new InvalidArgumentError(`denominator ${denominator} must be positive`);
  const product = a * numerator;
  const q = product / denominator;
  return amount(rounding === "up" && q * denominator !== product ? q + 1n : q, "product");
}

/**
 * Splits `total` in proportion to `weights` so that the parts sum to `total` exactly: each
 * part is rounded down and the leftover base units go, one each, to the largest remainders
 * (ties to the earlier index). Revenue shared by providers loses and invents nothing.
 */
export function allocate(total: Amount, weights: readonly bigint[]): Amount[] {
  if (weights.length === 0) throw new InvalidArgumentError("allocate needs at least one weight");
  if (weights.some((w) => w < 0n)) throw new InvalidArgumentError("weights cannot be negative");
  const sum = weights.reduce((s, w) => s + w, 0n);
  if (sum === 0n) throw new InvalidArgumentError("weights sum to zero");
  const parts = weights.map((w) => (total * w) / sum);
  const remainders = weights.map((w, i) => ({ i, r: (total * w) % sum }));
  let leftover = total - parts.reduce((s, p) => s + p, 0n);
  remainders.sort((x, y) => (x.r === y.r ? x.i - y.i : x.r > y.r ? -1 : 1));
  for (let k = 0; leftover > 0n; k++, leftover--) parts[remainders[k]!.i]! += 1n;
  return parts as Amount[];
}

/** The smaller of two amounts. */
export function minAmount(a: Amount, b: Amount): Amount {
  return a < b ? a : b;
}

/** The larger of two amounts. */
export function maxAmount(a: Amount, b: Amount): Amount {
  return a > b ? a : b;
}
