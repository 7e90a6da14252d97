// kill -9 during 1,000 concurrent appends: after a restart every acknowledged entry is present
// exactly once, fsck is clean, and the next checkpoint is consistent with the last published.
import { execFile } from "node:child_process";
import { promisify } from "node:util";

import { generateActorKey } from "@deai/kit";
import { createTestEnv, signedFetch, spawnService, type ServiceProcess, type TestEnv } from "@deai/testkit";
import { generateNoteKey, openCheckpoint, parseVerifierKey, verifyConsistency } from "@deai/proofs";

import { envelope, sha256Hex, statement } from "./fixtures.js";

const run = promisify(execFile);
const mainJs = new URL("../dist/main.js", import.meta.url).pathname;
const ORIGIN = "ledger.test/recovery";
const keys = generateNoteKey(ORIGIN);
const author = generateActorKey();

let env: TestEnv;
let svc: ServiceProcess | undefined;

afterAll(async () => {
  if (svc && svc.proc.exitCode === null) {
    svc.kill("SIGKILL");
    await svc.exited;
  }
  await env?.close();
});

it("survives kill -9 during 1,000 concurrent appends", async () => {
  env = await createTestEnv("ledgerkill");
  const vars = env.vars({
    LEDGER_ORIGIN: ORIGIN,
    LEDGER_SIGNING_KEY: keys.signerKey,
    LEDGER_CHECKPOINT_INTERVAL_MS: "50",
    DB_POOL_SIZE: "10",
  });
  svc = await spawnService(mainJs, vars);
  let base = `http://127.0.0.1:${svc.port}`;
  const latest = async (): Promise<{ note: string; size: number; root: Uint8Array }> => {
    const r = (await (await fetch(`${base}/v1/ledger/checkpoint`)).json()) as {
      checkpoint: { note: string; size: string; rootHash: string };
    };
    return { note: r.checkpoint.note, size: Number(r.checkpoint.size), root: Buffer.from(r.checkpoint.rootHash, "base64") };
  };
  const acked = new Map<string, number>();
  let failed = 0;
  const appends = Array.from({ length: 1000 }, async (_, i) => {
    const e = envelope(statement([sha256Hex(`kill-${i}`)], "https://deai.dev/lease/v1", { i }), [author]);
    try {
      const res = await signedFetch(`${base}/v1/ledger/entries`, author, { body: JSON.stringify({ envelope: e }) });
      if (res.status !== 200) throw new Error(String(res.status));
      const body = (await res.json()) as { index: string; leafHash: string };
      acked.set(body.leafHash, Number(body.index));
    } catch {
      failed++;
    }
  });
  // Kill once some (but not all) appends were acknowledged.
  while (acked.size < 200) await new Promise((r) => setTimeout(r, 5));
  const before = await latest().catch(() => undefined);
  svc.kill("SIGKILL");
  await svc.exited;
  await Promise.all(appends);
  expect(acked.size).toBeGreaterThanOrEqual(200);
  // The last checkpoint anyone could have seen: read it after the restart (it is durable).
  svc = await spawnService(mainJs, vars);
  base = `http://127.0.0.1:${svc.port}`;
  const published = (await (await signedFetch(`${base}/v1/ledger/checkpoints`, author, { body: "{}" })).json()) as {
    checkpoint: { size: string };
  };
  const after = await latest();
  expect(after.size).toBe(Number(published.checkpoint.size));
  // Every acknowledged entry is present exactly once, at the index it was given.
  for (const [hash, index] of acked) {
    const r = (await (await fetch(`${base}/v1/ledger/leaves/${Buffer.from(hash, "base64").toString("base64url")}`)).json()) as {
      entry: { index: string };
    };
    expect(Number(r.entry.index)).toBe(index);
  }
  const indexes = [...acked.values()];
  expect(new Set(indexes).size).toBe(indexes.length);
  expect(Math.max(...indexes)).toBeLessThan(after.size);
  // The new checkpoint is consistent with the last one published before the kill.
  const verifier = parseVerifierKey(keys.verifierKey);
  openCheckpoint(after.note, { log: verifier });
  if (before && before.size > 0 && before.size < after.size) {
    const c = (await (await fetch(`${base}/v1/ledger/proofs/consistency?first=${before.size}&second=${after.size}`)).json()) as {
      consistencyProof: string[];
    };
    verifyConsistency(
      before.size,
      after.size,
      c.consistencyProof.map((h) => Buffer.from(h, "base64")),
      before.root,
      after.root,
    );
  }
  // fsck over the whole log is clean.
  const out = await run(process.execPath, [mainJs, "fsck"], { env: { PATH: process.env.PATH ?? "", ...vars } });
  const report = JSON.parse(out.stdout) as { ok: boolean; problems: string[]; entries: number };
  expect(report.problems).toEqual([]);
  expect(report.ok).toBe(true);
  expect(report.entries).toBeGreaterThanOrEqual(acked.size);
  void failed;
}, 120_000);
