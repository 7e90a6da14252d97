// tlog-tiles for the web: gzip entry bundles on request, ETags with 304s, CORS on the read
// paths and none on writes; checked with fetch, raw node:http and curl.
import { execFile } from "node:child_process";
import { request } from "node:http";
import { promisify } from "node:util";
import { gunzipSync } from "node:zlib";

import { generateActorKey, startService, type RunningService } from "@deai/kit";
import { createTestEnv, openApiProblems, signedFetch, type TestEnv } from "@deai/testkit";
import { decodeEntryBundle, generateNoteKey } from "@deai/proofs";

import { loadLedgerConfig } from "../src/config.js";
import { ledgerDefinition } from "../src/definition.js";
import type { LedgerDb } from "../src/store/tables.js";
import { envelope, sha256Hex, statement } from "./fixtures.js";

const run = promisify(execFile);
const ORIGIN = "ledger.tiles-web/log";
const author = generateActorKey();
let env: TestEnv;
let svc: RunningService<LedgerDb>;
let base: string;

/** One raw GET/OPTIONS (no automatic decompression, unlike fetch). */
function raw(
  path: string,
  headers: Record<string, string> = {},
  method = "GET",
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end();
  });
}

beforeAll(async () => {
  env = await createTestEnv("ledger-tiles-web");
  const keys = generateNoteKey(ORIGIN);
  const cfg = loadLedgerConfig(
    env.vars({ LEDGER_ORIGIN: ORIGIN, LEDGER_SIGNING_KEY: keys.signerKey, LEDGER_CHECKPOINT_INTERVAL_MS: "100" }),
  );
  svc = await startService(ledgerDefinition(cfg), cfg);
  base = `http://127.0.0.1:${svc.port}`;
  for (let i = 0; i < 3; i++) {
    const e = envelope(statement([sha256Hex(`tiles-web-${i}`)], "https://deai.dev/lease/v1", { lease: `l-${i}`, pad: "x".repeat(400) }), [
      author,
    ]);
    const r = await signedFetch(`${base}/v1/ledger/entries`, author, { body: JSON.stringify({ envelope: e, waitForIntegration: true }) });
    expect(r.status).toBe(200);
  }
});
afterAll(async () => {
  await svc?.stop();
  await env?.close();
});

describe("entry bundles", () => {
  it("are gzipped for a client that accepts gzip (Content-Encoding, Vary) and identical once decoded", async () => {
    const plain = await raw("/tile/entries/000.p/3");
    expect(plain.status).toBe(200);
    expect(plain.headers["content-encoding"]).toBeUndefined();
    expect(plain.headers.vary).toBe("Accept-Encoding");
    expect(decodeEntryBundle(plain.body)).toHaveLength(3);
    const gz = await raw("/tile/entries/000.p/3", { "accept-encoding": "br, gzip;q=0.8" });
    expect(gz.status).toBe(200);
    expect(gz.headers["content-encoding"]).toBe("gzip");
    expect(gz.headers.vary).toBe("Accept-Encoding");
    expect(Number(gz.headers["content-length"])).toBe(gz.body.length);
    expect(gz.body.length).toBeLessThan(plain.body.length);
    expect(gunzipSync(gz.body)).toEqual(plain.body);
    // Each coding is its own representation, with its own strong ETag.
    expect(gz.headers.etag).not.toBe(plain.headers.etag);
    expect(plain.headers.etag).toMatch(/^"[A-Za-z0-9_-]+"$/);
    const refused = await raw("/tile/entries/000.p/3", { "accept-encoding": "gzip;q=0" });
    expect(refused.headers["content-encoding"]).toBeUndefined();
  });

  it("decode through curl --compressed and fetch alike", async () => {
    const { stdout } = await run("curl", ["-sS", "-f", "--compressed", "-D", "-", "-o", "/dev/null", `${base}/tile/entries/000.p/3`]);
    expect(stdout.toLowerCase()).toMatch(/content-encoding: gzip/);
    const viaCurl = await run("curl", ["-sS", "-f", "--compressed", `${base}/tile/entries/000.p/3`], { encoding: "buffer" });
    const viaFetch = Buffer.from(await (await fetch(`${base}/tile/entries/000.p/3`)).arrayBuffer());
    expect(Buffer.compare(viaCurl.stdout, viaFetch)).toBe(0);
    expect(decodeEntryBundle(viaFetch)).toHaveLength(3);
  });
});

describe("ETags", () => {
  it("answer If-None-Match with 304 and no body, on tiles, bundles and the checkpoint", async () => {
    for (const path of ["/tile/0/000.p/3", "/tile/entries/000.p/3", "/checkpoint"]) {
      const first = await raw(path);
      expect(first.status).toBe(200);
      const etag = String(first.headers.etag);
      const again = await raw(path, { "if-none-match": `"other", ${etag}` });
      expect(again.status).toBe(304);
      expect(again.body.length).toBe(0);
      expect(again.headers.etag).toBe(etag);
      expect(again.headers["access-control-allow-origin"]).toBe("*");
      expect((await raw(path, { "if-none-match": '"not-it"' })).status).toBe(200);
    }
    // The 304 through curl, as a cache would revalidate.
    const first = await raw("/tile/0/000.p/3");
    const { stdout } = await run("curl", [
      "-sS",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}",
      "-H",
      `If-None-Match: ${String(first.headers.etag)}`,
      `${base}/tile/0/000.p/3`,
    ]);
    expect(stdout).toBe("304");
  });

  it("differ when the content differs (a checkpoint after a new entry)", async () => {
    const before = await raw("/checkpoint");
    const e = envelope(statement([sha256Hex("tiles-web-later")], "https://deai.dev/lease/v1"), [author]);
    const r = await signedFetch(`${base}/v1/ledger/entries`, author, { body: JSON.stringify({ envelope: e, waitForIntegration: true }) });
    expect(r.status).toBe(200);
    const after = await raw("/checkpoint", { "if-none-match": String(before.headers.etag) });
    expect(after.status).toBe(200);
    expect(after.headers.etag).not.toBe(before.headers.etag);
  });
});

describe("CORS", () => {
  it("lets any origin read the tiles, the checkpoint and the REST reads, with a preflight for If-None-Match", async () => {
    for (const path of ["/checkpoint", "/tile/0/000.p/3", "/tile/entries/000.p/3", "/v1/ledger/entries/0", "/v1/ledger/checkpoint"]) {
      const res = await fetch(`${base}${path}`, { headers: { origin: "https://monitor.example" } });
      expect([path, res.headers.get("access-control-allow-origin")]).toEqual([path, "*"]);
      const pre = await raw(
        path,
        { origin: "https://monitor.example", "access-control-request-method": "GET", "access-control-request-headers": "if-none-match" },
        "OPTIONS",
      );
      expect(pre.status).toBe(204);
      expect(pre.headers["access-control-allow-methods"]).toBe("GET, HEAD");
      expect(String(pre.headers["access-control-allow-headers"]).toLowerCase()).toContain("if-none-match");
    }
    expect((await fetch(`${base}/tile/entries/000.p/3`)).headers.get("access-control-expose-headers")).toContain("ETag");
  });

  it("gives writes none: the preflight approves no POST and a signed append carries no CORS header", async () => {
    const pre = await raw("/v1/ledger/entries", { origin: "https://evil.example", "access-control-request-method": "POST" }, "OPTIONS");
    expect(pre.headers["access-control-allow-methods"]).not.toMatch(/POST/);
    const e = envelope(statement([sha256Hex("tiles-web-cors")], "https://deai.dev/lease/v1"), [author]);
    const r = await signedFetch(`${base}/v1/ledger/entries`, author, {
      body: JSON.stringify({ envelope: e }),
      headers: { origin: "https://evil.example" },
    });
    expect(r.status).toBe(200);
    expect(r.headers.get("access-control-allow-origin")).toBeNull();
  });
});

describe("OpenAPI", () => {
  it("documents every HTTP route the ledger served in this file, and passes both validators", async () => {
    expect((await fetch(`${base}/log-checkpoint`)).status).toBe(200);
    expect([...svc.server.undocumented]).toEqual([]);
    const doc = (await (await fetch(`${base}/openapi.json`)).json()) as { paths: Record<string, unknown> };
    for (const p of ["/checkpoint", "/log-checkpoint", "/tile/{level}/{index}", "/tile/entries/{index}", "/healthz", "/readyz"])
      expect(doc.paths[p]).toBeDefined();
    expect(await openApiProblems(doc)).toEqual([]);
  });
});
