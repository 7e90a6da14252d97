// Witnesses: the `witness` command follows the log and cosigns; the ledger keeps verified
// cosignatures and, with LEDGER_WITNESS_QUORUM=1, publishes only cosigned checkpoints.
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { generateActorKey, startService, type RunningService } from "@deai/kit";
import { createTestEnv, signedFetch, type TestEnv } from "@deai/testkit";
import {
  COSIGNATURE_V1_TYPE,
  formatSignatureLine,
  generateNoteKey,
  openCheckpoint,
  parseNote,
  parseSignerKey,
  parseVerifierKey,
  utf8Encode,
  verifyTlogProof,
  type NoteVerifier,
} from "@deai/proofs";

import { witnessKeys } from "../src/app/witness.js";
import { loadLedgerConfig } from "../src/config.js";
import { ledgerDefinition } from "../src/definition.js";
import type { LedgerDb } from "../src/store/tables.js";
import { envelope, sha256Hex, statement } from "./fixtures.js";

const mainJs = new URL("../dist/main.js", import.meta.url).pathname;
const ORIGIN = "ledger.test/witnessed";
const logKeys = generateNoteKey(ORIGIN);
const witness = generateNoteKey("witness.test/w1", { type: COSIGNATURE_V1_TYPE });
const author = generateActorKey();
const dir = mkdtempSync(join(tmpdir(), "deai-witness-"));

let env: TestEnv;
let svc: RunningService<LedgerDb>;
let base: string;
let logV: NoteVerifier;
let witnessV: NoteVerifier;

interface CheckpointJson {
  note: string;
  size: string;
  rootHash: string;
  signatures: { name: string; witness: boolean; cosignedAt?: string }[];
}

function runWitness(state: string, extra: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [mainJs, "witness", "--log", base, "--log-key", logKeys.verifierKey, "--witness-key", witness.signerKey, "--state", state, ...extra],
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

async function append(tag: string, waitMs: number): Promise<Record<string, unknown> & { receipt?: { tlogProof: string } }> {
  const e = envelope(statement([sha256Hex(tag)], "https://deai.dev/lease/v1"), [author]);
  const res = await signedFetch(`${base}/v1/ledger/entries`, author, {
    body: JSON.stringify({ envelope: e, waitForIntegration: true, waitTimeout: `${waitMs / 1000}s` }),
  });
  expect(res.status).toBe(200);
  return (await res.json()) as never;
}

async function cosign(body: Record<string, unknown>, key = witnessKeys(witness.signerKey).actor): Promise<Response> {
  return signedFetch(`${base}/v1/ledger/checkpoints/cosignatures`, key, { body: JSON.stringify(body) });
}

beforeAll(async () => {
  env = await createTestEnv("ledgerwitness");
  const cfg = loadLedgerConfig(
    env.vars({
      LEDGER_ORIGIN: ORIGIN,
      LEDGER_SIGNING_KEY: logKeys.signerKey,
      LEDGER_CHECKPOINT_INTERVAL_MS: "100",
      LEDGER_WITNESS_KEYS: witness.verifierKey,
      LEDGER_WITNESS_QUORUM: "1",
    }),
  );
  svc = await startService(ledgerDefinition(cfg), cfg);
  base = `http://127.0.0.1:${svc.port}`;
  logV = parseVerifierKey(logKeys.verifierKey);
  witnessV = parseVerifierKey(witness.verifierKey);
});

afterAll(async () => {
  await svc?.stop();
  await env?.close();
});

it("publishes nothing before the quorum; receipts say they are log-signed only", async () => {
  const r = await append("before-witness", 1500);
  expect(r).toMatchObject({ integrated: true, witnessCosignatures: 0, witnessQuorum: 1 });
  // The receipt is valid under the log key alone, and fails a policy that needs the witness.
  verifyTlogProof(r.receipt!.tlogProof, { leafHash: Buffer.from(r.leafHash as string, "base64") }, { log: logV });
  expect(() =>
    verifyTlogProof(
      r.receipt!.tlogProof,
      { leafHash: Buffer.from(r.leafHash as string, "base64") },
      { log: logV, witnesses: [witnessV], witnessThreshold: 1 },
    ),
  ).toThrow(/witness/);
  expect((await fetch(`${base}/checkpoint`)).status).toBe(404);
  expect((await fetch(`${base}/v1/ledger/checkpoint`)).status).toBe(400);
  expect((await fetch(`${base}/log-checkpoint`)).status).toBe(200);
});

it("a witness run cosigns the newest checkpoint, which /checkpoint then serves with the cosignature", async () => {
  const state = join(dir, "w1.json");
  const r = await runWitness(state, ["--once"]);
  expect(r).toMatchObject({ code: 0 });
  expect(r.stdout).toMatch(/cosigned ledger\.test\/witnessed size \d+/);
  const saved = JSON.parse(readFileSync(state, "utf8")) as { size: number; checkpoint: string };
  const note = await (await fetch(`${base}/checkpoint`)).text();
  const v = openCheckpoint(note, { log: logV, witnesses: [witnessV], witnessThreshold: 1 });
  expect(v.checkpoint.size).toBe(saved.size);
  expect(v.cosignatures).toEqual([expect.objectContaining({ name: "witness.test/w1" })]);
  const api = (await (await fetch(`${base}/v1/ledger/checkpoint`)).json()) as { checkpoint: CheckpointJson };
  expect(api.checkpoint.note).toBe(note);
  expect(api.checkpoint.signatures.map((s) => [s.name, s.witness])).toEqual([
    [ORIGIN, false],
    ["witness.test/w1", true],
  ]);
  expect(api.checkpoint.signatures[1]!.cosignedAt).toBeDefined();
  // A second run over a grown log proves consistency from the saved size and cosigns again.
  await append("between-runs", 1000);
  const again = await runWitness(state, ["--once"]);
  expect(again.code).toBe(0);
  expect((JSON.parse(readFileSync(state, "utf8")) as { size: number }).size).toBeGreaterThan(saved.size);
});

it("receipts from append-with-wait carry the witness cosignature while a witness follows the log", async () => {
  const follower = spawn(
    process.execPath,
    [
      mainJs,
      "witness",
      "--log",
      base,
      "--log-key",
      logKeys.verifierKey,
      "--witness-key",
      witness.signerKey,
      "--state",
      join(dir, "follow.json"),
      "--interval-ms",
      "100",
    ],
    { stdio: "ignore" },
  );
  const exited = new Promise<number | null>((resolve) => follower.once("exit", resolve));
  try {
    const r = await append("while-witnessed", 10_000);
    expect(r).toMatchObject({ integrated: true, witnessCosignatures: 1, witnessQuorum: 1 });
    const ok = verifyTlogProof(
      r.receipt!.tlogProof,
      { leafHash: Buffer.from(r.leafHash as string, "base64") },
      { log: logV, witnesses: [witnessV], witnessThreshold: 1 },
    );
    expect(ok.cosignatures).toHaveLength(1);
  } finally {
    follower.kill("SIGTERM");
  }
  expect(await exited).toBe(0);
});

it("rejects bogus cosignatures (400), unknown checkpoints (404) and callers that are not witnesses (403)", async () => {
  const note = await (await fetch(`${base}/log-checkpoint`)).text();
  const parsed = parseNote(note);
  const lines = parsed.text.split("\n");
  const size = lines[1]!;
  const rootHash = lines[2]!;
  const signer = parseSignerKey(witness.signerKey);
  const good = { name: signer.name, keyId: signer.keyId, signature: signer.sign(utf8Encode(parsed.text)!) };
  const tampered = Uint8Array.from(good.signature);
  tampered[20]! ^= 1;
  const bogus = await cosign({ treeSize: size, rootHash, signatureLine: formatSignatureLine({ ...good, signature: tampered }) });
  expect(bogus.status).toBe(400);
  expect(((await bogus.json()) as { message: string }).message).toMatch(/does not verify/);
  // A valid cosignature of a different text (another size) does not count for this one.
  const other = signer.sign(utf8Encode(parsed.text.replace(`\n${size}\n`, `\n${Number(size) + 1}\n`))!);
  expect((await cosign({ treeSize: size, rootHash, signatureLine: formatSignatureLine({ ...good, signature: other }) })).status).toBe(400);
  const wrongRoot = Buffer.alloc(32, 7).toString("base64");
  expect((await cosign({ treeSize: size, rootHash: wrongRoot, signatureLine: formatSignatureLine(good) })).status).toBe(400);
  expect((await cosign({ treeSize: "999999", rootHash, signatureLine: formatSignatureLine(good) })).status).toBe(404);
  expect((await cosign({ treeSize: size, rootHash, signatureLine: "not a signature line" })).status).toBe(400);
  expect((await cosign({ treeSize: size, rootHash, signatureLine: formatSignatureLine(good) }, generateActorKey())).status).toBe(403);
  const unsigned = await fetch(`${base}/v1/ledger/checkpoints/cosignatures`, {
    method: "POST",
    body: JSON.stringify({ treeSize: size, rootHash, signatureLine: formatSignatureLine(good) }),
  });
  expect(unsigned.status).toBe(401);
  // The genuine one is accepted.
  const ok = await cosign({ treeSize: size, rootHash, signatureLine: formatSignatureLine(good) });
  expect(ok.status).toBe(200);
  const body = (await ok.json()) as { checkpoint: CheckpointJson };
  openCheckpoint(body.checkpoint.note, { log: logV, witnesses: [witnessV], witnessThreshold: 1 });
});

it("refuses, exit 3 and state unchanged, when the log's checkpoint is not consistent with the state it cosigned", async () => {
  const note = await (await fetch(`${base}/log-checkpoint`)).text();
  const size = Number(parseNote(note).text.split("\n")[1]);
  const cases: [string, { size: number; rootHash: string }, RegExp][] = [
    ["fork", { size, rootHash: Buffer.alloc(32, 1).toString("base64") }, /forked/],
    ["inconsistent", { size: 1, rootHash: Buffer.alloc(32, 2).toString("base64") }, /not consistent/],
    ["rollback", { size: size + 100, rootHash: Buffer.alloc(32, 3).toString("base64") }, /rolled back/],
  ];
  for (const [name, s, why] of cases) {
    const state = join(dir, `${name}.json`);
    const text = JSON.stringify({ origin: ORIGIN, ...s, checkpoint: "" });
    writeFileSync(state, text);
    const r = await runWitness(state, ["--once"]);
    expect({ name, code: r.code }).toEqual({ name, code: 3 });
    expect(r.stderr).toMatch(/REFUSING TO COSIGN/);
    expect(r.stderr).toMatch(why);
    expect(readFileSync(state, "utf8")).toBe(text);
  }
});
