/**
 * The slashing part of `make demo`: a storage provider bonds stake over the signed API and is
 * eligible for the marketplace; it then signs two different usage reports for one lease epoch
 * (equivocation); a reporter submits them as evidence; the provider is tombstoned at once and
 * the slash applies after the (short, demo-configured) veto window; the signed slash record is
 * anchored in the ledger, and `deai slash verify` checks it offline: the service's signature,
 * the provider's two signatures, the penalty recomputed, the ledger receipt against the pinned
 * log key. A tampered record is refused.
 */
import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

import { ProviderStatus, SlashingService, SlashState } from "@deai/contracts/deai/slashing/v1/slashing_pb";
import { actorKeyFromSeed, actorKeySeed, generateActorKey, serviceClient } from "@deai/kit";
import { dsseSign, ed25519DsseSigner, IN_TOTO_PAYLOAD_TYPE, PredicateTypes, statementBytes, statementOf } from "@deai/proofs";

const run = promisify(execFile);
const say = (s: string): void => void process.stdout.write(`${s}\n`);

const serviceSeed = actorKeySeed(generateActorKey());
/** The veto window of the demo (the default is two days). */
const VETO_WINDOW_S = 5;

/** The slashing service's environment in the demo: anchoring in the demo's ledger, a short veto window. */
export function slashingDemoEnv(ledgerUrl: string, logVerifierKey: string): Record<string, string> {
  return {
    SLASHING_SERVICE_KEY: serviceSeed,
    SLASHING_LEDGER_URL: ledgerUrl,
    SLASHING_LEDGER_LOG_KEY: logVerifierKey,
    SLASHING_MIN_STAKE: "100000",
    // The timing rule still holds: 600 ≥ 300 + 5 + 60.
    SLASHING_VETO_WINDOW_S: String(VETO_WINDOW_S),
    SLASHING_EVIDENCE_MAX_AGE_S: "300",
    SLASHING_SAMPLER_DETECTION_WINDOW_S: "60",
    SLASHING_UNBONDING_DELAY_S: "600",
    SLASHING_TICK_MS: "200",
    SLASHING_ANCHOR_INTERVAL_MS: "200",
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs the story; true when every step checked out. */
export async function slashStory(o: { slashingUrl: string; cli: string; work: string; logVerifierKey: string }): Promise<boolean> {
  say("\n7. Slashing: a provider bonds stake, equivocates, is slashed after the veto window, and the slash is verified offline");
  const cli = (args: string[]) => run(process.execPath, [o.cli, ...args], { env: { ...process.env, DEAI_SLASHING_URL: o.slashingUrl } });
  const seed = new Uint8Array(32);
  crypto.getRandomValues(seed);
  const provider = actorKeyFromSeed(Buffer.from(seed).toString("base64url"));
  const providerClient = serviceClient(SlashingService, { baseUrl: o.slashingUrl, key: provider });
  const reporter = generateActorKey();
  await providerClient.bond({ amount: { currency: "DEAI", micros: 1_000_000n }, idempotencyKey: "demo-bond" });
  let st = await providerClient.getProviderStatus({ providerId: provider.id });
  say(`   provider ${provider.id} bonded ${st.bonded!.micros} DEAI (minimum ${st.minStake!.micros}): eligible ${st.eligible}`);
  await sleep(1100); // the infraction comes after the bond: a penalty is a fraction of the stake held then

  // Two different usage reports for lease epoch 1, both signed by the provider.
  const signer = ed25519DsseSigner(seed);
  const issuedAt = new Date(Date.now() - 100).toISOString();
  const report = (units: number) =>
    dsseSign(
      IN_TOTO_PAYLOAD_TYPE,
      statementBytes(
        statementOf(PredicateTypes.usageReport, [{ name: "lease/demo-lease", digest: { sha256: "cd".repeat(32) } }], {
          leaseId: "demo-lease",
          epoch: 1,
          provider: provider.id,
          units,
          issuedAt,
        }),
      ),
      [signer],
    );
  const toProto = (e: ReturnType<typeof report>) => ({
    payloadType: e.payloadType,
    payload: e.payload,
    signatures: e.signatures.map((s) => ({ keyid: s.keyid, sig: s.sig })),
  });
  const [a, b] = [toProto(report(10)), toProto(report(99))];
  const reporterClient = serviceClient(SlashingService, { baseUrl: o.slashingUrl, key: reporter });
  const submitted = await reporterClient.submitEvidence({
    evidence: { case: "equivocation", value: { first: a, second: b } },
  });
  const slashId = submitted.evidence!.slashId;
  st = await providerClient.getProviderStatus({ providerId: provider.id });
  say(`   evidence ${submitted.evidence!.evidenceId.slice(0, 16)}… accepted (two usage reports for lease demo-lease epoch 1)`);
  say(
    `   provider status now ${ProviderStatus[st.status]}, eligible ${st.eligible}; slash ${slashId} waits ${VETO_WINDOW_S} s (veto window)`,
  );
  const again = await reporterClient.submitEvidence({
    evidence: { case: "equivocation", value: { first: b, second: a } },
  });
  say(`   the same evidence again (statements swapped): duplicate ${again.duplicate}`);

  // The tick applies it after the window; the anchoring loop puts the record in the ledger.
  let applied = false;
  for (let i = 0; i < 300 && !applied; i++) {
    const list = await reporterClient.listSlashes({ providerId: provider.id });
    const s = list.slashes.find((x) => x.slashId === slashId);
    applied = s?.state === SlashState.APPLIED && s.records.some((r) => r.event === "applied" && r.receipt);
    if (!applied) await sleep(200);
  }
  const stake = (await reporterClient.getStake({ providerId: provider.id })).stake!;
  say(`   applied after the window: stake ${stake.bonded!.micros} DEAI left, ${stake.slashedTotal!.micros} slashed (5 % for equivocation)`);
  const dir = join(o.work, "slash-records");
  await cli(["slash", "list", "--provider", provider.id, "--records-dir", dir]);
  const record = join(dir, `${slashId}-applied.json`);
  await writeFile(join(o.work, "slashing.vkey"), o.logVerifierKey);
  const verified = await cli([
    "slash",
    "verify",
    record,
    "--log-key",
    join(o.work, "slashing.vkey"),
    `--service-key=${actorKeyFromSeed(serviceSeed).id}`,
  ]);
  say("   deai slash verify (offline):");
  for (const line of verified.stdout.trimEnd().split("\n")) say(`     ${line}`);
  const bundle = JSON.parse(await readFile(record, "utf8")) as { envelope: { payload: string } };
  const statement = JSON.parse(Buffer.from(bundle.envelope.payload, "base64").toString("utf8")) as {
    predicate: { penalty: { amount: string } };
  };
  statement.predicate.penalty.amount = "1";
  bundle.envelope.payload = Buffer.from(JSON.stringify(statement)).toString("base64");
  await writeFile(join(o.work, "tampered-slash.json"), JSON.stringify(bundle));
  const refused = await cli([
    "slash",
    "verify",
    join(o.work, "tampered-slash.json"),
    "--log-key",
    join(o.work, "slashing.vkey"),
    `--service-key=${actorKeyFromSeed(serviceSeed).id}`,
  ]).then(
    () => false,
    (e: { stderr?: string }) => (say(`   a record with a smaller penalty is refused: ${(e.stderr ?? "").trim().split("\n")[0]}`), true),
  );
  return applied && st.eligible === false && again.duplicate && verified.stdout.startsWith("OK") && refused;
}
