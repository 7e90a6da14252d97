// deai ledger append|get|prove|checkpoint|lineage: the ledger's REST API.
import { readFile, writeFile } from "node:fs/promises";

import { formatTlogProof, hexEncode, leafHash as hashLeaf } from "@deai/proofs";

import { readKeyFile } from "../actor-key.js";
import { CheckFailed, count, flag, hash32, requireStr, str, UsageError, type Context } from "../cli.js";
import { envelopeLeaf, parseStatementFile, signStatement } from "../envelope.js";
import { ApiClient } from "../api-client.js";

interface ReceiptJson {
  index: string;
  leafHash: string;
  inclusionProof: string[];
  checkpoint: string;
  treeSize: string;
  tlogProof: string;
}

interface AppendJson {
  index: string;
  leafHash: string;
  duplicate: boolean;
  integrated: boolean;
  receipt?: ReceiptJson;
  witnessCosignatures?: number;
  witnessQuorum?: number;
}

interface EntryJson {
  index: string;
  leafHash: string;
  leaf: string;
  integrated: boolean;
  predicateType: string;
  signers: string[];
  subjects: { algorithm: string; hex: string }[];
  materials: { algorithm: string; hex: string }[];
  sequencedAt: string;
  receipt?: ReceiptJson;
}

interface CheckpointJson {
  note: string;
  origin: string;
  size: string;
  rootHash: string;
  signatures: { name: string; witness: boolean; cosignedAt?: string }[];
  publishedAt: string;
}

const hexOf = (b64: string): string => Buffer.from(b64, "base64").toString("hex");

/** Writes `text` to `path`, or prints it when no path is given. */
async function output(ctx: Context, path: string | undefined, text: string | Uint8Array, what: string): Promise<void> {
  if (path === undefined) {
    if (!ctx.json) process.stdout.write(text);
    return;
  }
  await writeFile(path, text);
  ctx.warn(`wrote ${what} to ${path}`);
}

async function append(ctx: Context, client: ApiClient): Promise<void> {
  const key = await readKeyFile(requireStr(ctx, "key"));
  const statementPath = requireStr(ctx, "statement");
  const statement = await readFile(statementPath);
  parseStatementFile(statement, statementPath);
  const envelope = signStatement(statement, key);
  const leaf = envelopeLeaf(envelope);
  const wait = flag(ctx, "wait");
  const timeoutMs = count(str(ctx, "timeout-ms"), "--timeout-ms");
  const r = await client.postSigned<AppendJson>(
    "/v1/ledger/entries",
    {
      envelope,
      waitForIntegration: wait,
      ...(timeoutMs !== undefined ? { waitTimeout: `${(timeoutMs / 1000).toFixed(3)}s` } : {}),
    },
    key,
  );
  if (hexOf(r.leafHash) !== hexEncode(hashLeaf(leaf))) {
    throw new CheckFailed(
      `the ledger's leaf hash ${hexOf(r.leafHash)} is not the hash of the envelope sent (${hexEncode(hashLeaf(leaf))})`,
    );
  }
  const entryOut = str(ctx, "entry-out");
  if (entryOut !== undefined) await output(ctx, entryOut, leaf, "the entry (leaf bytes)");
  ctx.emit({ ...r, leafHash: hexOf(r.leafHash), index: Number(r.index) });
  ctx.warn(`${r.duplicate ? "already logged at" : "appended at"} index ${r.index} (leaf hash ${hexOf(r.leafHash)})`);
  if (!wait) {
    ctx.say(`index ${r.index}`);
    return;
  }
  if (!r.integrated || !r.receipt) {
    throw new CheckFailed(
      `entry ${r.index} is sequenced but no checkpoint covered it within the wait; get its receipt later with deai ledger prove ${r.index}`,
    );
  }
  const quorum = r.witnessQuorum ?? 0;
  if (quorum > 0 && (r.witnessCosignatures ?? 0) < quorum) {
    ctx.warn(
      `warning: the receipt's checkpoint is signed by the log only (${r.witnessCosignatures ?? 0} of the ${quorum} witness cosignatures the log requires were there within the wait)`,
    );
  }
  const receiptOut = str(ctx, "receipt-out");
  await output(ctx, receiptOut, r.receipt.tlogProof, "the receipt");
  if (receiptOut !== undefined) ctx.say(`index ${r.index}`);
}

function leafPath(ctx: Context): { path: string; byIndex: boolean; what: string } {
  const hex = str(ctx, "leaf-hash");
  const [index, ...rest] = ctx.positionals;
  if (rest.length > 0 || (hex === undefined) === (index === undefined)) throw new UsageError("give an index or --leaf-hash HEX");
  if (hex !== undefined) return { path: hash32(hex, "--leaf-hash").toString("base64url"), byIndex: false, what: `leaf ${hex}` };
  return { path: String(count(index, "index")), byIndex: true, what: `entry ${index}` };
}

async function get(ctx: Context, client: ApiClient): Promise<void> {
  const l = leafPath(ctx);
  const withReceipt = flag(ctx, "receipt");
  const q = withReceipt ? "?include_receipt=true" : "";
  const { entry } = await client.getJson<{ entry: EntryJson }>(
    l.byIndex ? `/v1/ledger/entries/${l.path}${q}` : `/v1/ledger/leaves/${l.path}${q}`,
  );
  const entryOut = str(ctx, "entry-out");
  if (entryOut !== undefined) await output(ctx, entryOut, Buffer.from(entry.leaf, "base64"), "the entry (leaf bytes)");
  ctx.emit({ entry });
  const digests = (ds: EntryJson["subjects"]): string => ds.map((d) => `${d.algorithm}:${d.hex}`).join(" ") || "-";
  ctx.say(
    [
      `index      ${entry.index}`,
      `leaf hash  ${hexOf(entry.leafHash)}`,
      `predicate  ${entry.predicateType}`,
      `subjects   ${digests(entry.subjects)}`,
      `materials  ${digests(entry.materials)}`,
      `signers    ${entry.signers.join(" ")}`,
      `sequenced  ${entry.sequencedAt}`,
      `integrated ${entry.integrated}`,
    ].join("\n"),
  );
  const receiptOut = str(ctx, "receipt-out");
  if (withReceipt && entry.receipt) {
    if (receiptOut === undefined) ctx.say("");
    await output(ctx, receiptOut, entry.receipt.tlogProof, "the receipt");
  } else if (withReceipt) ctx.warn(`${l.what} is not covered by the published checkpoint yet: no receipt`);
}

async function prove(ctx: Context, client: ApiClient): Promise<void> {
  if (flag(ctx, "consistency")) {
    const [a, b, ...rest] = ctx.positionals;
    if (a === undefined || b === undefined || rest.length > 0) throw new UsageError("prove --consistency takes two tree sizes: A B");
    const first = count(a, "A")!;
    const second = count(b, "B")!;
    const r = await client.getJson<{ first: string; second: string; consistencyProof: string[] }>(
      `/v1/ledger/proofs/consistency?first=${first}&second=${second}`,
    );
    ctx.emit({ first: Number(r.first), second: Number(r.second), consistencyProof: r.consistencyProof });
    ctx.say([`consistency ${r.first} ${r.second}`, ...r.consistencyProof].join("\n"));
    return;
  }
  const l = leafPath(ctx);
  const size = count(str(ctx, "size"), "--size") ?? 0;
  const q = l.byIndex ? `leaf_index=${l.path}` : `leaf_hash=${l.path}`;
  const r = await client.getJson<{ leafIndex: string; treeSize: string; inclusionProof: string[]; checkpoint?: CheckpointJson }>(
    `/v1/ledger/proofs/inclusion?${q}&tree_size=${size}`,
  );
  const tlogProof = r.checkpoint
    ? formatTlogProof({
        index: Number(r.leafIndex),
        inclusionProof: r.inclusionProof.map((h) => Buffer.from(h, "base64")),
        checkpoint: r.checkpoint.note,
      })
    : undefined;
  ctx.emit({ leafIndex: Number(r.leafIndex), treeSize: Number(r.treeSize), inclusionProof: r.inclusionProof, tlogProof });
  if (tlogProof === undefined) {
    ctx.warn(`the log signed no checkpoint of size ${r.treeSize}: printing the bare inclusion path (not a receipt)`);
    ctx.say([`inclusion ${r.leafIndex} ${r.treeSize}`, ...r.inclusionProof].join("\n"));
    return;
  }
  await output(ctx, str(ctx, "receipt-out"), tlogProof, "the receipt");
}

async function checkpoint(ctx: Context, client: ApiClient): Promise<void> {
  const { checkpoint: c } = await client.getJson<{ checkpoint: CheckpointJson }>("/v1/ledger/checkpoint");
  ctx.emit({ checkpoint: c });
  if (!ctx.json) process.stdout.write(c.note);
}

const DIRECTIONS = {
  ancestors: "LINEAGE_DIRECTION_ANCESTORS",
  descendants: "LINEAGE_DIRECTION_DESCENDANTS",
  both: "LINEAGE_DIRECTION_BOTH",
};

async function lineage(ctx: Context, client: ApiClient): Promise<void> {
  const [digest, ...rest] = ctx.positionals;
  const m = digest === undefined ? null : /^([a-z0-9-]+):([0-9a-f]+)$/.exec(digest);
  if (!m || rest.length > 0) throw new UsageError("lineage takes one digest: <algorithm>:<lowercase hex>, e.g. sha256:ab12...");
  const direction = str(ctx, "direction") ?? "ancestors";
  if (!(direction in DIRECTIONS)) throw new UsageError("--direction must be ancestors, descendants or both");
  const depth = count(str(ctx, "depth"), "--depth") ?? 0;
  const r = await client.getJson<{
    hops: {
      subject: { algorithm: string; hex: string };
      material: { algorithm: string; hex: string };
      depth: number;
      direction: string;
      predicateType: string;
      entry: { index: string };
      receipt: ReceiptJson;
    }[];
    truncated: boolean;
    checkpoint: CheckpointJson;
  }>(`/v1/ledger/lineage/${m[1]}/${m[2]}?direction=${DIRECTIONS[direction as keyof typeof DIRECTIONS]}&max_depth=${depth}`);
  ctx.emit(r);
  const d = (x: { algorithm: string; hex: string }): string => `${x.algorithm}:${x.hex}`;
  ctx.say(`lineage of ${digest} (${direction}) against ${r.checkpoint.origin} size ${r.checkpoint.size}: ${r.hops.length} hop(s)`);
  for (const h of r.hops) {
    const dir = h.direction.endsWith("DESCENDANTS") ? "descendant" : "ancestor";
    ctx.say(`  ${h.depth} ${dir.padEnd(10)} ${d(h.subject)} <- ${d(h.material)}  entry ${h.entry.index} ${h.predicateType}`);
  }
  if (r.truncated) ctx.warn("truncated: the depth or a server cap cut the walk short");
}

export const LEDGER_COMMANDS = { append, get, prove, checkpoint, lineage } as const;

export async function ledger(ctx: Context): Promise<void> {
  const [sub, ...positionals] = ctx.positionals;
  const run = sub === undefined ? undefined : LEDGER_COMMANDS[sub as keyof typeof LEDGER_COMMANDS];
  if (!run) throw new UsageError(`unknown ledger command ${JSON.stringify(sub ?? "")}`);
  await run({ ...ctx, positionals }, new ApiClient(ctx.server, "the ledger"));
}
