/**
 * The ledger anchoring client every service uses to put a signed statement in the ledger:
 * append a DSSE envelope, wait for the checkpoint that integrates it, take the receipt, and
 * check the receipt offline (packages/proofs, against the pinned log key) before trusting it.
 *
 * Its errors say what the caller should do. `AnchorRefusedError`: the ledger refused the
 * envelope for good (invalid argument, failed precondition, out of range: too large, too many
 * signatures, not a statement); sending it again cannot succeed, so the caller ends what
 * depended on it. `UnavailableError`: try again (unreachable, timed out, not integrated in
 * time); the append is idempotent, so a retry returns the same index.
 */
import { Code, ConnectError } from "@connectrpc/connect";

import type { DsseEnvelope } from "@deai/contracts/deai/common/v1/common_pb";
import { LedgerService, type Receipt } from "@deai/contracts/deai/ledger/v1/ledger_pb";
import { parseTlogProof, verifyTlogProof, type NoteVerifier } from "@deai/proofs";

import { serviceClient } from "../client.js";
import { DomainError, UnavailableError } from "../errors.js";
import type { ActorKey } from "../signing/keys.js";

/** The ledger refused an envelope for good: the same envelope will always be refused. */
export class AnchorRefusedError extends DomainError {
  constructor(
    message: string,
    /** The ledger's own message. */
    readonly ledgerMessage: string,
  ) {
    super("failed_precondition", message, { ledgerMessage });
  }
}

/** An anchored envelope: its log index and its receipt (checked offline when a log key is pinned). */
export interface Anchored {
  readonly index: bigint;
  readonly receipt: Receipt;
}

/** What services depend on: tests and other transports implement it too. */
export interface LedgerAnchoring {
  anchor(envelope: DsseEnvelope): Promise<Anchored>;
}

/** Ledger codes that mean the envelope itself is unacceptable. */
const REFUSED_FOR_GOOD = new Set([Code.InvalidArgument, Code.FailedPrecondition, Code.OutOfRange]);

/** Whether an error from the ledger means "refused for good" (true) or "try again" (false). */
export function isRefusedForGood(e: unknown): boolean {
  return e instanceof AnchorRefusedError || (e instanceof ConnectError && REFUSED_FOR_GOOD.has(e.code));
}

export interface LedgerAnchoringOptions {
  /** Base URL of the ledger's gRPC port. */
  readonly baseUrl: string;
  /** The actor the appends are signed as. */
  readonly key: ActorKey;
  /** The pinned log key: receipts are checked against it offline. Unset: receipts are taken as the ledger sends them. */
  readonly logVerifier?: NoteVerifier;
  /**
   * Deadline of one append (including the wait for integration).
   * @default 30000
   */
  readonly timeoutMs?: number;
}

/** The gRPC ledger anchoring client. */
export class LedgerAnchoringClient implements LedgerAnchoring {
  private readonly client;
  private readonly timeoutMs: number;

  constructor(private readonly o: LedgerAnchoringOptions) {
    this.client = serviceClient(LedgerService, { baseUrl: o.baseUrl, key: o.key });
    this.timeoutMs = o.timeoutMs ?? 30_000;
  }

  async anchor(envelope: DsseEnvelope): Promise<Anchored> {
    let r;
    try {
      r = await this.client.append({ envelope, waitForIntegration: true }, { timeoutMs: this.timeoutMs });
    } catch (e) {
      const ce = ConnectError.from(e);
      if (REFUSED_FOR_GOOD.has(ce.code)) throw new AnchorRefusedError(`the ledger refused the envelope: ${ce.rawMessage}`, ce.rawMessage);
      throw new UnavailableError(
        `the ledger did not take the envelope (try again): ${ce.code === Code.DeadlineExceeded ? `no answer within ${this.timeoutMs} ms` : ce.rawMessage}`,
      );
    }
    if (!r.receipt)
      throw new UnavailableError(
        `the ledger logged the envelope at index ${r.index} but did not integrate it in time; try again to fetch the receipt`,
      );
    if (this.o.logVerifier) checkReceipt(r.receipt, r.index, this.o.logVerifier);
    return { index: r.index, receipt: r.receipt };
  }
}

/**
 * Checks a receipt offline: its tlog-proof verifies against the pinned log key and names
 * `index`. A receipt that does not check is the ledger misbehaving: "try again" (the append is
 * idempotent), never "refused for good".
 */
export function checkReceipt(receipt: Receipt, index: bigint, log: NoteVerifier): void {
  try {
    const proof = parseTlogProof(receipt.tlogProof);
    const v = verifyTlogProof(proof, { leafHash: receipt.leafHash }, { log });
    if (BigInt(v.index) !== index) throw new Error(`the receipt proves index ${v.index}, not ${index}`);
  } catch (e) {
    throw new UnavailableError(
      `the ledger's receipt for index ${index} does not verify against the pinned log key: ${(e as Error).message}`,
    );
  }
}
