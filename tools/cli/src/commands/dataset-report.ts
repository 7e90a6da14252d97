// How upload and show print a dataset: its commitments, manifest fields, placements, ledger
// index and receipt (verified offline against the pinned log key when one is given), and the
// envelope and receipt files `deai dataset verify --envelope --receipt` checks later.
import { writeFile } from "node:fs/promises";

import type { NoteVerifier } from "@deai/proofs";

import { CheckFailed, str, type Context } from "../cli.js";
import { u64, type DatasetJson } from "../dataset-api.js";
import { envelopeLeaf } from "../envelope.js";
import { formatBytes } from "../progress.js";
import { verifyReceipt, type ReceiptCheck } from "./verify.js";

export async function reportDataset(
  ctx: Context,
  ds: DatasetJson,
  extra: { uploadId?: string; deduplicated?: boolean; log?: NoteVerifier | undefined } = {},
): Promise<void> {
  const m = ds.manifest ?? {};
  const receipt = ds.receipt?.tlogProof;
  const envelope = ds.manifestEnvelope;
  let checked: ReceiptCheck | undefined;
  if (extra.log) {
    if (!receipt || !envelope) throw new CheckFailed(`dataset ${ds.datasetId} has no envelope and receipt to verify`);
    checked = verifyReceipt(receipt, { entry: envelopeLeaf(envelope) }, { log: extra.log, name: `the receipt of dataset ${ds.datasetId}` });
  }
  const receiptOut = str(ctx, "receipt-out");
  const envelopeOut = str(ctx, "envelope-out");
  if (receiptOut !== undefined) {
    if (!receipt) throw new CheckFailed(`dataset ${ds.datasetId} has no receipt`);
    await writeFile(receiptOut, receipt);
    ctx.warn(`wrote the receipt to ${receiptOut}`);
  }
  if (envelopeOut !== undefined) {
    if (!envelope) throw new CheckFailed(`dataset ${ds.datasetId} has no envelope`);
    await writeFile(envelopeOut, JSON.stringify(envelope, null, 2) + "\n");
    ctx.warn(`wrote the signed manifest envelope to ${envelopeOut}`);
  }
  const shardRoot = Buffer.from(m.shardRoot ?? "", "base64").toString("hex");
  const size = u64(m.size);
  ctx.emit({
    ok: true,
    datasetId: ds.datasetId,
    ...(extra.uploadId !== undefined ? { uploadId: extra.uploadId, deduplicated: extra.deduplicated ?? false } : {}),
    contentDigest: m.contentDigest?.hex,
    shardRoot,
    size,
    k: m.k,
    m: m.m,
    shardSize: m.shardSize,
    stripes: u64(m.stripes),
    owner: m.owner,
    ledgerIndex: ds.receipt?.index === undefined ? undefined : u64(ds.receipt.index),
    manifest: m,
    envelope,
    receipt,
    ...(checked ? { receiptVerified: checked.json } : {}),
  });
  const kv = (k: string, v: string): string => `${k.padEnd(14)} ${v}`;
  const lines = [
    kv("dataset", ds.datasetId),
    kv("contentDigest", `sha256:${m.contentDigest?.hex ?? "?"}`),
    kv("shardRoot", shardRoot),
    kv("size", `${size} bytes (${formatBytes(size)})`),
    kv("coding", `k=${m.k} m=${m.m} S=${m.shardSize}, ${u64(m.stripes)} stripes, ${m.codec ?? "?"}`),
    kv("name", m.name ?? ""),
    kv("media type", m.mediaType ?? ""),
    kv("license", m.license ?? ""),
    kv("usage terms", m.usageTerms ?? ""),
    kv("owner", m.owner ?? ""),
    kv("parents", (m.parents ?? []).map((p) => `${p.algorithm}:${p.hex}`).join(" ") || "-"),
    kv(
      "provenance",
      Object.entries(m.provenance ?? {})
        .map(([k, v]) => `${k}=${v}`)
        .join(" ") || "-",
    ),
    kv("created", m.createdAt ?? ""),
    ...(m.placements ?? []).map((p) =>
      kv(
        p.slot === 0 || p.slot === undefined ? "placements" : "",
        `${String(p.slot ?? 0).padStart(3)} ${p.providerId} ${p.endpoint}/${p.bucket}/${p.key}`,
      ),
    ),
    kv("ledger index", `${ds.receipt?.index ?? "?"}${ds.receipt?.logOrigin ? ` (${ds.receipt.logOrigin})` : ""}`),
  ];
  if (extra.uploadId !== undefined)
    lines.splice(1, 0, kv("upload", `${extra.uploadId}${extra.deduplicated ? " (deduplicated: same bytes, same owner)" : ""}`));
  if (checked) lines.push(kv("receipt", checked.summary));
  ctx.say(lines.join("\n"));
  if (receipt && receiptOut === undefined) ctx.say(`\n${receipt.trimEnd()}`);
}
