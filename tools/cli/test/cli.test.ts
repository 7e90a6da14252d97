// The deai CLI as a user runs it (node dist/main.js) against a real ledger process.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { jest } from "@jest/globals";

import { createTestEnv, spawnService, type ServiceProcess, type TestEnv } from "@deai/testkit";
import {
  generateNoteKey,
  COSIGNATURE_V1_TYPE,
  parseCheckpoint,
  parseNote,
  parseTlogProof,
  STATEMENT_V1_TYPE,
  verifyConsistency,
} from "@deai/proofs";

const cliJs = new URL("../dist/main.js", import.meta.url).pathname;
const ledgerJs = new URL("../../../services/ledger/dist/main.js", import.meta.url).pathname;
const ORIGIN = "ledger.test/cli";
const logKeys = generateNoteKey(ORIGIN);
const otherLog = generateNoteKey(ORIGIN);
const dir = mkdtempSync(join(tmpdir(), "deai-cli-"));
const at = (name: string): string => join(dir, name);

// A test runs up to ten CLI processes; beside the dataset suite (the other jest worker) on a
// 2-core machine under load, each can take seconds to start.
jest.setTimeout(120_000);

let env: TestEnv;
let ledger: ServiceProcess;
let base: string;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function deai(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cliJs, ...args], { env: { PATH: process.env.PATH ?? "", DEAI_LEDGER_URL: base } }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

function statementFile(name: string, subjectHex: string, extra: Record<string, unknown> = {}): string {
  const path = at(name);
  writeFileSync(
    path,
    JSON.stringify({
      _type: STATEMENT_V1_TYPE,
      subject: [{ name: "model.safetensors", digest: { sha256: subjectHex } }],
      predicateType: "https://slsa.dev/provenance/v1",
      predicate: { buildDefinition: { resolvedDependencies: [{ digest: { sha256: "ab".repeat(32) } }] } },
      ...extra,
    }),
  );
  return path;
}

beforeAll(async () => {
  env = await createTestEnv("cli");
  ledger = await spawnService(
    ledgerJs,
    env.vars({ LEDGER_ORIGIN: ORIGIN, LEDGER_SIGNING_KEY: logKeys.signerKey, LEDGER_CHECKPOINT_INTERVAL_MS: "100" }),
  );
  base = `http://127.0.0.1:${ledger.port}`;
  writeFileSync(at("log.vkey"), logKeys.verifierKey + "\n");
});

afterAll(async () => {
  if (ledger && ledger.proc.exitCode === null) {
    ledger.kill("SIGTERM");
    await ledger.exited;
  }
  await env?.close();
});

describe("keygen → append --wait → verify offline", () => {
  let index: number;

  it("creates a key file and refuses to overwrite it", async () => {
    const r = await deai("keygen", "--out", at("alice.key"));
    expect(r).toMatchObject({ code: 0 });
    const key = JSON.parse(readFileSync(at("alice.key"), "utf8")) as { actor: string; seed: string };
    expect(key.actor).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(key.seed, "base64url")).toHaveLength(32);
    expect(r.stdout).toContain(key.actor);
    const again = await deai("keygen", "--out", at("alice.key"));
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already exists/);
  });

  it("appends a signed statement, waits, and the receipt verifies offline against the pinned log key", async () => {
    const r = await deai(
      "ledger",
      "append",
      "--key",
      at("alice.key"),
      "--statement",
      statementFile("s1.json", "cd".repeat(32)),
      "--wait",
      "--receipt-out",
      at("s1.tlog-proof"),
      "--entry-out",
      at("s1.entry"),
    );
    expect(r).toMatchObject({ code: 0 });
    const m = /^index (\d+)$/m.exec(r.stdout);
    expect(m).not.toBeNull();
    index = Number(m![1]);
    expect(parseTlogProof(readFileSync(at("s1.tlog-proof"))).index).toBe(index);

    const ok = await deai("verify", at("s1.tlog-proof"), "--log-key", at("log.vkey"), "--entry", at("s1.entry"));
    expect(ok).toMatchObject({ code: 0, stderr: "" });
    expect(ok.stdout).toMatch(new RegExp(`^OK leaf [0-9a-f]{64} is entry ${index} of ledger.test/cli \\(tree size \\d+\\)`));
    expect(ok.stdout.trim().split("\n")).toHaveLength(1);
    // Key text instead of a file, the leaf hash instead of the entry, and --json for scripts.
    const byHash = JSON.parse(
      (
        await deai(
          "verify",
          at("s1.tlog-proof"),
          "--log-key",
          logKeys.verifierKey,
          "--leaf-hash",
          /leaf ([0-9a-f]{64})/.exec(ok.stdout)![1]!,
          "--json",
        )
      ).stdout,
    ) as { ok: boolean; index: number };
    expect(byHash).toMatchObject({ ok: true, index });
  });

  it("verify fails with exit 1 and the reason for a tampered receipt or entry, the wrong log key, or a missing witness", async () => {
    const receipt = readFileSync(at("s1.tlog-proof"), "utf8");
    const entry = readFileSync(at("s1.entry"));
    // The entry: one byte changed.
    const badEntry = Buffer.from(entry);
    badEntry[badEntry.length - 3]! ^= 1;
    writeFileSync(at("bad.entry"), badEntry);
    // The receipt: another index; a changed root in the checkpoint; a flipped proof hash.
    const lines = receipt.split("\n");
    writeFileSync(at("bad-index.tlog-proof"), receipt.replace(/^index \d+$/m, `index ${index + 1}`));
    const rootLine = lines.findIndex((l, i) => i > 0 && lines[i - 2] === ORIGIN);
    const root = Buffer.from(lines[rootLine]!, "base64");
    root[0]! ^= 1;
    writeFileSync(
      at("bad-root.tlog-proof"),
      [...lines.slice(0, rootLine), root.toString("base64"), ...lines.slice(rootLine + 1)].join("\n"),
    );
    writeFileSync(at("other.vkey"), otherLog.verifierKey);
    const witness = generateNoteKey("witness.test/w", { type: COSIGNATURE_V1_TYPE });
    const cases: [string, string[], RegExp][] = [
      ["tampered entry", [at("s1.tlog-proof"), "--log-key", at("log.vkey"), "--entry", at("bad.entry")], /root-mismatch/],
      ["wrong index", [at("bad-index.tlog-proof"), "--log-key", at("log.vkey"), "--entry", at("s1.entry")], /FAIL/],
      ["tampered checkpoint", [at("bad-root.tlog-proof"), "--log-key", at("log.vkey"), "--entry", at("s1.entry")], /invalid-signature/],
      ["wrong log key", [at("s1.tlog-proof"), "--log-key", at("other.vkey"), "--entry", at("s1.entry")], /no-verified-signature/],
      [
        "missing witness",
        [at("s1.tlog-proof"), "--log-key", at("log.vkey"), "--entry", at("s1.entry"), "--witness-key", witness.verifierKey],
        /witness-quorum.*0 valid witness cosignature\(s\), need 1/,
      ],
    ];
    for (const [name, args, why] of cases) {
      const r = await deai("verify", ...args);
      expect({ name, code: r.code, stdout: r.stdout }).toEqual({ name, code: 1, stdout: "" });
      expect(r.stderr).toMatch(why);
    }
  });

  it("verify works with no server at all", async () => {
    base = "http://127.0.0.1:9"; // nothing listens there
    try {
      expect((await deai("verify", at("s1.tlog-proof"), "--log-key", at("log.vkey"), "--entry", at("s1.entry"))).code).toBe(0);
      const down = await deai("ledger", "checkpoint");
      expect(down.code).toBe(1);
      expect(down.stderr).toMatch(/cannot reach the ledger/);
    } finally {
      base = `http://127.0.0.1:${ledger.port}`;
    }
  });
});

describe("reads and proofs", () => {
  it("prove prints a receipt that verifies; prove --consistency between two checkpoints verifies", async () => {
    const first = parseNote(readFileSync(at("s1.tlog-proof"), "utf8").split("\n\n").slice(1).join("\n\n"));
    const c1 = parseCheckpoint(first.text);
    await deai("keygen", "--out", at("bob.key"));
    const r2 = await deai("ledger", "append", "--key", at("bob.key"), "--statement", statementFile("s2.json", "ef".repeat(32)), "--wait");
    expect(r2.code).toBe(0);
    expect(r2.stdout.startsWith("c2sp.org/tlog-proof@v1\n")).toBe(true);
    const index2 = parseTlogProof(r2.stdout).index;

    const proved = await deai("ledger", "prove", String(index2));
    expect(proved.code).toBe(0);
    writeFileSync(at("p2.tlog-proof"), proved.stdout);
    const got = await deai("ledger", "get", String(index2), "--entry-out", at("s2.entry"));
    expect(got.code).toBe(0);
    expect(got.stdout).toMatch(/predicate {2}https:\/\/slsa.dev\/provenance\/v1/);
    const v = await deai("verify", at("p2.tlog-proof"), "--log-key", at("log.vkey"), "--entry", at("s2.entry"));
    expect(v).toMatchObject({ code: 0 });

    const cp = JSON.parse((await deai("ledger", "checkpoint", "--json")).stdout) as { checkpoint: { note: string; size: string } };
    const c2 = parseCheckpoint(parseNote(cp.checkpoint.note).text);
    const cons = await deai("ledger", "prove", "--consistency", String(c1.size), String(c2.size), "--json");
    expect(cons.code).toBe(0);
    const proof = (JSON.parse(cons.stdout) as { consistencyProof: string[] }).consistencyProof.map((h) => Buffer.from(h, "base64"));
    expect(() => verifyConsistency(c1.size, c2.size, proof, c1.rootHash, c2.rootHash)).not.toThrow();

    // By leaf hash, too.
    const hash = (JSON.parse((await deai("ledger", "get", String(index2), "--json")).stdout) as { entry: { leafHash: string } }).entry
      .leafHash;
    const byHash = await deai("ledger", "get", "--leaf-hash", Buffer.from(hash, "base64").toString("hex"), "--json");
    expect((JSON.parse(byHash.stdout) as { entry: { index: string } }).entry.index).toBe(String(index2));
  });

  it("walks lineage", async () => {
    const r = await deai("ledger", "lineage", `sha256:${"ab".repeat(32)}`, "--direction", "descendants", "--json");
    expect(r.code).toBe(0);
    const body = JSON.parse(r.stdout) as { hops: { subject: { hex: string } }[] };
    expect(body.hops.map((h) => h.subject.hex).sort()).toEqual(["cd".repeat(32), "ef".repeat(32)]);
    const human = await deai("ledger", "lineage", `sha256:${"cd".repeat(32)}`);
    expect(human.stdout).toMatch(/1 hop\(s\)/);
  });

  it("reports usage errors with exit 2 and server errors with exit 1", async () => {
    expect((await deai("ledger", "frobnicate")).code).toBe(2);
    expect((await deai("verify", at("s1.tlog-proof"), "--entry", at("s1.entry"))).stderr).toMatch(/--log-key is required/);
    expect((await deai("ledger", "get", "1", "--statement", "x")).code).toBe(2);
    const missing = await deai("ledger", "get", "99999");
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/not_found \(HTTP 404\): no entry at index 99999/);
    writeFileSync(at("bad-statement.json"), JSON.stringify({ hello: "world" }));
    const bad = await deai("ledger", "append", "--key", at("alice.key"), "--statement", at("bad-statement.json"));
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/_type must be/);
  });
});
