// Usage reports (predicate https://deai.dev/usage-report/v1): what one epoch of a lease used,
// signed by the provider that ran it and countersigned by the job's operator. The marketplace
// settles an epoch from one; two different provider-signed reports for one (lease, epoch) are
// equivocation evidence for slashing (slotKeyOf in slashing-evidence.ts keys them so).

import { dsseVerify, type DsseEnvelope } from "./dsse.js";
import { utf8Encode } from "./encoding.js";
import { ProofError } from "./errors.js";
import { IN_TOTO_PAYLOAD_TYPE, parseStatementFrame, statementBytes, statementOf, type Statement } from "./in-toto.js";
import { PredicateTypes } from "./predicates.js";
import { sha256Hex } from "./slash-record.js";

/** The usage-report predicate. Times are RFC 3339; gpuSeconds is a whole number. */
export interface UsageReportPredicate {
  readonly leaseId: string;
  /** Epoch number, from 0 at the lease's start. */
  readonly epoch: number;
  readonly periodStart: string;
  readonly periodEnd: string;
  /** GPU-seconds used in the epoch (at most GPUs × the epoch's seconds). */
  readonly gpuSeconds: number;
  readonly heartbeatsMissed: number;
  /** The provider's actor id (the first signer). */
  readonly provider: string;
  /** The operator's actor id (the countersigner). */
  readonly operator: string;
}

/** The statement of a usage report; its subject is the lease id's digest. */
export function usageReportStatement(p: UsageReportPredicate): Statement<UsageReportPredicate> {
  return statementOf(PredicateTypes.usageReport, [{ name: p.leaseId, digest: { sha256: sha256Hex(utf8Encode(p.leaseId)!) } }], p);
}

/** The bytes to sign for a usage report. */
export function usageReportPayload(p: UsageReportPredicate): Uint8Array {
  return statementBytes(usageReportStatement(p));
}

export interface VerifiedUsageReport {
  readonly predicate: UsageReportPredicate;
  readonly signers: readonly string[];
  /** sha256 hex of the payload: what tells two reports apart. */
  readonly payloadSha256: string;
}

function fail(message: string): never {
  throw new ProofError("invalid-argument", `usage report: ${message}`);
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

/**
 * Checks a usage-report envelope: in-toto payload of the usage-report type, well-formed
 * predicate, signatures valid, and signed by both `predicate.provider` and
 * `predicate.operator` (distinct keys). Throws ProofError naming the first problem.
 */
export function verifyUsageReport(envelope: DsseEnvelope): VerifiedUsageReport {
  const { signers } = dsseVerify(envelope, { expectedPayloadType: IN_TOTO_PAYLOAD_TYPE });
  const st = parseStatementFrame(envelope.payload);
  if (st.predicateType !== PredicateTypes.usageReport) fail(`predicateType must be ${PredicateTypes.usageReport}`);
  const p = st.predicate ?? fail("predicate is missing");
  const str = (k: string, max = 200): string => {
    const v = p[k];
    if (typeof v !== "string" || v.length === 0 || v.length > max) fail(`${k} must be a non-empty string of at most ${max} characters`);
    return v;
  };
  const int = (k: string, max: number): number => {
    const v = p[k];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0 || v > max) fail(`${k} must be a whole number between 0 and ${max}`);
    return v;
  };
  const time = (k: string): string => {
    const v = str(k, 40);
    if (!RFC3339.test(v) || Number.isNaN(Date.parse(v))) fail(`${k} must be an RFC 3339 time`);
    return v;
  };
  const predicate: UsageReportPredicate = {
    leaseId: str("leaseId"),
    epoch: int("epoch", 10_000_000),
    periodStart: time("periodStart"),
    periodEnd: time("periodEnd"),
    gpuSeconds: int("gpuSeconds", Number.MAX_SAFE_INTEGER),
    heartbeatsMissed: int("heartbeatsMissed", 1_000_000),
    provider: str("provider", 100),
    operator: str("operator", 100),
  };
  if (Date.parse(predicate.periodEnd) <= Date.parse(predicate.periodStart)) fail("periodEnd must be after periodStart");
  const subject = st.subject[0] as { name?: unknown };
  if (subject.name !== predicate.leaseId) fail("the subject must name the lease");
  if (predicate.provider === predicate.operator) fail("provider and operator must be different keys");
  if (!signers.includes(predicate.provider)) throw new ProofError("no-verified-signature", "usage report: not signed by its provider");
  if (!signers.includes(predicate.operator))
    throw new ProofError("no-verified-signature", "usage report: not countersigned by its operator");
  return { predicate, signers, payloadSha256: sha256Hex(envelope.payload) };
}
