// `deai dataset` as a user runs it (node dist/main.js) against a real ingestion process, a real
// ledger process and k + m in-process S3 servers as storage providers.
import { execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { actorKeyFromSeed, signRequest, type ActorKey } from "@deai/kit";
import { createTestEnv, spawnService, startS3, storageProvidersJson, type ServiceProcess, type TestEnv, type TestS3 } from "@deai/testkit";
import { generateNoteKey } from "@deai/proofs";

import { signStatement } from "../src/envelope.js";

const cliJs = new URL("../dist/main.js", import.meta.url).pathname;
const ledgerJs = new URL("../../../services/ledger/dist/main.js", import.meta.url).pathname;
const ingestionJs = new URL("../../../services/ingestion/dist/main.js", import.meta.url).pathname;
const ORIGIN = "ledger.test/cli-dataset";
const logKeys = generateNoteKey(ORIGIN);
const otherLog = generateNoteKey(ORIGIN);
const K = 4;
const M = 2;
const S = 4096;
const CODING = ["--k", String(K), "--m", String(M), "--shard-size", String(S)];
const dir = mkdtempSync(join(tmpdir(), "deai-cli-dataset-"));
const at = (name: string): string => join(dir, name);

let env: TestEnv;
let providers: TestS3[];
let ledger: ServiceProcess;
let ingestion: ServiceProcess;
let base: string;
let owner: ActorKey;
let ingestionVars: Record<string, string>;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function deai(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cliJs, ...args],
      { env: { PATH: process.env.PATH ?? "", DEAI_INGESTION_URL: base }, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** Runs the CLI with `input` on stdin; stdout as bytes. */
function deaiPiped(input: Buffer | undefined, ...args: string[]): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [cliJs, ...args], { env: { PATH: process.env.PATH ?? "", DEAI_INGESTION_URL: base } });
    const out: Buffer[] = [];
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => out.push(d));
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    p.on("close", (code) => resolve({ code: code ?? 1, stdout: Buffer.concat(out), stderr }));
    p.stdin.end(input);
  });
}

/** The CLI running in the background: wait for a line on stderr, kill it, or wait for its end. */
function background(...args: string[]) {
  const p = spawn(process.execPath, [cliJs, ...args], { env: { PATH: process.env.PATH ?? "", DEAI_INGESTION_URL: base } });
  const out = { stdout: "", stderr: "" };
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  p.stdout.on("data", (d: Buffer) => (out.stdout += d.toString()));
  p.stderr.on("data", (d: Buffer) => {
    out.stderr += d.toString();
    for (const w of waiters.filter((w) => w.re.test(out.stderr))) w.resolve();
  });
  const exited = new Promise<number | null>((r) => p.on("close", r));
  return {
    out,
    exited,
    kill: () => p.kill("SIGKILL"),
    /** Resolves once stderr matches `re`; rejects if the process ends first. */
    seen: (re: RegExp): Promise<void> =>
      new Promise((resolve, reject) => {
        if (re.test(out.stderr)) return resolve();
        waiters.push({ re, resolve });
        void exited.then(() => reject(new Error(`the CLI ended before ${re}: ${out.stderr}`)));
      }),
  };
}

/** Deterministic pseudo-random bytes. */
function bytesOf(size: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let block = createHash("sha256").update(`seed-${seed}`).digest();
  for (let i = 0; i < size; i += 32) {
    block.copy(out, i, 0, Math.min(32, size - i));
    block = createHash("sha256").update(block).digest();
  }
  return out;
}

const sha256 = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

interface UploadOut {
  ok: boolean;
  datasetId: string;
  uploadId: string;
  deduplicated: boolean;
  contentDigest: string;
  shardRoot: string;
  size: number;
  stripes: number;
  ledgerIndex: number;
  receipt: string;
  receiptVerified?: { index: number };
}

beforeAll(async () => {
  env = await createTestEnv("cli-dataset");
  providers = await Promise.all(Array.from({ length: K + M }, () => startS3({ buckets: ["shards"] })));
  ledger = await spawnService(
    ledgerJs,
    env.vars({ LEDGER_ORIGIN: ORIGIN, LEDGER_SIGNING_KEY: logKeys.signerKey, LEDGER_CHECKPOINT_INTERVAL_MS: "100" }),
  );
  ingestionVars = env.vars({
    INGESTION_PROVIDERS: storageProvidersJson(providers),
    INGESTION_LEDGER_URL: `http://127.0.0.1:${ledger.port}`,
    INGESTION_PART_BYTES: "16384",
    INGESTION_HEDGE_MS: "200",
  });
  ingestion = await spawnService(ingestionJs, ingestionVars);
  base = `http://127.0.0.1:${ingestion.port}`;
  writeFileSync(at("log.vkey"), logKeys.verifierKey + "\n");
  writeFileSync(at("other.vkey"), otherLog.verifierKey + "\n");
  expect((await deai("keygen", "--out", at("owner.key"))).code).toBe(0);
  owner = actorKeyFromSeed((JSON.parse(readFileSync(at("owner.key"), "utf8")) as { seed: string }).seed);
}, 60_000);

afterAll(async () => {
  for (const p of [ingestion, ledger]) {
    if (p && p.proc.exitCode === null) {
      p.kill("SIGTERM");
      await p.exited;
    }
  }
  await Promise.all((providers ?? []).map((p) => p.destroy()));
  await env?.close();
});

describe("upload → download → show → verify", () => {
  const data = bytesOf(300_001, 1);
  let up: UploadOut;

  beforeAll(async () => {
    writeFileSync(at("corpus.jsonl"), data);
    const r = await deai(
      "dataset",
      "upload",
      at("corpus.jsonl"),
      "--key",
      at("owner.key"),
      ...CODING,
      "--segment-mib",
      "0.1",
      "--media-type",
      "application/jsonl",
      "--license",
      "CC-BY-4.0",
      "--usage-terms",
      "research only",
      "--parent",
      "ab".repeat(32),
      "--provenance",
      "source=synthetic",
      "--check-shard-root",
      "--log-key",
      at("log.vkey"),
      "--envelope-out",
      at("corpus.envelope.json"),
      "--receipt-out",
      at("corpus.tlog-proof"),
      "--json",
    );
    expect(r).toMatchObject({ code: 0 });
    up = JSON.parse(r.stdout) as UploadOut;
  }, 60_000);

  it("uploads in signed segments and anchors a manifest that commits to the bytes, with a receipt verified offline", () => {
    expect(up).toMatchObject({ ok: true, contentDigest: sha256(data), size: data.length, deduplicated: false });
    expect(up.stripes).toBe(Math.ceil(data.length / (K * S)));
    expect(up.shardRoot).toMatch(/^[0-9a-f]{64}$/);
    expect(up.receipt).toMatch(/^c2sp.org\/tlog-proof@v1\nindex \d+\n/);
    expect(up.receiptVerified?.index).toBe(up.ledgerIndex);
    expect(readFileSync(at("corpus.tlog-proof"), "utf8")).toBe(up.receipt);
    const envelope = JSON.parse(readFileSync(at("corpus.envelope.json"), "utf8")) as { signatures: { keyid: string }[] };
    expect(envelope.signatures.map((s) => s.keyid)).toEqual([owner.id]);
  });

  it("prints the human summary: dataset id, contentDigest, shardRoot, ledger index and the receipt", async () => {
    // The same bytes again: the service dedupes at create (declared digest) and nothing is streamed.
    const r = await deai("dataset", "upload", at("corpus.jsonl"), "--key", at("owner.key"), ...CODING);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/already dataset/);
    expect(r.stderr).not.toMatch(/^sent /m);
    expect(r.stdout).toContain(`dataset        ${up.datasetId}`);
    expect(r.stdout).toContain(`contentDigest  sha256:${up.contentDigest}`);
    expect(r.stdout).toContain(`shardRoot      ${up.shardRoot}`);
    expect(r.stdout).toMatch(new RegExp(`ledger index   ${up.ledgerIndex} \\(${ORIGIN}\\)`));
    expect(r.stdout).toContain(up.receipt.trimEnd());
  });

  it("downloads the bytes back identical, whole (checked against contentDigest), to stdout, and by range", async () => {
    const r = await deai("dataset", "download", up.datasetId, "-o", at("back.jsonl"));
    expect(r).toMatchObject({ code: 0 });
    expect(r.stdout).toMatch(/= contentDigest/);
    expect(readFileSync(at("back.jsonl")).equals(data)).toBe(true);
    const piped = await deaiPiped(undefined, "dataset", "download", up.datasetId, "-o", "-");
    expect(piped.code).toBe(0);
    expect(piped.stdout.equals(data)).toBe(true);
    // A range is widened to whole data shards, each checked against the signed shardRoot.
    const range = await deaiPiped(undefined, "dataset", "download", up.datasetId, "-o", "-", "--range", "16380-70000");
    expect(range.stdout.equals(data.subarray(16380, 70001))).toBe(true);
    expect(range.stderr).toMatch(/bytes 16380-70000 of 300001, every data shard they lie in checked against the signed shardRoot/);
    const tail = await deaiPiped(undefined, "dataset", "download", up.datasetId, "-o", "-", "--range", "300000-");
    expect(tail.stdout.equals(data.subarray(300000))).toBe(true);
  });

  it("shows the dataset by id and by contentDigest", async () => {
    const byId = JSON.parse((await deai("dataset", "show", up.datasetId, "--json", "--log-key", at("log.vkey"))).stdout) as Record<
      string,
      unknown
    >;
    expect(byId).toMatchObject({ datasetId: up.datasetId, contentDigest: up.contentDigest, shardRoot: up.shardRoot, owner: owner.id });
    expect(byId.manifest).toMatchObject({
      license: "CC-BY-4.0",
      usageTerms: "research only",
      mediaType: "application/jsonl",
      parents: [{ algorithm: "sha256", hex: "ab".repeat(32) }],
      provenance: { source: "synthetic" },
    });
    const byDigest = await deai("dataset", "show", up.contentDigest);
    expect(byDigest.code).toBe(0);
    expect(byDigest.stdout).toContain(`dataset        ${up.datasetId}`);
    expect(byDigest.stdout).toMatch(/placements\s+0 p\d /);
  });

  it("verifies the file against the manifest and receipt, fetched or from files, trusting no service", async () => {
    const fetched = await deai("dataset", "verify", at("corpus.jsonl"), "--dataset", up.datasetId, "--log-key", at("log.vkey"));
    expect(fetched).toMatchObject({ code: 0, stderr: "" });
    const lines = fetched.stdout.trim().split("\n");
    expect(lines.map((l) => l.split(/\s+/).slice(0, 2).join(" "))).toEqual([
      "OK envelope",
      "OK statement",
      "OK signature",
      "OK receipt",
      "OK size",
      "OK contentDigest",
      "OK shardRoot",
      "verified: " + at("corpus.jsonl"),
    ]);
    expect(fetched.stdout).toContain(up.shardRoot);
    // Offline: envelope and receipt files, and no service at all.
    base = "http://127.0.0.1:9";
    try {
      const offline = await deai(
        "dataset",
        "verify",
        at("corpus.jsonl"),
        "--envelope",
        at("corpus.envelope.json"),
        "--receipt",
        at("corpus.tlog-proof"),
        "--log-key",
        logKeys.verifierKey,
        "--json",
      );
      expect(offline.code).toBe(0);
      expect(JSON.parse(offline.stdout)).toMatchObject({ ok: true, contentDigest: up.contentDigest, shardRoot: up.shardRoot });
    } finally {
      base = `http://127.0.0.1:${ingestion.port}`;
    }
  });

  it("verify fails, naming the first failed check, for a modified file, a tampered envelope, a foreign log key or receipt", async () => {
    const modified = Buffer.from(data);
    modified[123_456]! ^= 1;
    writeFileSync(at("modified.jsonl"), modified);
    writeFileSync(at("longer.jsonl"), Buffer.concat([data, Buffer.from("\n")]));
    const envelope = JSON.parse(readFileSync(at("corpus.envelope.json"), "utf8")) as {
      payloadType: string;
      payload: string;
      signatures: { keyid: string; sig: string }[];
    };
    // The statement changed (another license), the owner's signature kept.
    const statement = Buffer.from(envelope.payload, "base64").toString().replace('"CC-BY-4.0"', '"CC0-1.0"');
    writeFileSync(at("tampered.envelope.json"), JSON.stringify({ ...envelope, payload: Buffer.from(statement).toString("base64") }));
    // The same statement re-signed by someone else.
    const stranger = actorKeyFromSeed(Buffer.alloc(32, 7).toString("base64url"));
    writeFileSync(at("stranger.envelope.json"), JSON.stringify(signStatement(Buffer.from(envelope.payload, "base64"), stranger)));
    // A changed statement properly signed by the owner: valid, but not what the log holds.
    writeFileSync(at("resigned.envelope.json"), JSON.stringify(signStatement(Buffer.from(statement), owner)));
    const files = (envelopeFile: string, receiptFile = at("corpus.tlog-proof")) => ["--envelope", envelopeFile, "--receipt", receiptFile];
    const cases: [string, string, string[], RegExp][] = [
      ["modified file", at("modified.jsonl"), files(at("corpus.envelope.json")), /^FAIL contentDigest: .*hashes to sha256:/],
      ["longer file", at("longer.jsonl"), files(at("corpus.envelope.json")), /^FAIL size: .* has 300002 bytes; the manifest says 300001/],
      ["tampered statement", at("corpus.jsonl"), files(at("tampered.envelope.json")), /^FAIL signature: signatures\[0\] does not verify/],
      ["signed by a stranger", at("corpus.jsonl"), files(at("stranger.envelope.json")), /^FAIL signature: .*not by the manifest's owner/],
      ["re-signed statement", at("corpus.jsonl"), files(at("resigned.envelope.json")), /^FAIL receipt: root-mismatch/],
    ];
    for (const [name, file, args, why] of cases) {
      const r = await deai("dataset", "verify", file, ...args, "--log-key", at("log.vkey"));
      expect({ name, code: r.code }).toEqual({ name, code: 1 });
      expect({ name, stderr: r.stderr.replace(/^deai: /, "") }).toEqual({ name, stderr: expect.stringMatching(why) });
      expect(r.stdout).toMatch(/^FAIL /m);
    }
    // A receipt checked against another log's key.
    const foreign = await deai("dataset", "verify", at("corpus.jsonl"), "--dataset", up.datasetId, "--log-key", at("other.vkey"), "--json");
    expect(foreign.code).toBe(1);
    const body = JSON.parse(foreign.stdout) as { ok: boolean; error: string; checks: { check: string; ok: boolean }[] };
    expect(body.ok).toBe(false);
    expect(body.error).toMatch(/^FAIL receipt: no-verified-signature/);
    expect(body.checks.filter((c) => !c.ok).map((c) => c.check)).toEqual(["receipt"]);
  }, 60_000);
});

describe("resume and retry", () => {
  it("resumes an upload whose process was killed mid-way, from the durable offset", async () => {
    const data = bytesOf(1_500_000, 2);
    writeFileSync(at("big.bin"), data);
    const cli = background("dataset", "upload", at("big.bin"), "--key", at("owner.key"), ...CODING, "--segment-mib", "0.0625");
    await cli.seen(/(^sent [^\n]*\n[^]*){4}/m);
    cli.kill();
    expect(await cli.exited).toBeNull();
    const stderr = cli.out.stderr;
    const uploadId = /--resume ([0-9a-f-]{36})/.exec(stderr)![1]!;
    const state = (await (await fetch(`${base}/v1/uploads/${uploadId}`)).json()) as { upload: { state: string; durableOffset?: string } };
    expect(state.upload.state).toBe("UPLOAD_STATE_OPEN");
    const durable = Number(state.upload.durableOffset ?? 0);
    // Each 64 KiB segment is one part group (4 stripes × 4 × 4096), durable when its PUT returns.
    expect(durable).toBeGreaterThanOrEqual(4 * 65536);
    expect(durable).toBeLessThan(data.length);

    const r = await deai("dataset", "upload", at("big.bin"), "--key", at("owner.key"), ...CODING, "--resume", uploadId, "--json");
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`resuming upload ${uploadId} (open, durable offset ${durable})`);
    expect(r.stderr).toMatch(new RegExp(`^sent ${durable}-`, "m"));
    const done = JSON.parse(r.stdout) as UploadOut;
    expect(done).toMatchObject({ datasetId: uploadId, contentDigest: sha256(data), size: data.length });
    const back = await deaiPiped(undefined, "dataset", "download", done.datasetId, "-o", "-");
    expect(back.stdout.equals(data)).toBe(true);
  }, 60_000);

  it("refuses to sign a manifest over bytes it did not send, and to resume another file's upload", async () => {
    const a = bytesOf(70_000, 3);
    const b = bytesOf(70_000, 4);
    writeFileSync(at("b.bin"), b);
    // An upload started elsewhere (no size or digest declared), with a's bytes.
    const post = async (path: string, body: unknown) => {
      const bytes = Buffer.from(JSON.stringify(body));
      const res = await fetch(base + path, {
        method: "POST",
        body: bytes,
        headers: { "content-type": "application/json", ...signRequest({ key: owner, method: "POST", url: base + path, body: bytes }) },
      });
      return (await res.json()) as { upload: { uploadId: string } };
    };
    const { upload } = await post("/v1/uploads", { spec: { name: "a", k: K, m: M, shardSize: S } });
    const path = `/v1/uploads/${upload.uploadId}/data/0`;
    const put = await fetch(base + path, {
      method: "PUT",
      body: a,
      headers: { ...signRequest({ key: owner, method: "PUT", url: base + path, body: a }) },
    });
    expect(put.status).toBe(200);
    // Resuming it with b: the first 65536 bytes (one durable group) are a's, so the manifest is not b.
    const r = await deai("dataset", "upload", at("b.bin"), "--key", at("owner.key"), "--resume", upload.uploadId);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(
        `refusing to sign the manifest of upload ${upload.uploadId}: the statement commits to contentDigest sha256:[0-9a-f]{64}, but the bytes sent hash to sha256:${sha256(b)}`,
      ),
    );
    const after = (await (await fetch(`${base}/v1/uploads/${upload.uploadId}`)).json()) as { upload: { state: string } };
    expect(after.upload.state).toBe("UPLOAD_STATE_AWAITING_SIGNATURE");
    // A declared upload refuses a different file outright.
    writeFileSync(at("a.bin"), a);
    const declared = JSON.parse(
      (await deai("dataset", "upload", at("a.bin"), "--key", at("owner.key"), ...CODING, "--segment-mib", "0.01", "--json")).stdout,
    ) as UploadOut;
    expect(declared.contentDigest).toBe(sha256(a));
    const wrong = await deai("dataset", "upload", at("b.bin"), "--key", at("owner.key"), "--resume", declared.uploadId);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/declared sha256:[0-9a-f]{64}; .*b\.bin hashes to sha256:/);
  }, 60_000);

  it("rides out a storage provider outage: 503s are retried from the durable offset", async () => {
    const data = bytesOf(1_500_000, 5);
    writeFileSync(at("outage.bin"), data);
    const cli = background("dataset", "upload", at("outage.bin"), "--key", at("owner.key"), ...CODING, "--segment-mib", "0.0625", "--json");
    await cli.seen(/^sent /m);
    await providers[2]!.stop();
    try {
      await cli.seen(/resuming from the durable offset in/);
    } finally {
      await providers[2]!.start();
    }
    expect(await cli.exited).toBe(0);
    const { stdout, stderr } = cli.out;
    expect(stderr).toMatch(/storage provider p2/);
    const done = JSON.parse(stdout) as UploadOut;
    expect(done.contentDigest).toBe(sha256(data));
    const v = await deai("dataset", "verify", at("outage.bin"), "--dataset", done.datasetId, "--log-key", at("log.vkey"));
    expect(v.code).toBe(0);
  }, 90_000);

  it("rides out the service dying mid-upload: connection errors are retried, and it resumes where the restarted service says", async () => {
    const data = bytesOf(1_500_000, 7);
    writeFileSync(at("crash.bin"), data);
    const cli = background(
      "dataset",
      "upload",
      at("crash.bin"),
      "--key",
      at("owner.key"),
      ...CODING,
      "--segment-mib",
      "0.0625",
      "--retries",
      "12",
      "--json",
    );
    await cli.seen(/(^sent [^\n]*\n[^]*){2}/m);
    ingestion.kill("SIGKILL");
    await ingestion.exited;
    await cli.seen(/cannot reach the ingestion service/);
    // The same service again, on the same port: the upload's durable state is in Postgres and S3.
    ingestion = await spawnService(ingestionJs, { ...ingestionVars, PORT: String(ingestion.port) });
    expect(await cli.exited).toBe(0);
    const done = JSON.parse(cli.out.stdout) as UploadOut;
    expect(done).toMatchObject({ contentDigest: sha256(data), size: data.length });
    const back = await deaiPiped(undefined, "dataset", "download", done.datasetId, "-o", "-");
    expect(back.stdout.equals(data)).toBe(true);
  }, 120_000);

  it("uploads from stdin (hashing as it streams) and dedupes the same bytes at finish", async () => {
    const data = bytesOf(150_000, 6);
    const first = await deaiPiped(data, "dataset", "upload", "-", "--key", at("owner.key"), ...CODING, "--segment-mib", "0.03", "--json");
    expect(first.code).toBe(0);
    const up = JSON.parse(first.stdout.toString()) as UploadOut;
    expect(up).toMatchObject({ contentDigest: sha256(data), size: data.length, deduplicated: false });
    const again = await deaiPiped(data, "dataset", "upload", "-", "--key", at("owner.key"), ...CODING, "--json");
    expect(JSON.parse(again.stdout.toString())).toMatchObject({ datasetId: up.datasetId, deduplicated: true });
  }, 60_000);

  it("reports usage errors with exit 2", async () => {
    expect((await deai("dataset", "upload", at("big.bin"))).stderr).toMatch(/--key is required/);
    expect((await deai("dataset", "download", "x", "-o", "-", "--json")).code).toBe(2);
    expect((await deai("dataset", "verify", at("big.bin"), "--log-key", at("log.vkey"))).code).toBe(2);
    expect((await deai("dataset", "upload", at("big.bin"), "--key", at("owner.key"), "--m", "9")).code).toBe(2);
    expect((await deai("dataset", "frobnicate")).code).toBe(2);
    const missing = await deai("dataset", "show", "00000000-0000-0000-0000-000000000000");
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/not_found \(HTTP 404\)/);
  });
});
