/** Stable codes for every way a proof, note, checkpoint, receipt or tile can be rejected. */
export type ProofErrorCode =
  | "invalid-argument"
  | "bad-hash-size"
  | "index-out-of-range"
  | "wrong-proof-size"
  | "root-mismatch"
  | "malformed-note"
  | "malformed-key"
  | "key-id-mismatch"
  | "invalid-signature"
  | "no-verified-signature"
  | "malformed-checkpoint"
  | "origin-mismatch"
  | "witness-quorum"
  | "malformed-receipt"
  | "malformed-tile";

/**
 * The one error this package throws. Verification failures are errors, not `false`, so a
 * caller cannot forget to look at the result; `code` says which check failed.
 */
export class ProofError extends Error {
  constructor(
    readonly code: ProofErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "ProofError";
  }

  /** Wraps anything thrown into a ProofError; foreign errors become `invalid-argument`. */
  static from(e: unknown): ProofError {
    if (e instanceof ProofError) return e;
    const message = e instanceof Error ? e.message : String(e);
    return new ProofError("invalid-argument", message, { cause: e });
  }
}
