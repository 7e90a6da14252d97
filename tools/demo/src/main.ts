/**
 * `make demo`: every service as a local process against Postgres and NATS on localhost and
 * an embedded S3-compatible server; checks each is healthy over REST and gRPC, then stops
 * them all with SIGTERM and checks they drained and exited 0. Later issues extend the story.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";

import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";

import { GetInfoRequestSchema, GetInfoResponseSchema } from "@deai/contracts/deai/system/v1/system_pb";
import { createTestEnv, grpcUnary, spawnService, type ServiceProcess } from "@deai/testkit";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const SERVICES = ["ledger", "ingestion", "da-sampler", "marketplace", "slashing", "trainer-operator"] as const;

const say = (s: string): void => void process.stdout.write(`${s}\n`);
const run = promisify(execFile);
const node = (script: string, args: string[], env: Record<string, string> = {}) =>
  run(process.execPath, [script, ...args], { env: { ...process.env, ...env }, maxBuffer: 16 * 1024 * 1024 });
const cli = join(root, "tools", "cli", "dist", "main.js");
const work = join(root, ".demo");

/** The ledger's part of the story: a signed statement in, a receipt out, verified offline. */
async function ledgerStory(ledgerUrl: string, logVerifierKey: string): Promise<boolean> {
  say("\n3. Provenance ledger: append a signed dataset statement, get its receipt, verify it offline");
  const corpus = Buffer.from(Array.from({ length: 2000 }, (_, i) => `line ${i}: the quick brown fox ${i % 7}\n`).join(""));
  const digest = createHash("sha256").update(corpus).digest("hex");
  const statement = {
    _type: "https://in-toto.io/Statement/v1",
    subject: [{ name: "demo-corpus.txt", digest: { sha256: digest } }],
    predicateType: "https://deai.dev/dataset-manifest/v1",
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

async function main(): Promise<void> {
  say("DeAI OS demo — one machine: Postgres + NATS on localhost, an embedded S3 server, six services\n");
  const env = await createTestEnv("demo");
  say(`  postgres  ${env.database.url}`);
  say(`  nats      nats://127.0.0.1:4222 (prefix ${env.natsPrefix})`);
  say(`  s3        ${env.s3.endpoint} (embedded)\n`);
  const running = new Map<string, ServiceProcess>();
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
    say("1. Starting services");
    for (const name of SERVICES) {
      const p = await spawnService(join(root, "services", name, "dist", "main.js"), env.vars(name === "ledger" ? ledgerEnv : {}));
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
  } finally {
    say("\n4. Stopping services (SIGTERM → drain → exit)");
    for (const p of running.values()) p.kill("SIGTERM");
    for (const [name, p] of running) {
      const code = await p.exited;
      failed ||= code !== 0;
      say(`   ${code === 0 ? "✓" : "✗"} ${name.padEnd(17)} exit ${code}`);
    }
    await env.close();
  }
  if (failed) {
    say("\ndemo FAILED");
    process.exit(1);
  }
  say("\ndemo OK");
}

await main();
