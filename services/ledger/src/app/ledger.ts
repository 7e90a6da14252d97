// The ledger's use cases: append, reads, proofs, checkpoints, search and lineage.
import type { Kysely } from "kysely";

import { systemClock, type Clock } from "@deai/kit/clock";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "@deai/kit/errors";
import { cosignatureTimestamp, formatTlogProof, parseCheckpoint, parseDecimal, parseNote, type NoteSignature } from "@deai/proofs";

import {
  completeEnvelope,
  envelopeFromLeaf,
  prepareEnvelope,
  type Envelope,
  type PreparedEnvelope,
  type VerifiedEntry,
} from "../domain/envelope.js";
import { digestFromKey, digestKey, parseDigest, type Digest } from "../domain/digest.js";
import { walkLineage, type LineageDirection, type LineageEdge } from "../domain/lineage.js";
import { requirePredicateType } from "../domain/statement.js";
import {
  entriesByIndexes,
  entriesNaming,
  entryByIndex,
  entryByLeafHash,
  indexesByDigest,
  sequencedCount,
  type EntryRow,
  type NewEntry,
} from "../store/entries.js";
import type { LedgerDb } from "../store/tables.js";
import { checkpointAt, latestCheckpoint, type CheckpointRow } from "../store/tree.js";
import type { AppendBatcher } from "./append-batcher.js";
import type { Cosignatures } from "./cosignatures.js";
import type { Integrator } from "./integrator.js";
import type { SignatureVerifier } from "./signature-verifier.js";
import { TreeReader } from "./tree-reader.js";

/** A tlog-proof receipt, in parts and as text. */
export interface ReceiptView {
  readonly logOrigin: string;
  readonly index: number;
  readonly leafHash: Uint8Array;
  readonly inclusionProof: readonly Uint8Array[];
  readonly checkpoint: string;
  readonly treeSize: number;
  readonly tlogProof: string;
}

export interface CheckpointView {
  readonly note: string;
  readonly origin: string;
  readonly size: number;
  readonly rootHash: Uint8Array;
  readonly signatures: readonly (NoteSignature & { readonly witness: boolean; readonly cosignedAt?: Date })[];
  readonly publishedAt: Date;
}

export interface EntryView {
  readonly index: number;
  readonly leafHash: Uint8Array;
  readonly envelope: Envelope;
  readonly leaf: Uint8Array;
  readonly sequencedAt: Date;
  readonly integrated: boolean;
  readonly predicateType: string;
  readonly subjects: readonly Digest[];
  readonly materials: readonly Digest[];
  readonly signers: readonly string[];
  readonly receipt?: ReceiptView;
}

export interface LineageHopView extends LineageEdge {
  readonly predicateType: string;
  readonly entry: EntryView;
  readonly receipt: ReceiptView;
}

export interface LedgerOptions {
  readonly db: Kysely<LedgerDb>;
  readonly origin: string;
  readonly batcher: AppendBatcher;
  readonly integrator: Integrator;
  /** Where envelope signatures are checked (worker threads or inline). */
  readonly verifier: SignatureVerifier;
  /** Witness cosignatures and the quorum that decides which checkpoint is published. */
  readonly cosignatures: Cosignatures;
  /** Default and cap of Append's wait for integration. */
  readonly waitDefaultMs: number;
  readonly waitMaxMs: number;
  /** Time for append deadlines and the latest-checkpoint cache. @default systemClock */
  readonly clock?: Clock;
}

const MAX_PAGE = 500;
const DEFAULT_PAGE = 50;
const DEFAULT_DEPTH = 8;
const MAX_DEPTH = 32;
const MAX_HOPS = 1000;
/** Most envelopes in one AppendBatch. */
export const MAX_APPEND_BATCH = 1000;

function requireIndex(n: bigint, what: string): number {
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidArgumentError(`${what} ${n} is out of range`);
  return Number(n);
}

function requireLeafHash(h: Uint8Array): Uint8Array {
  if (h.length !== 32) throw new InvalidArgumentError(`leaf_hash must be 32 bytes, got ${h.length}`);
  return h;
}

function newEntry(v: VerifiedEntry): NewEntry {
  return {
    leafHash: v.leafHash,
    leaf: v.leaf,
    predicateType: v.statement.predicateType,
    signers: v.signers,
    subjects: v.statement.subjects.map(digestKey),
    materials: v.statement.materials.map(digestKey),
  };
}

/** A requested tree size as a cache bound: undefined for 0 ("latest") and for sizes no tree can have. */
function boundOf(size: bigint): number | undefined {
  return size === 0n || size > BigInt(Number.MAX_SAFE_INTEGER) ? undefined : Number(size);
}

/** How long proofs against "the latest checkpoint" may use a cached one (another replica may have signed since). */
const LATEST_TTL_MS = 100;

export class Ledger {
  private latest: { row: CheckpointRow; at: number } | undefined;
  private latestGeneration = 0;
  private readonly tree: TreeReader;
  private readonly clock: Clock;

  constructor(private readonly o: LedgerOptions) {
    this.tree = new TreeReader(o.db);
    this.clock = o.clock ?? systemClock;
    o.integrator.onPublished(() => {
      this.latest = undefined;
      this.latestGeneration++;
    });
  }

  /** Verifies and sequences an envelope; optionally waits for a checkpoint and returns the receipt. */
  async append(
    envelope: Envelope | undefined,
    opts: { wait: boolean; waitMs?: number },
  ): Promise<{
    index: number;
    leafHash: Uint8Array;
    duplicate: boolean;
    integrated: boolean;
    receipt?: ReceiptView;
    witnessCosignatures?: number;
    witnessQuorum: number;
  }> {
    const p = prepareEnvelope(envelope);
    const v = completeEnvelope(p, await this.o.verifier.verify(p.checks));
    const { index, duplicate } = await this.o.batcher.submit(newEntry(v));
    const base = { index, leafHash: v.leafHash, duplicate, witnessQuorum: this.o.cosignatures.quorum };
    if (!opts.wait) {
      // A fresh entry was committed just now, after every checkpoint seen when its batch
      // committed: it is not integrated yet, and saying so spares a query per append (the
      // hot path). Only a duplicate may already be covered.
      if (!duplicate) return { ...base, integrated: false };
      const cp = await latestCheckpoint(this.o.db);
      return { ...base, integrated: cp !== undefined && cp.tree_size > index };
    }
    this.o.integrator.requestSoon();
    const waitMs = Math.min(opts.waitMs ?? this.o.waitDefaultMs, this.o.waitMaxMs);
    const deadline = this.clock.nowMs() + waitMs;
    if (!(await this.o.integrator.waitForSize(index + 1, waitMs))) return { ...base, integrated: false };
    // With a witness quorum, wait (within the same deadline) for a published checkpoint; past
    // it, the receipt is against the log-signed checkpoint and says how many cosignatures it has.
    const published =
      this.o.cosignatures.quorum > 0
        ? await this.o.cosignatures.waitForPublished(index + 1, Math.max(0, deadline - this.clock.nowMs()))
        : undefined;
    const latest = await latestCheckpoint(this.o.db);
    const cp = published ?? (latest && (await this.o.cosignatures.attach(latest)));
    if (cp === undefined || cp.row.tree_size <= index) return { ...base, integrated: false };
    const [receipt] = await this.receipts([{ index, leafHash: v.leafHash }], cp.row);
    return { ...base, integrated: true, receipt: receipt!, witnessCosignatures: cp.cosignatures };
  }

  /**
   * Verifies every envelope, then sequences all of them in one transaction (request order).
   * One invalid envelope rejects the whole batch, nothing written, with InvalidArgumentError
   * `envelopes[i]: <why>` for the first one (lowest i).
   */
  async appendBatch(envelopes: readonly Envelope[]): Promise<{ index: number; leafHash: Uint8Array; duplicate: boolean }[]> {
    if (envelopes.length === 0) throw new InvalidArgumentError("envelopes is empty: send 1 to 1000 envelopes");
    if (envelopes.length > MAX_APPEND_BATCH)
      throw new InvalidArgumentError(`envelopes holds ${envelopes.length} envelopes; the limit is ${MAX_APPEND_BATCH}`);
    const at = (i: number, e: unknown): unknown =>
      e instanceof InvalidArgumentError ? new InvalidArgumentError(`envelopes[${i}]: ${e.message}`, { ...e.details, position: i }) : e;
    // Structural checks first; signatures are only checked up to the first envelope that
    // fails them (its error is reported unless an earlier envelope's signature fails).
    const prepared: PreparedEnvelope[] = [];
    let structural: { i: number; error: unknown } | undefined;
    for (const [i, e] of envelopes.entries()) {
      try {
        prepared.push(prepareEnvelope(e));
      } catch (err) {
        structural = { i, error: err };
        break;
      }
    }
    // An envelope repeated in the batch (same leaf) is verified once: its checks are the same.
    const keyOf = (p: PreparedEnvelope): string => Buffer.from(p.leafHash).toString("hex");
    const unique = [...new Map(prepared.map((p) => [keyOf(p), p])).values()];
    const ok = await this.o.verifier.verify(unique.flatMap((p) => p.checks));
    const outcomes = new Map<string, readonly boolean[]>();
    let k = 0;
    for (const p of unique) {
      outcomes.set(keyOf(p), ok.slice(k, k + p.checks.length));
      k += p.checks.length;
    }
    const verified: VerifiedEntry[] = [];
    for (const [i, p] of prepared.entries()) {
      try {
        verified.push(completeEnvelope(p, outcomes.get(keyOf(p))!));
      } catch (err) {
        throw at(i, err);
      }
    }
    if (structural) throw at(structural.i, structural.error);
    const out = await this.o.batcher.submitMany(verified.map(newEntry));
    return out.map((s, i) => ({ index: s.index, leafHash: verified[i]!.leafHash, duplicate: s.duplicate }));
  }

  async getEntry(key: { index: bigint } | { leafHash: Uint8Array } | undefined, includeReceipt: boolean): Promise<EntryView> {
    if (key === undefined) throw new InvalidArgumentError("index or leaf_hash is required");
    const row =
      "index" in key
        ? await entryByIndex(this.o.db, requireIndex(key.index, "index"))
        : await entryByLeafHash(this.o.db, requireLeafHash(key.leafHash));
    if (row === undefined) {
      if ("index" in key) throw new NotFoundError(`no entry at index ${key.index}: the log has ${await sequencedCount(this.o.db)} entries`);
      throw new NotFoundError("no entry with that leaf hash");
    }
    const cp = (await this.o.cosignatures.published())?.row;
    const [view] = await this.views([row], cp, includeReceipt);
    return view!;
  }

  async inclusionProof(
    leaf: { index: bigint } | { leafHash: Uint8Array } | undefined,
    treeSize: bigint,
  ): Promise<{ leafIndex: number; treeSize: number; proof: Uint8Array[]; checkpoint?: CheckpointView }> {
    if (leaf === undefined) throw new InvalidArgumentError("leaf_index or leaf_hash is required");
    const latest = await this.requireLatest(boundOf(treeSize));
    const size = treeSize === 0n ? latest.tree_size : requireIndex(treeSize, "tree_size");
    if (size > latest.tree_size)
      throw new InvalidArgumentError(`tree_size ${size} is beyond the latest checkpoint (size ${latest.tree_size})`);
    let index: number;
    if ("index" in leaf) index = requireIndex(leaf.index, "leaf_index");
    else {
      const row = await entryByLeafHash(this.o.db, requireLeafHash(leaf.leafHash));
      if (row === undefined) throw new NotFoundError("no entry with that leaf hash");
      index = row.idx;
    }
    if (index >= size) throw new InvalidArgumentError(`leaf index ${index} is not in the tree of size ${size}`);
    const [proof] = await this.tree.inclusionProofs([index], size);
    const signed = size === latest.tree_size ? latest : await checkpointAt(this.o.db, size);
    const cp = signed && (await this.o.cosignatures.attach(signed)).row;
    return { leafIndex: index, treeSize: size, proof: proof!, ...(cp ? { checkpoint: this.checkpointView(cp) } : {}) };
  }

  async consistencyProof(first: bigint, second: bigint): Promise<{ first: number; second: number; proof: Uint8Array[] }> {
    const latest = await this.requireLatest(boundOf(second));
    const a = requireIndex(first, "first");
    const b = second === 0n ? latest.tree_size : requireIndex(second, "second");
    if (a === 0) throw new InvalidArgumentError("first must be > 0");
    if (a > b) throw new InvalidArgumentError(`first ${a} is greater than second ${b}`);
    if (b > latest.tree_size) throw new InvalidArgumentError(`second ${b} is beyond the latest checkpoint (size ${latest.tree_size})`);
    return { first: a, second: b, proof: await this.tree.consistencyProof(a, b) };
  }

  /** The published checkpoint (with the witness quorum, when one is required) and its cosignatures. */
  async latestCheckpoint(): Promise<CheckpointView> {
    return this.checkpointView((await this.o.cosignatures.requirePublished()).row);
  }

  /** Records a witness cosignature (the caller must be a configured witness). */
  async addCosignature(actor: string, req: { treeSize: bigint; rootHash: Uint8Array; signatureLine: string }): Promise<CheckpointView> {
    const cp = await this.o.cosignatures.add(actor, {
      treeSize: requireIndex(req.treeSize, "tree_size"),
      rootHash: req.rootHash,
      signatureLine: req.signatureLine,
    });
    return this.checkpointView(cp.row);
  }

  async publishCheckpoint(): Promise<{ checkpoint: CheckpointView; published: boolean }> {
    if (!this.o.integrator.canSign)
      throw new FailedPreconditionError("this replica has no log signing key (LEDGER_SIGNING_KEY); it cannot publish checkpoints");
    const r = await this.o.integrator.publishNow();
    return { checkpoint: this.checkpointView((await this.o.cosignatures.attach(r.checkpoint)).row), published: r.published };
  }

  async searchBySubject(q: {
    algorithm: string;
    hex: string;
    predicateType: string;
    includeReceipts: boolean;
    pageSize: number;
    pageToken: string;
  }): Promise<{ entries: EntryView[]; nextPageToken: string }> {
    const digest = parseDigest(q.algorithm, q.hex, "subject");
    // Checked as appends check it: a NUL would otherwise fail the query in Postgres (500).
    if (q.predicateType) requirePredicateType(q.predicateType, "predicate_type");
    let before: number | undefined;
    if (q.pageToken !== "") {
      // Canonical decimal only (no sign, space, leading zero, hex or exponent), a safe integer.
      before = parseDecimal(q.pageToken);
      if (before === undefined) throw new InvalidArgumentError("page_token is not one this server issued");
    }
    const limit = Math.min(q.pageSize === 0 ? DEFAULT_PAGE : q.pageSize, MAX_PAGE);
    const idxs = await indexesByDigest(this.o.db, digestKey(digest), "s", {
      limit: limit + 1,
      ...(before !== undefined ? { before } : {}),
      ...(q.predicateType ? { predicateType: q.predicateType } : {}),
    });
    const page = idxs.slice(0, limit);
    const rows = (await entriesByIndexes(this.o.db, page)).sort((a, b) => b.idx - a.idx);
    const cp = (await this.o.cosignatures.published())?.row;
    const entries = await this.views(rows, cp, q.includeReceipts);
    return { entries, nextPageToken: idxs.length > limit ? String(page[page.length - 1]) : "" };
  }

  async lineage(q: {
    algorithm: string;
    hex: string;
    direction: LineageDirection;
    maxDepth: number;
  }): Promise<{ root: Digest; hops: LineageHopView[]; truncated: boolean; checkpoint: CheckpointView }> {
    const root = parseDigest(q.algorithm, q.hex, "digest");
    const cp = (await this.o.cosignatures.requirePublished()).row;
    const depth = Math.min(q.maxDepth === 0 ? DEFAULT_DEPTH : q.maxDepth, MAX_DEPTH);
    const rows = new Map<number, EntryRow>();
    // Only integrated entries count, so every hop has a receipt against `cp`.
    const walk = await walkLineage(root, q.direction, depth, MAX_HOPS, async (digests, role) => {
      const found = await entriesNaming(this.o.db, digests.map(digestKey), role === "subject" ? "s" : "m", cp.tree_size, MAX_HOPS + 1);
      for (const r of found) rows.set(r.idx, r);
      return found.map((r) => ({ index: r.idx, subjects: r.subjects.map(digestFromKey), materials: r.materials.map(digestFromKey) }));
    });
    const used = [...new Set(walk.edges.map((e) => e.index))].map((i) => rows.get(i)!);
    const views = await this.views(used, cp, true);
    const byIndex = new Map(views.map((v) => [v.index, v]));
    const hops = walk.edges.map((e): LineageHopView => {
      const { receipt, ...entry } = byIndex.get(e.index)!;
      return { ...e, predicateType: entry.predicateType, entry, receipt: receipt! };
    });
    return { root, hops, truncated: walk.truncated, checkpoint: this.checkpointView(cp) };
  }

  /**
   * The newest log-signed checkpoint. Checkpoints are immutable and only ever added, so a
   * cached one bounds every size up to its own: a request for a size it covers uses it; a
   * larger size, or "latest" (`atLeast` undefined) once the cache is LATEST_TTL_MS old, reads
   * the table. This replica's integrator drops the cache whenever it signs.
   */
  private async requireLatest(atLeast?: number): Promise<CheckpointRow> {
    const c = this.latest;
    if (c && (atLeast !== undefined ? c.row.tree_size >= atLeast : this.clock.nowMs() - c.at < LATEST_TTL_MS)) return c.row;
    const generation = this.latestGeneration;
    const at = this.clock.nowMs();
    const cp = await latestCheckpoint(this.o.db);
    if (cp === undefined) throw new FailedPreconditionError("the log has not published a checkpoint yet");
    // A read that overlapped a signing here may be older than the new checkpoint: not kept.
    if (generation === this.latestGeneration && (this.latest === undefined || cp.tree_size >= this.latest.row.tree_size)) {
      this.latest = { row: cp, at };
    }
    return cp;
  }

  private checkpointView(row: CheckpointRow): CheckpointView {
    const note = parseNote(row.note);
    const c = parseCheckpoint(note.text);
    return {
      note: row.note,
      origin: c.origin,
      size: c.size,
      rootHash: c.rootHash,
      signatures: note.signatures.map((s) => {
        const witness = s.name !== c.origin;
        const cosignedAt = witness && s.signature.length === 72 ? new Date(cosignatureTimestamp(s.signature) * 1000) : undefined;
        return { ...s, witness, ...(cosignedAt ? { cosignedAt } : {}) };
      }),
      publishedAt: row.published_at,
    };
  }

  private async receipts(leaves: readonly { index: number; leafHash: Uint8Array }[], cp: CheckpointRow): Promise<ReceiptView[]> {
    const proofs = await this.tree.inclusionProofs(
      leaves.map((l) => l.index),
      cp.tree_size,
    );
    return leaves.map((l, i) => {
      const inclusionProof = proofs[i]!;
      return {
        logOrigin: this.o.origin,
        index: l.index,
        leafHash: l.leafHash,
        inclusionProof,
        checkpoint: cp.note,
        treeSize: cp.tree_size,
        tlogProof: formatTlogProof({ index: l.index, inclusionProof, checkpoint: cp.note }),
      };
    });
  }

  private async views(rows: readonly EntryRow[], cp: CheckpointRow | undefined, withReceipts: boolean): Promise<EntryView[]> {
    const size = cp?.tree_size ?? 0;
    const wanted = withReceipts && cp ? rows.filter((r) => r.idx < size) : [];
    const receipts =
      cp && wanted.length > 0
        ? await this.receipts(
            wanted.map((r) => ({ index: r.idx, leafHash: r.leaf_hash })),
            cp,
          )
        : [];
    const byIndex = new Map(receipts.map((r) => [r.index, r]));
    return rows.map((r) => {
      const receipt = byIndex.get(r.idx);
      return {
        index: r.idx,
        leafHash: r.leaf_hash,
        envelope: envelopeFromLeaf(r.leaf),
        leaf: r.leaf,
        sequencedAt: r.sequenced_at,
        integrated: r.idx < size,
        predicateType: r.predicate_type,
        subjects: r.subjects.map(digestFromKey),
        materials: r.materials.map(digestFromKey),
        signers: r.signers,
        ...(receipt ? { receipt } : {}),
      };
    });
  }
}
