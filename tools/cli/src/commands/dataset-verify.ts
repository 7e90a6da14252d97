// deai dataset verify <file> (--dataset ID [--server URL] | --envelope FILE.json --receipt FILE) --log-key KEY
//
// Checks a local file against an owner-signed manifest and its ledger receipt without trusting
// the service (with --dataset it only fetches the envelope and receipt; nothing it says is
// believed): the envelope's signatures, that its statement is a dataset manifest whose subjects
// are its contentDigest and shardRoot, that the receipt proves the envelope is in the log under
// the pinned key, and that the file's size, SHA-256 and recomputed shardRoot are the manifest's.
import { readFile, stat } from "node:fs/promises";

import { checkEnvelopeSignatures, hexEncode, parseManifestStatement, type ManifestStatement } from "@deai/proofs";

import type { ApiClient } from "../api-client.js";
import { CheckFailed, str, UsageError, type Context } from "../cli.js";
import type { DatasetJson } from "../dataset-api.js";
import { fileCommitments, type Commitments } from "../dataset-commitments.js";
import { envelopeLeaf, isEnvelopeJson, type EnvelopeJson } from "../envelope.js";
import { Progress } from "../progress.js";
import { pinnedLogArgs, verifyReceipt } from "./verify.js";

interface Check {
  readonly check: string;
  readonly ok: boolean | undefined;
  readonly detail: string;
}

export async function verifyDataset(ctx: Context, client: ApiClient): Promise<void> {
  const [file, ...rest] = ctx.positionals;
  if (file === undefined || rest.length > 0) throw new UsageError("dataset verify takes one file");
  const { log, witnesses, required } = pinnedLogArgs(ctx);
  const datasetId = str(ctx, "dataset");
  const envelopeFile = str(ctx, "envelope");
  const receiptFile = str(ctx, "receipt");
  if ((datasetId === undefined) === (envelopeFile === undefined && receiptFile === undefined)) {
    throw new UsageError("give --dataset ID, or --envelope FILE.json and --receipt FILE");
  }
  if (datasetId === undefined && (envelopeFile === undefined || receiptFile === undefined)) {
    throw new UsageError("--envelope and --receipt go together");
  }

  // The evidence: from files, or fetched (and not trusted) from the service.
  let envelopeValue: unknown;
  let receipt: string | undefined;
  let source: string;
  if (datasetId !== undefined) {
    const { dataset } = await client.getJson<{ dataset: DatasetJson }>(`/v1/datasets/${encodeURIComponent(datasetId)}`);
    envelopeValue = dataset.manifestEnvelope;
    receipt = dataset.receipt?.tlogProof;
    source = `dataset ${datasetId} at ${client.server}`;
  } else {
    try {
      envelopeValue = JSON.parse(await readFile(envelopeFile!, "utf8"));
    } catch (e) {
      throw new CheckFailed(`cannot read the envelope ${envelopeFile}: ${(e as Error).message}`, { cause: e });
    }
    receipt = await readFile(receiptFile!, "utf8");
    source = `${envelopeFile} and ${receiptFile}`;
  }
  let fileSize: number;
  try {
    fileSize = (await stat(file)).size;
  } catch (e) {
    throw new CheckFailed(`cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }

  const checks: Check[] = [];
  const record = (check: string, run: () => string): boolean => {
    try {
      checks.push({ check, ok: true, detail: run() });
      return true;
    } catch (e) {
      checks.push({ check, ok: false, detail: (e as Error).message.replace(/^FAIL [^:]*: /, "") });
      return false;
    }
  };
  const skip = (check: string, why: string): void => void checks.push({ check, ok: undefined, detail: why });

  let envelope: EnvelopeJson | undefined;
  let st: ManifestStatement | undefined;
  record("envelope", () => {
    if (!isEnvelopeJson(envelopeValue)) throw new Error("not a DSSE envelope in JSON form ({payloadType, payload, signatures})");
    envelope = envelopeValue;
    return `DSSE envelope, ${envelope.signatures.length} signature(s), payload type ${envelope.payloadType}`;
  });
  if (envelope) {
    const e = envelope;
    record("statement", () => {
      st = parseManifestStatement(Buffer.from(e.payload, "base64"));
      return `in-toto Statement v1, dataset manifest; subjects sha256:${st.contentDigest} and shardRoot ${st.shardRoot}`;
    });
    if (st) {
      const owner = st.owner;
      record("signature", () => {
        checkEnvelopeSignatures(e, owner);
        return `Ed25519 over DSSE PAE by the manifest's owner ${owner}`;
      });
    } else skip("signature", "no manifest to name the owner");
    record("receipt", () => {
      if (!receipt) throw new Error(`${source} has no receipt`);
      const r = verifyReceipt(receipt, { entry: envelopeLeaf(e) }, { log, witnesses, required, name: "receipt" });
      return `${r.summary.replace(/^OK /, "")}; the leaf is this envelope`;
    });
  } else {
    for (const c of ["statement", "signature", "receipt"]) skip(c, "no envelope");
  }
  if (st) {
    const s = st;
    record("size", () => {
      if (fileSize !== s.size) throw new Error(`${file} has ${fileSize} bytes; the manifest says ${s.size}`);
      return `${fileSize} bytes`;
    });
    const progress = new Progress("verifying", fileSize);
    let local: Commitments;
    try {
      local = await fileCommitments(file, { k: s.k, m: s.m, shardSize: s.shardSize }, (n) => progress.add(n));
    } finally {
      progress.finish();
    }
    record("contentDigest", () => {
      if (local.contentDigest !== s.contentDigest)
        throw new Error(`${file} hashes to sha256:${local.contentDigest}; the manifest says sha256:${s.contentDigest}`);
      return `sha256 ${local.contentDigest}`;
    });
    record("shardRoot", () => {
      const root = hexEncode(local.shardRoot!);
      if (root !== s.shardRoot) throw new Error(`recomputed shardRoot ${root}; the manifest says ${s.shardRoot}`);
      return `${root} (k=${s.k} m=${s.m} S=${s.shardSize}: ${local.stripes} stripes, ${local.stripes! * (s.k + s.m)} leaves)`;
    });
  } else {
    for (const c of ["size", "contentDigest", "shardRoot"]) skip(c, "no manifest to check against");
  }

  for (const c of checks) ctx.say(`${c.ok === true ? "OK  " : c.ok === false ? "FAIL" : "SKIP"} ${c.check.padEnd(13)} ${c.detail}`);
  const failed = checks.find((c) => c.ok !== true);
  const json = { file, source, checks };
  if (failed) {
    throw new CheckFailed(`FAIL ${failed.check}: ${failed.detail}`, { detail: json });
  }
  ctx.say(`verified: ${file} is dataset sha256:${st!.contentDigest}, owner ${st!.owner}, in the log under ${log.name}`);
  ctx.emit({ ok: true, ...json, contentDigest: st!.contentDigest, shardRoot: st!.shardRoot, owner: st!.owner });
}
