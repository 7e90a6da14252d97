// deai da status|sample|attestations|reputation: the da-sampler's REST API, and the reputation
// recomputed offline from the ledger's public entries.
import { dsseFromJson, verifySamplingAttestation } from "@deai/proofs";

import { readKeyFile } from "../actor-key.js";
import { ApiClient } from "../api-client.js";
import { CheckFailed, count, flag, list, requireStr, str, UsageError, verifierKeyArg, type Context } from "../cli.js";
import { reputationOf, scanLedger } from "../da-ledger-scan.js";

type Json = Record<string, unknown> & { [k: string]: any }; // eslint-disable-line @typescript-eslint/no-explicit-any

function quorumOf(ctx: Context): { samplers: string[]; quorumThreshold: number } {
  const samplers = list(ctx, "sampler");
  if (samplers.length === 0) throw new UsageError("--sampler ID is required (once per sampler of the quorum)");
  return { samplers, quorumThreshold: count(str(ctx, "quorum"), "--quorum") ?? 2 };
}

/** deai da status [--provider ID] */
async function status(ctx: Context, client: ApiClient): Promise<void> {
  const policy = await client.getJson<Json>("/v1/da/sampling-policy");
  const provider = str(ctx, "provider");
  const availability = provider ? await client.getJson<Json>(`/v1/da/providers/${encodeURIComponent(provider)}/availability`) : undefined;
  ctx.emit({ ...policy, ...(availability ? { availability } : {}) });
  const p = policy.policy as Json;
  ctx.say(
    `policy: catch a provider missing ${p.missingFraction} of a slot with probability ≥ 1 − ${p.epsilon}; ` +
      `${p.samplesPerRound} samples per round every ${p.roundInterval}; quorum ${p.quorumThreshold} of ${p.quorumSize}; deadline ${p.sampleTimeout}`,
  );
  if (availability) {
    const r = availability.reputation as Json;
    ctx.say(
      `${provider}: availability ${availability.availability} over ${availability.samplesTotal} samples (${availability.samplesFailed} failed); reputation ${r.mean} (α ${r.alpha}, β ${r.beta})`,
    );
    for (const s of (availability.slots as Json[] | undefined) ?? [])
      ctx.say(`  ${s.datasetId} slot ${s.slot}: ${s.lastOutcome} at ${s.lastSampledAt}, ${s.consecutiveFailures} failed rounds in a row`);
  }
}

/** deai da sample <DATASET_ID> --key FILE [--slot N] [--stripe N ...] [--samples N] */
async function sample(ctx: Context, client: ApiClient): Promise<void> {
  const [datasetId, ...rest] = ctx.positionals;
  if (datasetId === undefined || rest.length > 0) throw new UsageError("da sample takes one dataset id");
  const key = await readKeyFile(requireStr(ctx, "key"));
  const slot = count(str(ctx, "slot"), "--slot");
  const samples = count(str(ctx, "samples"), "--samples") ?? 0;
  const stripes = list(ctx, "stripe").map((s) => String(count(s, "--stripe")));
  const r = await client.postSigned<Json>("/v1/da/samples", { datasetId, ...(slot !== undefined ? { slot } : {}), samples, stripes }, key);
  ctx.emit(r);
  for (const s of (r.results as Json[] | undefined) ?? [])
    ctx.say(`slot ${s.slot} stripe ${s.stripe} at ${s.providerId}: ${s.outcome} in ${s.latency}`);
  for (const id of (r.pendingAttestationIds as string[] | undefined) ?? []) ctx.say(`re-check started: ${id}`);
}

/** deai da attestations [--provider ID] [--dataset ID] [--evidence] [--sampler ID ... [--quorum Q]] */
async function attestations(ctx: Context, client: ApiClient): Promise<void> {
  const q = new URLSearchParams();
  const provider = str(ctx, "provider");
  const datasetId = str(ctx, "dataset");
  if (provider) q.set("providerId", provider);
  if (datasetId) q.set("datasetId", datasetId);
  if (flag(ctx, "evidence")) q.set("verdict", "ATTESTATION_VERDICT_UNAVAILABLE");
  const r = await client.getJson<{ attestations?: Json[] }>(`/v1/da/attestations?${q.toString()}`);
  const verify = list(ctx, "sampler").length > 0 ? quorumOf(ctx) : undefined;
  const out = [];
  for (const a of r.attestations ?? []) {
    let checked: string | undefined;
    if (verify) {
      try {
        const v = verifySamplingAttestation(dsseFromJson(a.envelope), verify);
        if (v.id !== a.attestationId) throw new Error(`its id is ${v.id}`);
        checked = v.evidence ? "evidence (quorum verified)" : "verified";
      } catch (e) {
        throw new CheckFailed(`attestation ${a.attestationId} does not verify: ${(e as Error).message}`);
      }
    }
    out.push({ ...a, ...(checked ? { checked } : {}) });
    ctx.say(
      `${a.attestationId} ${a.verdict} ${a.providerId} ${a.datasetId}/${a.slot} signers ${(a.signers as string[]).length}` +
        `${a.receipt ? ` ledger ${a.receipt.index}` : " (not anchored yet)"}${checked ? ` — ${checked}` : ""}`,
    );
  }
  ctx.emit({ attestations: out });
}

/** deai da reputation <PROVIDER> --ledger URL --sampler ID ... [--quorum Q] [--lambda L] [--log-key KEY] [--compare] */
async function reputation(ctx: Context, client: ApiClient): Promise<void> {
  const [provider, ...rest] = ctx.positionals;
  if (provider === undefined || rest.length > 0) throw new UsageError("da reputation takes one provider id");
  const ledger = requireStr(ctx, "ledger");
  const lambdaText = str(ctx, "lambda") ?? "0.999";
  const lambda = Number(lambdaText);
  if (!(lambda > 0 && lambda <= 1)) throw new UsageError("--lambda must be in (0, 1]");
  const logKey = str(ctx, "log-key");
  const scan = await scanLedger(ledger, quorumOf(ctx), logKey === undefined ? undefined : verifierKeyArg(logKey, "--log-key"));
  const mine = reputationOf(scan, lambda).get(provider) ?? { alpha: 1, beta: 1, mean: 0.5, attestations: 0 };
  const doc: Json = { provider, treeSize: scan.treeSize, reputation: mine, refused: scan.refused };
  if (flag(ctx, "compare")) {
    // At the tree size scanned: attestations anchored since are in neither score.
    const svc = await client.getJson<Json>(`/v1/da/providers/${encodeURIComponent(provider)}/availability?asOfTreeSize=${scan.treeSize}`);
    const theirs = svc.reputation as { alpha: number; beta: number; mean: number };
    const counted = Number(svc.reputationAttestations ?? 0);
    const close = (a: number, b: number): boolean => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
    doc.service = { ...theirs, attestations: counted, treeSize: Number(svc.reputationTreeSize ?? 0) };
    // The score, not the count: an attestation without samples of the provider (a cut-off
    // sampler's rounds) counts in neither α nor β, and may still be on its way to the service.
    doc.agrees = close(theirs.alpha, mine.alpha) && close(theirs.beta, mine.beta) && close(theirs.mean, mine.mean);
    if (!doc.agrees) {
      ctx.emit(doc);
      throw new CheckFailed(
        `at tree size ${scan.treeSize} the service's reputation of ${provider} (α ${theirs.alpha}, β ${theirs.beta}, ${counted} attestations) ` +
          `is not the ledger's (α ${mine.alpha}, β ${mine.beta}, ${mine.attestations} attestations)`,
        { detail: doc },
      );
    }
  }
  ctx.emit(doc);
  ctx.say(
    `${provider}: reputation ${mine.mean} (α ${mine.alpha}, β ${mine.beta}) from ${mine.attestations} attestations in ${scan.treeSize} ledger entries` +
      (doc.agrees ? "; the service agrees" : ""),
  );
  for (const r of scan.refused) ctx.warn(`entry ${r.index} refused: ${r.reason}`);
}

export const DA_COMMANDS = { status, sample, attestations, reputation } as const;

export async function da(ctx: Context): Promise<void> {
  const [sub, ...positionals] = ctx.positionals;
  const run = sub === undefined ? undefined : DA_COMMANDS[sub as keyof typeof DA_COMMANDS];
  if (!run) throw new UsageError(`unknown da command ${JSON.stringify(sub ?? "")}`);
  await run({ ...ctx, positionals }, new ApiClient(ctx.server, "the da-sampler"));
}
