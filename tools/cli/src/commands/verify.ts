// deai verify <receipt> --log-key K [--entry FILE | --leaf-hash HEX] [--witness-key K ...] [--witnesses-required k]
// Offline: no network, only @deai/proofs.
import { readFile } from "node:fs/promises";

import {
  hexEncode,
  keyIdHex,
  leafHash,
  parseTlogProof,
  ProofError,
  verifyTlogProof,
  type NoteVerifier,
  type ReceiptLeaf,
  type VerifiedTlogProof,
} from "@deai/proofs";

import { CheckFailed, count, hash32, list, str, UsageError, verifierKeyArg, type Context } from "../cli.js";
import { envelopeLeaf, isEnvelopeJson } from "../envelope.js";

/** The entry's leaf: an envelope JSON file is canonicalized as the log does; any other file is the leaf bytes. */
export function entryLeaf(bytes: Uint8Array): Uint8Array {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch {
    return bytes;
  }
  return isEnvelopeJson(parsed) ? envelopeLeaf(parsed) : bytes;
}

/** What a verified receipt says, for printing. */
export interface ReceiptCheck {
  readonly verified: VerifiedTlogProof;
  readonly leafHash: Uint8Array;
  /** "OK leaf … is entry N of origin (tree size …), signed by …; …". */
  readonly summary: string;
  readonly json: Record<string, unknown>;
}

/**
 * Verifies a C2SP tlog-proof receipt for a leaf against the pinned log key and witness keys
 * (offline: only @deai/proofs); throws CheckFailed naming the failure.
 */
export function verifyReceipt(
  receipt: Uint8Array | string,
  leaf: ReceiptLeaf,
  opts: { log: NoteVerifier; witnesses?: NoteVerifier[]; required?: number; name: string },
): ReceiptCheck {
  const witnesses = opts.witnesses ?? [];
  const required = opts.required ?? witnesses.length;
  const log = opts.log;
  const hash = "entry" in leaf ? leafHash(leaf.entry) : leaf.leafHash;
  let v: VerifiedTlogProof;
  try {
    v = verifyTlogProof(parseTlogProof(receipt), leaf, { log, witnesses, witnessThreshold: required });
  } catch (e) {
    if (e instanceof ProofError) throw new CheckFailed(`FAIL ${opts.name}: ${e.code}: ${e.message}`);
    throw e;
  }
  const c = v.checkpoint;
  const cosigners = v.cosignatures.map((w) => `${w.name}+${keyIdHex(w.keyId)}`);
  const witnessText = witnesses.length === 0 ? "no witnesses required" : `cosigned by ${cosigners.join(", ")} (${required} required)`;
  return {
    verified: v,
    leafHash: hash,
    summary: `OK leaf ${hexEncode(hash)} is entry ${v.index} of ${c.origin} (tree size ${c.size}), signed by ${log.name}+${keyIdHex(log.keyId)}; ${witnessText}`,
    json: {
      ok: true,
      index: v.index,
      leafHash: hexEncode(hash),
      origin: c.origin,
      treeSize: c.size,
      rootHash: hexEncode(c.rootHash),
      log: `${log.name}+${keyIdHex(log.keyId)}`,
      cosignatures: v.cosignatures.map((w) => ({ witness: `${w.name}+${keyIdHex(w.keyId)}`, timestamp: w.timestamp })),
      witnessesRequired: required,
    },
  };
}

/** The pinned log key and witness policy from --log-key, --witness-key and --witnesses-required. */
export function pinnedLogArgs(ctx: Context): { log: NoteVerifier; witnesses: NoteVerifier[]; required: number } {
  const logKey = str(ctx, "log-key");
  if (logKey === undefined) throw new UsageError("--log-key is required: the log's verifier key (text or file), pinned out of band");
  const log = verifierKeyArg(logKey, "--log-key");
  const witnesses = list(ctx, "witness-key").map((k) => verifierKeyArg(k, "--witness-key"));
  const required = count(str(ctx, "witnesses-required"), "--witnesses-required") ?? witnesses.length;
  if (required > witnesses.length) throw new UsageError(`--witnesses-required ${required} needs at least ${required} --witness-key`);
  return { log, witnesses, required };
}

export async function verify(ctx: Context): Promise<void> {
  const [file] = ctx.positionals;
  if (file === undefined || ctx.positionals.length > 1) throw new UsageError("verify takes one receipt file");
  const { log, witnesses, required } = pinnedLogArgs(ctx);
  const entry = str(ctx, "entry");
  const hex = str(ctx, "leaf-hash");
  if ((entry === undefined) === (hex === undefined)) throw new UsageError("give exactly one of --entry FILE or --leaf-hash HEX");
  const leaf: ReceiptLeaf = entry !== undefined ? { entry: entryLeaf(await readFile(entry)) } : { leafHash: hash32(hex!, "--leaf-hash") };
  const r = verifyReceipt(await readFile(file), leaf, { log, witnesses, required, name: file });
  ctx.say(r.summary);
  ctx.emit(r.json);
}
