/**
 * `make demo`: every service as a local process against Postgres and NATS on localhost and
 * an embedded S3-compatible server; checks each is healthy over REST and gRPC, then stops
 * them all with SIGTERM and checks they drained and exited 0. Later issues extend the story.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";

import { GetInfoRequestSchema, GetInfoResponseSchema } from "@deai/contracts/deai/system/v1/system_pb";
import { createTestEnv, grpcUnary, spawnService, type ServiceProcess } from "@deai/testkit";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const SERVICES = ["ledger", "ingestion", "da-sampler", "marketplace", "slashing", "trainer-operator"] as const;

const say = (s: string): void => void process.stdout.write(`${s}\n`);

async function main(): Promise<void> {
  say("DeAI OS demo — one machine: Postgres + NATS on localhost, an embedded S3 server, six services\n");
  const env = await createTestEnv("demo");
  say(`  postgres  ${env.database.url}`);
  say(`  nats      nats://127.0.0.1:4222 (prefix ${env.natsPrefix})`);
  say(`  s3        ${env.s3.endpoint} (embedded)\n`);
  const running = new Map<string, ServiceProcess>();
  let failed = false;
  try {
    say("1. Starting services");
    for (const name of SERVICES) {
      const p = await spawnService(join(root, "services", name, "dist", "main.js"), env.vars());
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
  } finally {
    say("\n3. Stopping services (SIGTERM → drain → exit)");
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
