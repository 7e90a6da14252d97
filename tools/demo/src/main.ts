/**
 * `make demo`: every service as a local process against Postgres and NATS on localhost and
 * an embedded S3-compatible server; checks each is healthy over REST and gRPC; appends a
 * signed statement to the ledger and verifies its receipt offline; ingests a dataset across
 * k + m simulated storage providers (one embedded S3 server each) with the `deai` CLI, reads
 * it back byte-identical with m providers down, and verifies it offline against its
 * owner-signed manifest and ledger receipt; then stops every service with SIGTERM and checks
 * they drained and exited 0. Later issues extend the story.
 */
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, readFile, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";

import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";

import { actorKeyFromSeed } from "@deai/kit";
import { GetInfoRequestSchema, GetInfoResponseSchema } from "@deai/contracts/deai/system/v1/system_pb";
import { createTestEnv, grpcUnary, spawnService, startS3, storageProvidersJson, type ServiceProcess, type TestS3 } from "@deai/testkit";
import { PredicateTypes, STATEMENT_V1_TYPE } from "@deai/proofs";

import { daStory } from "./da-story.js";
import { marketplaceDemoEnv, marketStory } from "./market-story.js";
import { slashingDemoEnv, slashStory } from "./slash-story.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const SERVICES = ["ledger", "ingestion", "da-sampler", "slashing", "marketplace", "trainer-operator"] as const;

const say = (s: string): void => void process.stdout.write(`${s}\n`);
const run = promisify(execFile);
const node = (script: string, args: string[], env: Record<string, string> = {}) =>
  run(process.execPath, [script, ...args], { env: { ...process.env, ...env }, maxBuffer: 16 * 1024 * 1024 });
const cli = join(root, "tools", "cli", "dist", "main.js");
const work = join(root, ".demo");

/** The dataset part: the architecture's default coding, k + m simulated storage providers. */
const K = 8;
const M = 4;
const CORPUS_MIB = 48;

/** The ledger's part of the story: a signed statement in, a receipt out, verified offline. */
async function ledgerStory(ledgerUrl: string, logVerifierKey: string): Promise<boolean> {
  say("\n3. Provenance ledger: append a signed dataset statement, get its receipt, verify it offline");
  const corpus = Buffer.from(Array.from({ length: 2000 }, (_, i) => `line ${i}: the quick brown fox ${i % 7}\n`).join(""));
  const digest = createHash("sha256").update(corpus).digest("hex");
  const statement = {
    _type: STATEMENT_V1_TYPE,
    subject: [{ name: "demo-corpus.txt", digest: { sha256: digest } }],
    predicateType: PredicateTypes.datasetManifest,
    predicate: { name: "demo-corpus.txt", size: corpus.length, mediaType: "text/plain", license: "CC0-1.0", parents: [] },
  };
  await writeFile(join(work, "statement.json"), JSON.stringify(statement, null, 2));
  await writeFile(join(work, "log.vkey"), logVerifierKey);
  await node(cli, ["keygen", "--out", join(work, "owner.key")]);
  const owner = JSON.parse(await readFile(join(work, "owner.key"), "utf8")) as { actor: string };
  say(`   data owner actor ${owner.actor}`);
  say(`   statement: dataset-manifest for sha256:${digest.slice(0, 16)}…`);
  const append = await node(cli, [
    "--server",
    ledgerUrl,
    "ledger",
    "append",
    "--key",
    join(work, "owner.key"),
    "--statement",
    join(work, "statement.json"),
    "--wait",
    "--receipt-out",
    join(work, "statement.tlog-proof"),
    "--entry-out",
    join(work, "statement.entry"),
  ]);
  say(`   appended: ${append.stdout.trim().split("\n")[0]}`);
  const receipt = await readFile(join(work, "statement.tlog-proof"), "utf8");
  say("   receipt (C2SP tlog-proof):");
  for (const line of receipt.trimEnd().split("\n")) say(`     ${line}`);
  // Offline: no --server; only the receipt, the entry bytes and the pinned log key.
  const verify = await node(cli, [
    "verify",
    join(work, "statement.tlog-proof"),
    "--log-key",
    join(work, "log.vkey"),
    "--entry",
    join(work, "statement.entry"),
  ]);
  say(`   deai verify (offline): ${verify.stdout.trim()}`);
  const tampered = Buffer.from(await readFile(join(work, "statement.entry")));
  const at = tampered.length - 2;
  tampered.writeUInt8(tampered.readUInt8(at) ^ 1, at);
  await writeFile(join(work, "tampered.entry"), tampered);
  const refused = await node(cli, [
    "verify",
    join(work, "statement.tlog-proof"),
    "--log-key",
    join(work, "log.vkey"),
    "--entry",
    join(work, "tampered.entry"),
  ]).then(
    () => false,
    (e: { stderr?: string }) => (say(`   a tampered entry is refused: ${(e.stderr ?? "").trim().split("\n")[0]}`), true),
  );
  return verify.stdout.startsWith("OK") && refused;
}

/** SHA-256 of a file, streamed. */
async function fileSha256(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) h.update(chunk as Buffer);
  return h.digest("hex");
}

/** `CORPUS_MIB` MiB of JSONL training records, deterministic (the same bytes every run). */
async function writeCorpus(path: string): Promise<number> {
  const topics = ["provenance", "erasure coding", "transparency logs", "low-communication training", "storage proofs", "slashing"];
  const f = await open(path, "w");
  let size = 0;
  let seed = 0x2545f491;
  const next = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0), seed);
  try {
    for (let i = 0; size < CORPUS_MIB * 1024 * 1024; i++) {
      const lines: string[] = [];
      for (let j = 0; j < 1000; j++) {
        const n = next();
        const topic = topics[n % topics.length]!;
        const text = `record ${i * 1000 + j} on ${topic}: ${n.toString(36)} ${next().toString(36)} ${next().toString(16)} the quick brown fox jumps over the lazy dog`;
        lines.push(JSON.stringify({ id: i * 1000 + j, topic, text, tokens: text.split(" ").length }));
      }
      const chunk = Buffer.from(lines.join("\n") + "\n");
      await f.write(chunk);
      size += chunk.length;
    }
  } finally {
    await f.close();
  }
  return size;
}

/** The ingestion part of the story: a corpus in, erasure-coded across providers, out again with m of them down, verified offline. */
async function datasetStory(ingestionUrl: string, providers: readonly TestS3[]): Promise<boolean> {
  say(
    `\n4. Datasets: ${CORPUS_MIB} MiB of JSONL erasure-coded (k=${K}, m=${M}, S=256 KiB) across ${K + M} of ${providers.length} storage providers`,
  );
  const corpus = join(work, "corpus.jsonl");
  const size = await writeCorpus(corpus);
  const digest = await fileSha256(corpus);
  say(`   corpus ${corpus}: ${size} bytes, sha256 ${digest}`);
  say(`   providers: ${providers.length} embedded S3 servers (${providers.map((p) => new URL(p.endpoint).port).join(", ")})`);
  const started = Date.now();
  const up = await node(cli, [
    "--server",
    ingestionUrl,
    "dataset",
    "upload",
    corpus,
    "--key",
    join(work, "owner.key"),
    "--name",
    "demo-corpus.jsonl",
    "--media-type",
    "application/jsonl",
    "--license",
    "CC-BY-4.0",
    "--usage-terms",
    "research and model training; attribution required",
    "--provenance",
    "source=synthetic",
    "--provenance",
    "collection=generated by make demo",
    "--segment-mib",
    "16",
    "--log-key",
    join(work, "log.vkey"),
    "--envelope-out",
    join(work, "corpus.envelope.json"),
    "--receipt-out",
    join(work, "corpus.tlog-proof"),
    "--json",
  ]);
  const seconds = (Date.now() - started) / 1000;
  const ds = JSON.parse(up.stdout) as {
    datasetId: string;
    contentDigest: string;
    shardRoot: string;
    stripes: number;
    ledgerIndex: number;
    manifest: { placements: { slot?: number; providerId: string }[] };
    receiptVerified: { origin: string; treeSize: number };
  };
  for (const line of up.stderr.trim().split("\n")) if (line.startsWith("sent ")) say(`   deai dataset upload: ${line}`);
  say("     (one signed PUT per 16 MiB segment; the service makes bytes durable per part group of 20 stripes = 40 MiB)");
  say(
    `   uploaded in ${seconds.toFixed(1)} s (${(size / 1024 / 1024 / seconds).toFixed(1)} MiB/s, CLI startup and hashing included): dataset ${ds.datasetId}`,
  );
  say(`     contentDigest sha256:${ds.contentDigest}`);
  say(`     shardRoot     ${ds.shardRoot} over ${ds.stripes} stripes × ${K + M} shards`);
  say(
    `     ledger index  ${ds.ledgerIndex} of ${ds.receiptVerified.origin} (receipt verified offline by the CLI against the pinned log key)`,
  );
  say(`     placements    ${ds.manifest.placements.map((p) => `${p.slot ?? 0}→${p.providerId}`).join(" ")}`);
  let ok = ds.contentDigest === digest;

  // m providers go down: the k data slots' first m, so every stripe must be decoded from parity.
  const down = ds.manifest.placements.slice(0, M).map((p) => Number(p.providerId.slice(1)));
  await Promise.all(down.map((i) => providers[i]!.stop()));
  say(
    `   stopped ${M} providers (${down.map((i) => `p${i}`).join(", ")}: data slots 0-${M - 1}); downloading with only ${K} of ${K + M} slots left`,
  );
  const back = join(work, "corpus.download.jsonl");
  const t = Date.now();
  const dl = await node(cli, ["--server", ingestionUrl, "dataset", "download", ds.datasetId, "-o", back]);
  const dlSeconds = (Date.now() - t) / 1000;
  const backSize = (await stat(back)).size;
  const backDigest = await fileSha256(back);
  const identical = backSize === size && backDigest === digest && Buffer.compare(await readFile(back), await readFile(corpus)) === 0;
  ok &&= identical;
  say(`   deai dataset download: ${dl.stdout.trim()} in ${dlSeconds.toFixed(1)} s`);
  say(`     original   ${size} bytes  sha256 ${digest}`);
  say(`     downloaded ${backSize} bytes  sha256 ${backDigest}`);
  say(`   ${identical ? "✓ byte-identical" : "✗ DIFFERENT"} with ${M} of ${K + M} providers down`);
  await Promise.all(down.map((i) => providers[i]!.start()));

  // Offline: the file, the owner's envelope, the receipt and the pinned log key; no service.
  say("   deai dataset verify (offline: the file, the signed manifest envelope, the receipt, the pinned log key):");
  const args = [
    "dataset",
    "verify",
    back,
    "--envelope",
    join(work, "corpus.envelope.json"),
    "--receipt",
    join(work, "corpus.tlog-proof"),
    "--log-key",
    join(work, "log.vkey"),
  ];
  const verified = await node(cli, args).then(
    (r) => r.stdout,
    (e: { stdout?: string; stderr?: string }) => ((ok = false), `${e.stdout ?? ""}${e.stderr ?? ""}`),
  );
  for (const line of verified.trim().split("\n")) say(`     ${line}`);
  const receipt = await readFile(join(work, "corpus.tlog-proof"), "utf8");
  say("   the dataset's receipt (C2SP tlog-proof):");
  for (const line of receipt.trimEnd().split("\n")) say(`     ${line}`);
  // One flipped byte in the middle of the file is caught.
  const tampered = join(work, "corpus.tampered.jsonl");
  const bytes = await readFile(back);
  bytes[bytes.length >> 1]! ^= 0x01;
  await writeFile(tampered, bytes);
  const refused = await node(
    cli,
    args.map((a) => (a === back ? tampered : a)),
  ).then(
    () => false,
    (e: { stderr?: string }) => (say(`   a file with one flipped byte is refused: ${(e.stderr ?? "").trim().split("\n")[0]}`), true),
  );
  await rm(tampered);
  return ok && refused;
}

/**
 * The dashboard (services/dashboard): started last, pointed at the running services' public
 * REST APIs and the pinned log key; the browser verifies every receipt itself. Prints where it is.
 */
async function dashboardStory(
  running: Map<string, ServiceProcess>,
  logVerifierKey: string,
  vars: (v: Record<string, string>) => Record<string, string>,
): Promise<boolean> {
  say("\n8. Dashboard: the platform in a browser, every receipt verified there against the pinned log key");
  const url = (name: string) => `http://127.0.0.1:${running.get(name)!.port}`;
  const p = await spawnService(
    join(root, "services", "dashboard", "dist", "main.js"),
    vars({
      DASHBOARD_LOG_KEY: logVerifierKey,
      DASHBOARD_LEDGER_URL: url("ledger"),
      DASHBOARD_INGESTION_URL: url("ingestion"),
      DASHBOARD_MARKETPLACE_URL: url("marketplace"),
      DASHBOARD_SLASHING_URL: url("slashing"),
    }),
    { timeoutMs: 90_000 },
  );
  running.set("dashboard", p);
  const base = `http://127.0.0.1:${p.port}`;
  const ready = (await fetch(`${base}/readyz`)).status === 200;
  const config = (await (await fetch(`${base}/config.json`)).json()) as { logKey?: string | null };
  const pinned = config.logKey === logVerifierKey;
  const page = await fetch(`${base}/`);
  const html = page.ok && (await page.text()).includes("<");
  say(`   ${ready && pinned && html ? "✓" : "✗"} dashboard at ${base}/ (ready, serves the app, pins the log key)`);
  say(`     lineage, datasets, providers, orders & leases, slashes read from the services running above`);
  return ready && pinned && html;
}

async function main(): Promise<void> {
  say(
    `DeAI OS demo — one machine: Postgres + NATS on localhost, an embedded S3 server, six services, ${K + M + 1} simulated storage providers (k + m and a spare)\n`,
  );
  const env = await createTestEnv("demo");
  say(`  postgres  ${env.database.url}`);
  say(`  nats      nats://127.0.0.1:4222 (prefix ${env.natsPrefix})`);
  say(`  s3        ${env.s3.endpoint} (embedded)\n`);
  const running = new Map<string, ServiceProcess>();
  const providers: TestS3[] = [];
  let failed = false;
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  // The log's signing key, made the way an operator would: `main.js keygen <origin>`.
  const keygen = await node(join(root, "services", "ledger", "dist", "main.js"), ["keygen", "demo.deai.dev/log"]);
  const keyLines = keygen.stdout.split("\n");
  const ledgerEnv = {
    LEDGER_ORIGIN: "demo.deai.dev/log",
    LEDGER_SIGNING_KEY: keyLines.find((l) => l.startsWith("LEDGER_SIGNING_KEY="))!.slice("LEDGER_SIGNING_KEY=".length),
  };
  const logVerifierKey = keyLines.find((l) => l.startsWith("demo.deai.dev/log+"))!;
  try {
    // The simulated storage providers: one embedded S3 server each.
    // k + m for the dataset and one spare, where repair re-places a lost slot.
    providers.push(...(await Promise.all(Array.from({ length: K + M + 1 }, () => startS3({ buckets: ["shards"] })))));
    // The DA samplers' identities, made before ingestion starts: it follows placements they sign.
    const samplerSeeds = [0, 1, 2].map(() => randomBytes(32).toString("base64url"));
    const samplerIds = samplerSeeds.map((s) => actorKeyFromSeed(s).id);
    const ingestionEnv = (): Record<string, string> => ({
      INGESTION_PROVIDERS: storageProvidersJson(providers),
      INGESTION_LEDGER_URL: `http://127.0.0.1:${running.get("ledger")!.port}`,
      INGESTION_PLACEMENT_SIGNERS: samplerIds.join(","),
    });
    say("1. Starting services");
    for (const name of SERVICES) {
      const ledgerUrl = `http://127.0.0.1:${running.get("ledger")?.port}`;
      const vars =
        name === "ledger"
          ? ledgerEnv
          : name === "ingestion"
            ? ingestionEnv()
            : name === "slashing"
              ? slashingDemoEnv(ledgerUrl, logVerifierKey)
              : name === "marketplace"
                ? marketplaceDemoEnv(`http://127.0.0.1:${running.get("slashing")!.port}`, ledgerUrl, logVerifierKey)
                : {};
      // A loaded machine can take well over 20 s to start a process (the tests allow 90 s too).
      const p = await spawnService(join(root, "services", name, "dist", "main.js"), env.vars(vars), { timeoutMs: 90_000 });
      running.set(name, p);
      say(`   ${name.padEnd(17)} pid ${String(p.proc.pid).padEnd(7)} port ${p.port}`);
    }
    say("\n2. Health: /readyz over HTTP, SystemService/GetInfo over gRPC (grpc-js)");
    for (const [name, p] of running) {
      const r = (await (await fetch(`http://127.0.0.1:${p.port}/readyz`)).json()) as { status: string; checks: Record<string, string> };
      const client = new grpc.Client(`127.0.0.1:${p.port}`, grpc.credentials.createInsecure());
      try {
        const info = await grpcUnary(
          client,
          "/deai.system.v1.SystemService/GetInfo",
          GetInfoRequestSchema,
          GetInfoResponseSchema,
          create(GetInfoRequestSchema),
        );
        const ok = r.status === "ready" && info.service === name;
        failed ||= !ok;
        const checks = Object.entries(r.checks)
          .map(([k, v]) => `${k}=${v}`)
          .join(" ");
        say(
          `   ${ok ? "✓" : "✗"} ${name.padEnd(17)} ${r.status.padEnd(6)} ${checks}; schema ${info.schema}, ${info.migrations.length} migrations`,
        );
      } finally {
        client.close();
      }
    }
    const ledger = running.get("ledger")!;
    failed ||= !(await ledgerStory(`http://127.0.0.1:${ledger.port}`, logVerifierKey));
    failed ||= !(await datasetStory(`http://127.0.0.1:${running.get("ingestion")!.port}`, providers));
    const [ingestionUrl, ledgerUrl0] = [`http://127.0.0.1:${running.get("ingestion")!.port}`, `http://127.0.0.1:${ledger.port}`];
    failed ||= !(await daStory({
      root,
      work,
      cli,
      ingestionUrl,
      ledgerUrl: ledgerUrl0,
      logVerifierKey,
      providers,
      samplerSeeds,
      vars: (v) => env.vars(v),
      say,
    }));
    failed ||= !(await marketStory({
      marketplaceUrl: `http://127.0.0.1:${running.get("marketplace")!.port}`,
      slashingUrl: `http://127.0.0.1:${running.get("slashing")!.port}`,
    }));
    failed ||= !(await slashStory({ slashingUrl: `http://127.0.0.1:${running.get("slashing")!.port}`, cli, work, logVerifierKey }));
    failed ||= !(await dashboardStory(running, logVerifierKey, (v) => env.vars(v)));
    if (process.env.DEMO_KEEP === "1") {
      say("\n   DEMO_KEEP=1: the platform stays up for you to explore; Ctrl-C stops it.");
      await new Promise<void>((r) => {
        process.once("SIGINT", () => r());
        process.once("SIGTERM", () => r());
      });
    }
  } finally {
    say("\n9. Stopping services (SIGTERM → drain → exit)");
    for (const p of running.values()) p.kill("SIGTERM");
    for (const [name, p] of running) {
      const code = await p.exited;
      failed ||= code !== 0;
      say(`   ${code === 0 ? "✓" : "✗"} ${name.padEnd(17)} exit ${code}`);
    }
    await Promise.all(providers.map((p) => p.destroy()));
    await env.close();
  }
  if (failed) {
    say("\ndemo FAILED");
    process.exit(1);
  }
  say("\ndemo OK");
}

await main();
