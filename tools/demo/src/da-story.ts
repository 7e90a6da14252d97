/**
 * The DA sampling part of `make demo` (issue 12): a sampler process running three identities
 * (quorum 2 of 3, rounds every 2 s for the demo) samples the uploaded dataset; one provider
 * silently drops its slot; a sampler catches it, the others re-check, and two signatures make the
 * evidence, anchored in the ledger; the CLI verifies the quorum and the receipt offline.
 */
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

import { actorKeyFromSeed, s3Client } from "@deai/kit";
import { createTestDatabase, spawnService, storageProvidersJson, type TestS3 } from "@deai/testkit";

import { repairStory } from "./repair-story.js";

const run = promisify(execFile);
type Json = ReturnType<typeof JSON.parse>;

export interface DaStoryInput {
  readonly root: string;
  readonly work: string;
  readonly cli: string;
  readonly ingestionUrl: string;
  readonly ledgerUrl: string;
  readonly logVerifierKey: string;
  readonly providers: readonly TestS3[];
  /** The samplers' key seeds (ingestion trusts placements signed by their ids). */
  readonly samplerSeeds: readonly string[];
  /** Environment of a service process on the demo's NATS prefix (env.vars). */
  readonly vars: (overrides: Record<string, string>) => Record<string, string>;
  readonly say: (s: string) => void;
}

async function until<T>(what: string, f: () => Promise<T | undefined>, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Runs the story; true when every check passed. */
export async function daStory(o: DaStoryInput): Promise<boolean> {
  const { say } = o;
  const node = (args: string[]) => run(process.execPath, [o.cli, ...args], { maxBuffer: 16 * 1024 * 1024 });
  say("\n5. DA sampling: three sampler identities, a provider that silently drops its shards, quorum evidence");
  const seeds = o.samplerSeeds;
  const ids = seeds.map((s) => actorKeyFromSeed(s).id);
  const db = await createTestDatabase("demo-da");
  const sampler = await spawnService(
    join(o.root, "services", "da-sampler", "dist", "main.js"),
    o.vars({
      DATABASE_URL: db.url,
      // 36 round loops (3 samplers × 12 slots), consumers and anchoring share the pool.
      DB_POOL_SIZE: "20",
      DA_SAMPLER_KEYS: seeds.join(","),
      DA_SAMPLERS: ids.join(","),
      DA_PROVIDERS: storageProvidersJson(o.providers),
      DA_INGESTION_URL: o.ingestionUrl,
      DA_LEDGER_URL: o.ledgerUrl,
      DA_LEDGER_LOG_KEY: o.logVerifierKey,
      // Demo pace: a round every 2 s, a one-minute window, a 10 % loss target (2 samples a round:
      // 36 loops of 3 samplers × 12 slots in one process on a small machine); the defaults are
      // 10 min, a day and 1 %.
      DA_ROUND_INTERVAL_MS: "2000",
      DA_WINDOW_MS: "60000",
      DA_MISSING_FRACTION: "0.1",
      DA_AUDIT_BUDGET: "1000000",
      DA_SUMMARY_ROUNDS: "5",
      DA_ANCHOR_INTERVAL_MS: "200",
      // Repair a slot 5 s after the quorum proved it unavailable (default 4 h: no repair for
      // short outages), checked every second.
      DA_REPAIR_GRACE_MS: "5000",
      DA_REPAIR_INTERVAL_MS: "1000",
    }),
    { timeoutMs: 90_000 },
  );
  const base = `http://127.0.0.1:${sampler.port}`;
  try {
    say(`   da-sampler pid ${sampler.proc.pid} port ${sampler.port}: samplers ${ids.map((i) => i.slice(0, 8)).join(", ")} (quorum 2 of 3)`);
    const datasets = await until(
      "the sampler to take the dataset",
      async () => {
        const r = (await (await fetch(`${base}/v1/da/providers/p0/availability`, { signal: AbortSignal.timeout(5000) })).json()) as Json;
        return Number(r.samplesTotal) > 0 ? r : undefined;
      },
      60_000,
    );
    const datasetId = datasets.slots[0].datasetId as string;
    const status = await node(["--server", base, "da", "status", "--provider", "p0"]);
    for (const line of status.stdout.trim().split("\n")) say(`   deai da status: ${line}`);
    // Which provider holds slot 5: read from the dataset's manifest via ingestion.
    const manifest = ((await (await fetch(`${o.ingestionUrl}/v1/datasets/${datasetId}`)).json()) as Json).dataset.manifest;
    const victim = (manifest.placements as Json[]).find((p) => (p.slot ?? 0) === 5);
    const server = o.providers[Number(String(victim.providerId).slice(1))]!;
    await s3Client({
      endpoint: server.endpoint,
      accessKey: server.accessKey,
      secretKey: server.secretKey,
      region: server.region,
    }).removeObject(victim.bucket, victim.key);
    say(`   provider ${victim.providerId} silently deleted slot 5 of ${datasetId} (it still answers, just not with the shards)`);
    const t0 = Date.now();
    const evidence = await until(
      "quorum evidence",
      async () => {
        const r = (await (
          await fetch(`${base}/v1/da/attestations?verdict=ATTESTATION_VERDICT_UNAVAILABLE&pageSize=500`, {
            signal: AbortSignal.timeout(5000),
          })
        ).json()) as Json;
        return (r.attestations as Json[] | undefined)?.find((a) => a.receipt && a.slot === 5);
      },
      90_000,
    );
    say(
      `   caught and attested in ${((Date.now() - t0) / 1000).toFixed(1)} s: attestation ${evidence.attestationId.slice(0, 16)}…, ` +
        `signed by ${evidence.signers.length} of 3 samplers, ledger index ${evidence.receipt.index}`,
    );
    const listed = await node(["--server", base, "da", "attestations", "--evidence", ...ids.map((i) => `--sampler=${i}`), "--quorum", "2"]);
    const line = listed.stdout.split("\n").find((l) => l.startsWith(evidence.attestationId as string)) ?? "";
    say(`   deai da attestations --evidence (quorum verified offline): ${line.slice(0, 160)}`);
    // The receipt, offline: the envelope as logged and the tlog-proof against the pinned log key.
    await writeFile(join(o.work, "da-evidence.envelope.json"), JSON.stringify(evidence.envelope));
    await writeFile(join(o.work, "da-evidence.tlog-proof"), evidence.receipt.tlogProof);
    const verified = await node([
      "verify",
      join(o.work, "da-evidence.tlog-proof"),
      "--log-key",
      join(o.work, "log.vkey"),
      "--entry",
      join(o.work, "da-evidence.envelope.json"),
    ]);
    say(`   deai verify (offline): ${verified.stdout.trim()}`);
    const availability = (await (await fetch(`${base}/v1/da/providers/${victim.providerId}/availability`)).json()) as Json;
    say(`   ${victim.providerId}: reputation ${Number(availability.reputation.mean).toFixed(3)} after the evidence`);
    const attested = verified.stdout.startsWith("OK") && line.includes("evidence (quorum verified)");
    const repaired = await repairStory({
      ingestionUrl: o.ingestionUrl,
      ledgerUrl: o.ledgerUrl,
      logVerifierKey: o.logVerifierKey,
      datasetId,
      slot: 5,
      contentDigest: manifest.contentDigest.hex as string,
      samplers: ids,
      say,
      section: "5b",
      timeoutMs: 120_000,
    });
    return attested && repaired;
  } catch (e) {
    say(`   ✗ ${(e as Error).message}`);
    return false;
  } finally {
    sampler.kill("SIGTERM");
    await sampler.exited;
    await db.drop();
  }
}
