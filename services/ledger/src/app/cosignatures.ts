// Witness cosignatures (C2SP tlog-cosignature) and the witness quorum: which checkpoint the
// log publishes. Cosignatures are verified against the configured witness keys before they
// are kept; with a quorum k > 0 the served checkpoint is the newest one with at least k of
// them, its note carrying their signature lines after the log's.
import type { Kysely } from "kysely";

import { ConfigError } from "@deai/kit";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, PermissionDeniedError } from "@deai/kit/errors";
import {
  base64Decode,
  bytesEqual,
  COSIGNATURE_V1_TYPE,
  cosignatureTimestamp,
  formatSignatureLine,
  keyIdHex,
  parseNote,
  parseVerifierKey,
  utf8Encode,
  type NoteSignature,
  type NoteVerifier,
} from "@deai/proofs";

import { cosignaturesOf, latestCosignedCheckpoint, upsertCosignature, type CosignatureRow } from "../store/cosignatures.js";
import type { LedgerDb } from "../store/tables.js";
import { checkpointAt, latestCheckpoint, type CheckpointRow } from "../store/tree.js";
import { waitUntil } from "./wake-or-poll.js";

/** A configured witness: its cosignature verifier and the actor id (same Ed25519 key) it calls with. */
export interface WitnessKey {
  readonly verifier: NoteVerifier;
  /** base64url of the witness's Ed25519 public key: the actor that signs its requests. */
  readonly actor: string;
}

/** A checkpoint with the cosignatures the log holds for it appended to its note. */
export interface CosignedCheckpoint {
  readonly row: CheckpointRow;
  /** Valid cosignatures (by configured witnesses) now in `row.note`. */
  readonly cosignatures: number;
}

/** Parses LEDGER_WITNESS_KEYS: comma-separated type 0x04 verifier keys. */
export function parseWitnessKeys(text: string): WitnessKey[] {
  const out: WitnessKey[] = [];
  for (const raw of text.split(",")) {
    const vkey = raw.trim();
    if (vkey === "") continue;
    let verifier: NoteVerifier;
    try {
      verifier = parseVerifierKey(vkey);
    } catch (e) {
      throw new ConfigError("LEDGER_WITNESS_KEYS", `${JSON.stringify(vkey)}: ${(e as Error).message}`);
    }
    if (verifier.type !== COSIGNATURE_V1_TYPE) {
      throw new ConfigError("LEDGER_WITNESS_KEYS", `${verifier.name}: a witness key must be a cosignature (type 0x04) key`);
    }
    if (out.some((w) => w.verifier.name === verifier.name && w.verifier.keyId === verifier.keyId)) {
      throw new ConfigError("LEDGER_WITNESS_KEYS", `${verifier.name}+${keyIdHex(verifier.keyId)} is listed twice`);
    }
    // name+id+base64(type ‖ key): names and ids hold no "+", base64 may.
    const publicKey = base64Decode(vkey.split("+").slice(2).join("+"))!.subarray(1);
    out.push({ verifier, actor: Buffer.from(publicKey).toString("base64url") });
  }
  return out;
}

function parseSignatureLine(line: string): NoteSignature {
  if (line.includes("\n")) throw new InvalidArgumentError("signature_line must be one line");
  try {
    return parseNote(`x\n\n${line}\n`).signatures[0]!;
  } catch (e) {
    throw new InvalidArgumentError(`signature_line: ${(e as Error).message}`);
  }
}

export interface CosignaturesOptions {
  readonly db: Kysely<LedgerDb>;
  readonly witnesses: readonly WitnessKey[];
  /** Distinct witness cosignatures a checkpoint needs before it is published. */
  readonly quorum: number;
}

export class Cosignatures {
  private readonly listeners = new Set<() => void>();

  constructor(private readonly o: CosignaturesOptions) {
    if (o.quorum > o.witnesses.length) {
      throw new ConfigError(
        "LEDGER_WITNESS_QUORUM",
        `a quorum of ${o.quorum} needs at least ${o.quorum} witness keys in LEDGER_WITNESS_KEYS, got ${o.witnesses.length}`,
      );
    }
  }

  get quorum(): number {
    return this.o.quorum;
  }

  /** Verifies and stores a witness's cosignature of checkpoint `treeSize`; returns the checkpoint with its cosignatures. */
  async add(actor: string, req: { treeSize: number; rootHash: Uint8Array; signatureLine: string }): Promise<CosignedCheckpoint> {
    const witness = this.o.witnesses.find((w) => w.actor === actor);
    if (!witness) throw new PermissionDeniedError(`actor ${actor} is not one of this log's witnesses (LEDGER_WITNESS_KEYS)`);
    const sig = parseSignatureLine(req.signatureLine);
    const v = witness.verifier;
    if (sig.name !== v.name || sig.keyId !== v.keyId) {
      throw new InvalidArgumentError(
        `signature_line is by ${sig.name}+${keyIdHex(sig.keyId)}, not by the calling witness's key ${v.name}+${keyIdHex(v.keyId)}`,
      );
    }
    if (req.rootHash.length !== 32) throw new InvalidArgumentError(`root_hash must be 32 bytes, got ${req.rootHash.length}`);
    const row = await checkpointAt(this.o.db, req.treeSize);
    if (row === undefined) throw new NotFoundError(`the log has not signed a checkpoint of size ${req.treeSize}`);
    if (!bytesEqual(row.root_hash, req.rootHash)) {
      throw new InvalidArgumentError(`root_hash is not the root of the log's checkpoint of size ${req.treeSize}`);
    }
    const text = parseNote(row.note).text;
    if (!v.verify(utf8Encode(text)!, sig.signature)) {
      throw new InvalidArgumentError(`the cosignature by ${v.name} does not verify for the checkpoint of size ${req.treeSize}`);
    }
    await upsertCosignature(this.o.db, {
      tree_size: row.tree_size,
      witness: v.name,
      key_id: v.keyId,
      line: formatSignatureLine(sig),
      cosigned_at: cosignatureTimestamp(sig.signature),
    });
    for (const l of [...this.listeners]) l();
    return this.attach(row);
  }

  /** The checkpoint the log publishes: the newest one with the quorum (the newest signed one when the quorum is 0). */
  async published(): Promise<CosignedCheckpoint | undefined> {
    if (this.o.quorum === 0) {
      const row = await latestCheckpoint(this.o.db);
      return row && this.attach(row);
    }
    const keys = this.o.witnesses.map((w) => ({ name: w.verifier.name, keyId: w.verifier.keyId }));
    const r = await latestCosignedCheckpoint(this.o.db, keys, this.o.quorum);
    return r && this.withLines(r.checkpoint, r.cosignatures);
  }

  /** The published checkpoint; FailedPrecondition before there is one. */
  async requirePublished(): Promise<CosignedCheckpoint> {
    const cp = await this.published();
    if (cp) return cp;
    if (this.o.quorum === 0) throw new FailedPreconditionError("the log has not published a checkpoint yet");
    throw new FailedPreconditionError(`no checkpoint has reached the witness quorum of ${this.o.quorum} yet`);
  }

  /** A checkpoint with the cosignatures held for it appended to its note. */
  async attach(row: CheckpointRow): Promise<CosignedCheckpoint> {
    // Only configured witnesses' lines count: with none, there is nothing to read.
    if (this.o.witnesses.length === 0) return { row, cosignatures: 0 };
    return this.withLines(row, await cosignaturesOf(this.o.db, [row.tree_size]));
  }

  /** Waits until the published checkpoint covers `size` leaves; undefined at the deadline. */
  async waitForPublished(size: number, timeoutMs: number): Promise<CosignedCheckpoint | undefined> {
    return waitUntil(
      async () => {
        const cp = await this.published();
        return cp && cp.row.tree_size >= size ? cp : undefined;
      },
      this.listeners,
      timeoutMs,
    );
  }

  private withLines(row: CheckpointRow, cosignatures: readonly CosignatureRow[]): CosignedCheckpoint {
    // Only currently configured witness keys count (the configuration may have changed).
    const valid = cosignatures.filter((c) => this.o.witnesses.some((w) => w.verifier.name === c.witness && w.verifier.keyId === c.key_id));
    if (valid.length === 0) return { row, cosignatures: 0 };
    return { row: { ...row, note: row.note + valid.map((c) => c.line + "\n").join("") }, cosignatures: valid.length };
  }
}
