/**
 * One abuse case, what it must be answered with, and the judgement of an answer.
 *
 * Faults are never acceptable: HTTP 5xx, gRPC INTERNAL, UNKNOWN, DATA_LOSS, UNAVAILABLE,
 * a missed deadline, or a broken connection. UNIMPLEMENTED (HTTP 501) is the honest answer of
 * a service that has not built a method yet, so it is allowed only for methods the service
 * test declares unimplemented and only for cases the kit cannot tell apart from valid input
 * (a 1 MiB string): hostile input the kit can recognise (undecodable bytes, malformed JSON,
 * NUL, bad integers, bad signatures) must be refused before it reaches any handler.
 */
import type { DescMethod } from "@bufbuild/protobuf";
import type * as grpc from "@grpc/grpc-js";

import type { Outcome } from "./transports.js";

export type CaseKind =
  | "undecodable-protobuf"
  | "malformed-json"
  | "wrong-json-type"
  | "nul"
  | "lone-surrogate"
  | "huge-string"
  | "int-out-of-range"
  | "non-canonical-int"
  | "repeated-query"
  | "oversized-body"
  | "signature";

/**
 * - invalid-argument: HTTP 400 / INVALID_ARGUMENT (or OUT_OF_RANGE);
 * - unauthenticated: HTTP 401 / UNAUTHENTICATED;
 * - too-large: HTTP 413 / RESOURCE_EXHAUSTED;
 * - no-fault: anything but a fault, OK included (state is checked separately).
 */
export type Expectation = "invalid-argument" | "unauthenticated" | "too-large" | "no-fault";

/** How a case reaches the service under test. */
export interface Wire {
  readonly baseUrl: string;
  readonly grpc: grpc.Client;
}

export interface AbuseCase {
  /** e.g. `deai.ledger.v1.LedgerService/Append rest: NUL in envelope.payload_type`. */
  readonly label: string;
  readonly method: DescMethod;
  readonly kind: CaseKind;
  readonly expect: Expectation;
  /** Other codes that are right for this case too (e.g. UNAUTHENTICATED when re-encoding breaks the digest). */
  readonly alsoAccept?: readonly number[];
  send(wire: Wire): Promise<Outcome>;
}

const FAULT_CODES = new Set([2, 4, 13, 14, 15]);
const CODE_NAMES = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
];

const wanted: Record<Exclude<Expectation, "no-fault">, { status: readonly number[]; codes: readonly number[] }> = {
  "invalid-argument": { status: [400], codes: [3, 11] },
  unauthenticated: { status: [401], codes: [16] },
  "too-large": { status: [413, 429], codes: [8] },
};

/** The answer in one word or two, for reports. */
export function describeOutcome(o: Outcome): string {
  if (o.broken) return o.broken;
  const parts: string[] = [];
  if (o.status !== undefined) parts.push(`HTTP ${o.status}`);
  if (o.code !== undefined) parts.push(CODE_NAMES[o.code] ?? `code ${o.code}`);
  return `${parts.join(" ")}${o.detail ? ` (${o.detail.slice(0, 120)})` : ""}`;
}

/** Why `o` is a wrong answer to `c`, or undefined when it is right. */
export function judge(c: AbuseCase, o: Outcome, unimplemented: boolean): string | undefined {
  if (o.broken && o.status === undefined && o.code === undefined) return o.broken;
  const mayBeUnimplemented = unimplemented && c.expect === "no-fault";
  const isUnimplemented = o.code === 12 || o.status === 501;
  if (isUnimplemented) return mayBeUnimplemented ? undefined : "UNIMPLEMENTED for input the kit must refuse before the handler";
  if (o.code !== undefined && FAULT_CODES.has(o.code)) return "a server fault";
  if (o.status !== undefined && o.status >= 500) return "a server fault";
  if (o.broken) return o.broken;
  if (c.expect === "no-fault") return undefined;
  const ok = o.code === 0 || (o.code === undefined && o.status !== undefined && o.status < 300);
  if (ok) return "accepted";
  const w = wanted[c.expect];
  const extra = c.alsoAccept ?? [];
  // The gRPC code is the precise answer where there is one; REST has only its status.
  if (o.code !== undefined) return w.codes.includes(o.code) || extra.includes(o.code) ? undefined : `expected ${c.expect}`;
  if (o.status !== undefined && w.status.includes(o.status)) return undefined;
  if (o.status === 401 && extra.includes(16)) return undefined;
  return `expected ${c.expect}`;
}
