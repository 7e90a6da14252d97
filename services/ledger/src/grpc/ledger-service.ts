// The LedgerService contract over the use cases: decode, call, encode. Errors are domain
// errors, mapped to gRPC/HTTP codes by the kit.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate, type Duration } from "@bufbuild/protobuf/wkt";

import { bind, requireActor, type ServiceBinding } from "@deai/kit";
import { DigestSchema, DsseEnvelopeSchema } from "@deai/contracts/deai/common/v1/common_pb";
import {
  CheckpointSchema,
  EntrySchema,
  LedgerService,
  LineageDirection,
  NoteSignatureSchema,
  ReceiptSchema,
  type Checkpoint,
  type Entry,
  type Receipt,
} from "@deai/contracts/deai/ledger/v1/ledger_pb";

import type { Digest } from "../domain/digest.js";
import type { LineageDirection as Direction } from "../domain/lineage.js";
import type { CheckpointView, EntryView, Ledger, ReceiptView } from "../app/ledger.js";

function digest(d: Digest): ReturnType<typeof create<typeof DigestSchema>> {
  return create(DigestSchema, { algorithm: d.algorithm, hex: d.hex });
}

function receiptMsg(r: ReceiptView): Receipt {
  return create(ReceiptSchema, {
    logOrigin: r.logOrigin,
    index: BigInt(r.index),
    leafHash: r.leafHash,
    inclusionProof: [...r.inclusionProof],
    checkpoint: r.checkpoint,
    treeSize: BigInt(r.treeSize),
    tlogProof: r.tlogProof,
  });
}

function checkpointMsg(c: CheckpointView): Checkpoint {
  return create(CheckpointSchema, {
    note: c.note,
    origin: c.origin,
    size: BigInt(c.size),
    rootHash: c.rootHash,
    signatures: c.signatures.map((s) =>
      create(NoteSignatureSchema, {
        name: s.name,
        keyHash: new Uint8Array([s.keyId >>> 24, (s.keyId >>> 16) & 0xff, (s.keyId >>> 8) & 0xff, s.keyId & 0xff]),
        signature: s.signature,
        witness: s.witness,
        ...(s.cosignedAt ? { cosignedAt: timestampFromDate(s.cosignedAt) } : {}),
      }),
    ),
    publishedAt: timestampFromDate(c.publishedAt),
  });
}

function entryMsg(e: Omit<EntryView, "receipt"> & { receipt?: ReceiptView }): Entry {
  return create(EntrySchema, {
    index: BigInt(e.index),
    leafHash: e.leafHash,
    envelope: create(DsseEnvelopeSchema, {
      payloadType: e.envelope.payloadType,
      payload: e.envelope.payload,
      signatures: e.envelope.signatures.map((s) => ({ keyid: s.keyid, sig: s.sig })),
    }),
    leaf: e.leaf,
    sequencedAt: timestampFromDate(e.sequencedAt),
    integrated: e.integrated,
    predicateType: e.predicateType,
    subjects: e.subjects.map(digest),
    materials: e.materials.map(digest),
    signers: [...e.signers],
    ...(e.receipt ? { receipt: receiptMsg(e.receipt) } : {}),
  });
}

function durationMs(d: Duration | undefined): number | undefined {
  if (d === undefined) return undefined;
  return Math.max(0, Number(d.seconds) * 1000 + Math.floor(d.nanos / 1e6));
}

function direction(d: LineageDirection): Direction {
  return d === LineageDirection.DESCENDANTS ? "descendants" : d === LineageDirection.BOTH ? "both" : "ancestors";
}

/** Binds LedgerService to the use cases. */
export function ledgerService(ledger: Ledger): ServiceBinding {
  return bind(LedgerService, {
    async append(req) {
      const waitMs = durationMs(req.waitTimeout);
      const r = await ledger.append(req.envelope, { wait: req.waitForIntegration, ...(waitMs !== undefined ? { waitMs } : {}) });
      return {
        index: BigInt(r.index),
        leafHash: r.leafHash,
        duplicate: r.duplicate,
        integrated: r.integrated,
        ...(r.receipt ? { receipt: receiptMsg(r.receipt) } : {}),
        witnessCosignatures: r.witnessCosignatures ?? 0,
        witnessQuorum: r.witnessQuorum,
      };
    },
    async appendBatch(req) {
      const results = await ledger.appendBatch(req.envelopes);
      return { results: results.map((r) => ({ index: BigInt(r.index), leafHash: r.leafHash, duplicate: r.duplicate })) };
    },
    async getEntry(req) {
      const key =
        req.key.case === "index" ? { index: req.key.value } : req.key.case === "leafHash" ? { leafHash: req.key.value } : undefined;
      return { entry: entryMsg(await ledger.getEntry(key, req.includeReceipt)) };
    },
    async getInclusionProof(req) {
      const leaf =
        req.leaf.case === "leafIndex" ? { index: req.leaf.value } : req.leaf.case === "leafHash" ? { leafHash: req.leaf.value } : undefined;
      const r = await ledger.inclusionProof(leaf, req.treeSize);
      return {
        leafIndex: BigInt(r.leafIndex),
        treeSize: BigInt(r.treeSize),
        inclusionProof: r.proof,
        ...(r.checkpoint ? { checkpoint: checkpointMsg(r.checkpoint) } : {}),
      };
    },
    async getConsistencyProof(req) {
      const r = await ledger.consistencyProof(req.first, req.second);
      return { first: BigInt(r.first), second: BigInt(r.second), consistencyProof: r.proof };
    },
    async getLatestCheckpoint() {
      return { checkpoint: checkpointMsg(await ledger.latestCheckpoint()) };
    },
    async publishCheckpoint() {
      const r = await ledger.publishCheckpoint();
      return { checkpoint: checkpointMsg(r.checkpoint), published: r.published };
    },
    async addCosignature(req, ctx) {
      return { checkpoint: checkpointMsg(await ledger.addCosignature(requireActor(ctx), req)) };
    },
    async searchBySubject(req) {
      const r = await ledger.searchBySubject({
        algorithm: req.algorithm,
        hex: req.hex,
        predicateType: req.predicateType,
        includeReceipts: req.includeReceipts,
        pageSize: req.pageSize,
        pageToken: req.pageToken,
      });
      return { entries: r.entries.map(entryMsg), nextPageToken: r.nextPageToken };
    },
    async getLineage(req) {
      const r = await ledger.lineage({
        algorithm: req.algorithm,
        hex: req.hex,
        direction: direction(req.direction),
        maxDepth: req.maxDepth,
      });
      return {
        root: digest(r.root),
        truncated: r.truncated,
        checkpoint: checkpointMsg(r.checkpoint),
        hops: r.hops.map((h) => ({
          subject: digest(h.subject),
          material: digest(h.material),
          depth: h.depth,
          direction: h.direction === "ancestors" ? LineageDirection.ANCESTORS : LineageDirection.DESCENDANTS,
          predicateType: h.predicateType,
          entry: entryMsg(h.entry),
          receipt: receiptMsg(h.receipt),
        })),
      };
    },
  });
}
