// Integer helpers for tree sizes and indexes. Sizes are JavaScript numbers and may exceed
// 2^32, so nothing here uses the 32-bit bitwise operators.

import { ProofError } from "./errors.js";

/** Throws unless n is a non-negative safe integer (the range this package supports: < 2^53). */
export function requireCount(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new ProofError("invalid-argument", `${what} must be a non-negative safe integer, got ${String(n)}`);
  }
}

/** 2^level as a number. */
export function pow2(level: number): number {
  return 2 ** level;
}

/** Whether n is a power of two (n ≥ 1). */
export function isPowerOfTwo(n: number): boolean {
  if (n < 1) return false;
  while (n % 2 === 0) n /= 2;
  return n === 1;
}

/** The largest power of two strictly less than n, for n ≥ 2 (RFC 6962's split point k). */
export function largestPowerOfTwoBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** The number of trailing zero bits of n ≥ 1. */
export function trailingZeros(n: number): number {
  let z = 0;
  while (n % 2 === 0) {
    n /= 2;
    z++;
  }
  return z;
}

/** The number of one bits of n ≥ 0. */
export function onesCount(n: number): number {
  let c = 0;
  while (n > 0) {
    c += n % 2;
    n = Math.floor(n / 2);
  }
  return c;
}

/** floor(n / 2). */
export function half(n: number): number {
  return Math.floor(n / 2);
}
