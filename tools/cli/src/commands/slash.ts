// deai slash verify <bundle-or-receipt> --log-key KEY --service-key ID [--council ID... --veto-threshold K]
//                   [--record FILE | --receipt FILE] [--unanchored]
// deai slash list [--provider ID] [--records-dir DIR]
//
// verify is offline (only @deai/proofs): the slash record's service signature, the evidence it
// carries re-verified with every signature it rests on (sampler quorum and challenge derivation,
// the provider's two statements, operator and countersigner, checker), the penalty recomputed
// from the recorded parameters and inputs, the vetoes' signatures, and the ledger receipt of
// exactly this envelope against the pinned log key. A bundle is a slash record as the service
// lists it (`{"event","envelope","receipt":{"tlogProof",...}}`), `{"envelope","receipt":"<tlog-proof>"}`,
// or a bare envelope with `--receipt FILE`; a tlog-proof receipt file takes `--record FILE`.
// The service key (and for a vetoed record the council and its k) are pinned by the caller: the
// key a bundle's signature names proves nothing by itself.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { dsseFromJson, ProofError, verifySlashRecord, type DsseEnvelopeJson } from "@deai/proofs";

import { ApiClient } from "../api-client.js";
import { CheckFailed, count, flag, list, str, UsageError, verifierKeyArg, type Context } from "../cli.js";
import { envelopeLeaf, isEnvelopeJson } from "../envelope.js";
import { verifyReceipt } from "./verify.js";

type Json = Record<string, unknown> & { [k: string]: any }; // eslint-disable-line @typescript-eslint/no-explicit-any

const TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@";

function parseJson(bytes: Buffer, name: string): Json | undefined {
  const text = bytes.toString("utf8");
  if (text.trimStart().startsWith(TLOG_PROOF_HEADER)) return undefined;
  try {
    return JSON.parse(text) as Json;
  } catch (e) {
    throw new UsageError(`${name} is neither JSON (a slash record or envelope) nor a tlog-proof receipt: ${(e as Error).message}`);
  }
}

/** The envelope and receipt text a bundle names (either may come from the other file option). */
async function bundleOf(ctx: Context, file: string): Promise<{ envelope: DsseEnvelopeJson; receipt: string | undefined }> {
  const bytes = await readFile(file);
  const parsed = parseJson(bytes, file);
  const recordFile = str(ctx, "record");
  const receiptFile = str(ctx, "receipt");
  if (parsed === undefined) {
    // The positional is a receipt: the record comes from --record.
    if (!recordFile) throw new UsageError(`${file} is a receipt: give the slash record with --record FILE`);
    const other = await bundleOf({ ...ctx, values: { ...ctx.values, record: undefined, receipt: undefined } }, recordFile);
    return { envelope: other.envelope, receipt: bytes.toString("utf8") };
  }
  if (recordFile) throw new UsageError("--record is for a receipt file given as the argument");
  const envelope = isEnvelopeJson(parsed) ? parsed : parsed.envelope;
  if (!isEnvelopeJson(envelope)) throw new UsageError(`${file} holds no DSSE envelope (a slash record, {"envelope",...}, or an envelope)`);
  let receipt: string | undefined;
  if (receiptFile) receipt = (await readFile(receiptFile)).toString("utf8");
  else if (typeof parsed.receipt === "string") receipt = parsed.receipt;
  else if (parsed.receipt && typeof parsed.receipt.tlogProof === "string") receipt = parsed.receipt.tlogProof as string;
  return { envelope, receipt };
}

/** The record's event as its payload states it (to ask for the council before verifying a veto), or undefined. */
function eventOf(envelope: DsseEnvelopeJson): string | undefined {
  try {
    const st = JSON.parse(Buffer.from(envelope.payload, "base64").toString("utf8")) as { predicate?: { event?: unknown } };
    return typeof st.predicate?.event === "string" ? st.predicate.event : undefined;
  } catch {
    return undefined;
  }
}

/** deai slash verify */
async function verifyCommand(ctx: Context): Promise<void> {
  const [file, ...rest] = ctx.positionals;
  if (file === undefined || rest.length > 0) throw new UsageError("slash verify takes one bundle or receipt file");
  const unanchored = flag(ctx, "unanchored");
  const logKey = str(ctx, "log-key");
  if (!unanchored && logKey === undefined)
    throw new UsageError("--log-key is required: the ledger's verifier key (text or file), pinned out of band (or --unanchored)");
  const serviceKey = str(ctx, "service-key");
  if (serviceKey === undefined)
    throw new UsageError(
      "--service-key is required: the slashing service's actor id, pinned out of band (the bundle's own key proves nothing)",
    );
  const members = list(ctx, "council").flatMap((m) => m.split(",").filter((x) => x !== ""));
  const threshold = count(str(ctx, "veto-threshold"), "--veto-threshold");
  if (members.length > 0 !== (threshold !== undefined))
    throw new UsageError("--council and --veto-threshold go together (the council's members and its k)");
  if (threshold !== undefined && (threshold < 1 || threshold > members.length))
    throw new UsageError(`--veto-threshold must be in 1..${members.length} (the council's size)`);
  const { envelope, receipt } = await bundleOf(ctx, file);
  if (threshold === undefined && eventOf(envelope) === "vetoed")
    throw new UsageError(`${file} is a vetoed record: give the pinned council (--council ID, once per member) and --veto-threshold K`);
  const checks: string[] = [];
  let record;
  try {
    record = verifySlashRecord(dsseFromJson(envelope), {
      serviceKey,
      ...(threshold !== undefined ? { council: { members, threshold } } : {}),
    });
  } catch (e) {
    if (e instanceof ProofError || e instanceof Error)
      throw new CheckFailed(`FAIL ${file}: the slash record does not verify: ${e.message}`, { detail: { checks } });
    throw e;
  }
  checks.push(...record.checks);
  let receiptJson: Record<string, unknown> | undefined;
  if (receipt !== undefined && logKey !== undefined) {
    const r = verifyReceipt(receipt, { entry: envelopeLeaf(envelope) }, { log: verifierKeyArg(logKey, "--log-key"), name: file });
    checks.push(`anchored: ${r.summary.replace(/^OK /, "")}`);
    receiptJson = r.json;
  } else if (!unanchored) {
    throw new CheckFailed(
      `FAIL ${file}: no ledger receipt (the record is not anchored yet, or give --receipt FILE); --unanchored skips it`,
      {
        detail: { checks },
      },
    );
  } else checks.push("receipt not checked (--unanchored)");
  const p = record.predicate;
  const pen = record.penalty;
  ctx.say(`OK slash ${p.slashId} (${p.event}): ${p.kind} by ${p.provider}`);
  for (const c of checks) ctx.say(`  ${c}`);
  ctx.say(
    `  penalty ${pen.amount} ${p.currency} = ${pen.fractionBps} bps of ${p.inputs.stakeAtInfraction} at ${p.infractionAt}` +
      ` (base ${pen.baseBps}, escalation ×${pen.escalation}, correlation +${pen.correlationBps} bps${pen.suspended ? `; suspended: ${pen.suspended}` : ""});` +
      ` reporter ${pen.reporterReward}, repair ${pen.repairShare}, treasury ${pen.treasury}${p.taken !== undefined ? `; taken ${p.taken}` : ""}`,
  );
  ctx.emit({
    ok: true,
    slashId: p.slashId,
    event: p.event,
    kind: p.kind,
    provider: p.provider,
    evidenceId: p.evidenceId,
    signers: record.signers,
    penalty: Object.fromEntries(Object.entries(pen).map(([k, v]) => [k, typeof v === "bigint" ? v.toString() : v])),
    ...(p.taken !== undefined ? { taken: p.taken } : {}),
    checks,
    ...(receiptJson ? { receipt: receiptJson } : {}),
  });
}

/** deai slash list [--provider ID] [--records-dir DIR]: the service's slashes; with --records-dir each record as a bundle file. */
async function listCommand(ctx: Context): Promise<void> {
  if (ctx.positionals.length > 0) throw new UsageError("slash list takes no arguments");
  const client = new ApiClient(ctx.server, "the slashing service");
  const provider = str(ctx, "provider");
  const q = new URLSearchParams();
  if (provider) q.set("providerId", provider);
  q.set("pageSize", "500");
  const r = await client.getJson<{ slashes?: Json[] }>(`/v1/slashing/slashes?${q.toString()}`);
  const dir = str(ctx, "records-dir");
  if (dir) await mkdir(dir, { recursive: true });
  const files: string[] = [];
  for (const s of r.slashes ?? []) {
    const records = (s.records as Json[] | undefined) ?? [];
    ctx.say(
      `${s.slashId} ${s.kind} ${s.state} ${s.providerId} amount ${s.amount?.micros ?? 0} ${s.amount?.currency ?? ""} records ${records
        .map((x) => `${x.event}${x.receipt ? `@${x.receipt.index}` : ""}`)
        .join(",")}`,
    );
    if (dir)
      for (const x of records) {
        const f = join(dir, `${s.slashId}-${x.event}.json`);
        await writeFile(f, JSON.stringify(x, null, 2) + "\n");
        files.push(f);
      }
  }
  ctx.emit({ ...r, ...(dir ? { files } : {}) });
}

export async function slash(ctx: Context): Promise<void> {
  const [sub, ...rest] = ctx.positionals;
  const sctx = { ...ctx, positionals: rest };
  if (sub === "verify") await verifyCommand(sctx);
  else if (sub === "list") await listCommand(sctx);
  else throw new UsageError(`unknown slash command ${JSON.stringify(sub ?? "")} (verify, list)`);
}
