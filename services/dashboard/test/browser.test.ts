// The dashboard in a real browser (Debian's chromium, driven by playwright-core): a real ledger
// with statements anchored, the dashboard in front of it, the lineage graph drawn from the
// log's tiles and a receipt verified in the page; then a tampering proxy between the browser
// and the ledger changes a served entry, and the page must say FAILED.
// DASHBOARD_SCREENSHOTS=1 also writes docs/dashboard-*.png (the committed screenshots).
import { createHash, sign } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";

import { generateActorKey, type ActorKey } from "@deai/kit";
import { createTestEnv, signedFetch, spawnService, stopService, type ServiceProcess, type TestEnv } from "@deai/testkit";
import { generateNoteKey, IN_TOTO_PAYLOAD_TYPE, pae, PredicateTypes, STATEMENT_V1_TYPE } from "@deai/proofs";
import { chromium, type Browser, type Page } from "playwright-core";

const root = new URL("../../../", import.meta.url).pathname;
const ledgerJs = `${root}services/ledger/dist/main.js`;
const dashboardJs = `${root}services/dashboard/dist/main.js`;
const slashingJs = `${root}services/slashing/dist/main.js`;
const CHROMIUM = "/usr/bin/chromium";
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
];
const ORIGIN = "ledger.test/dashboard";
const logKey = generateNoteKey(ORIGIN);
const owner = generateActorKey();
const sampler = generateActorKey();
const slasher = generateActorKey();

const sha = (text: string): string => createHash("sha256").update(text).digest("hex");

function envelope(stmt: unknown, key: ActorKey): { payloadType: string; payload: string; signatures: { keyid: string; sig: string }[] } {
  const payload = Buffer.from(JSON.stringify(stmt));
  return {
    payloadType: IN_TOTO_PAYLOAD_TYPE,
    payload: payload.toString("base64"),
    signatures: [{ keyid: key.id, sig: sign(null, pae(IN_TOTO_PAYLOAD_TYPE, payload), key.privateKey).toString("base64") }],
  };
}

const statement = (subject: { name: string; hex: string }[], predicateType: string, predicate: Record<string, unknown>): unknown => ({
  _type: STATEMENT_V1_TYPE,
  subject: subject.map((s) => ({ name: s.name, digest: { sha256: s.hex } })),
  predicateType,
  predicate,
});

/** Between the browser and the ledger: relays everything, and rewrites what `tamper` says. */
interface TamperProxy {
  readonly url: string;
  tamperEntry: boolean;
  tamperTiles: boolean;
  close(): Promise<void>;
}

/** Flips one character inside the statement of a leaf (JCS JSON of the envelope): same shape, other bytes. */
function tamperLeaf(leaf: Buffer): Buffer {
  const env = JSON.parse(leaf.toString()) as { payload: string };
  const payload = Buffer.from(env.payload, "base64").toString().replace("corpus-en", "corpus-EN");
  return Buffer.from(leaf.toString().replace(env.payload, Buffer.from(payload).toString("base64")));
}

async function startTamperProxy(target: string): Promise<TamperProxy> {
  const upstream = new URL(target);
  const state = { tamperEntry: false, tamperTiles: false };
  const server: Server = createServer((req, res) => {
    const path = req.url ?? "/";
    const rewriteEntry = state.tamperEntry && /^\/v1\/ledger\/entries\/0(\?|$)/.test(path);
    const rewriteTiles = state.tamperTiles && path.startsWith("/tile/entries/");
    const headers = { ...req.headers, host: upstream.host };
    if (rewriteEntry || rewriteTiles) delete headers["accept-encoding"];
    const up = request({ host: upstream.hostname, port: upstream.port, path, method: req.method, headers }, (ur) => {
      if (!rewriteEntry && !rewriteTiles) {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
        return;
      }
      const chunks: Buffer[] = [];
      ur.on("data", (c: Buffer) => chunks.push(c));
      ur.on("end", () => {
        let body = Buffer.concat(chunks);
        if (rewriteEntry && ur.statusCode === 200) {
          const json = JSON.parse(body.toString()) as { entry: { leaf: string } };
          json.entry.leaf = tamperLeaf(Buffer.from(json.entry.leaf, "base64")).toString("base64");
          body = Buffer.from(JSON.stringify(json));
        }
        if (rewriteTiles && ur.statusCode === 200) {
          // Entry 0 is the first in bundle 0: rewrite it in place, length prefix included.
          const length = body.readUInt16BE(0);
          const changed = tamperLeaf(body.subarray(2, 2 + length));
          const prefix = Buffer.alloc(2);
          prefix.writeUInt16BE(changed.length);
          body = Buffer.concat([prefix, changed, body.subarray(2 + length)]);
        }
        const { "content-length": _l, etag: _e, "content-encoding": _c, ...rest } = ur.headers;
        res.writeHead(ur.statusCode ?? 502, { ...rest, "content-length": String(body.length) });
        res.end(body);
      });
    });
    up.on("error", () => (res.writeHead(502), res.end()));
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  });
}

let env: TestEnv;
let ledger: ServiceProcess | undefined;
let dashboard: ServiceProcess | undefined;
let slashing: ServiceProcess | undefined;
let proxy: TamperProxy | undefined;
let browser: Browser | undefined;

afterAll(async () => {
  await browser?.close();
  if (dashboard) await stopService(dashboard);
  await proxy?.close();
  if (slashing) await stopService(slashing);
  if (ledger) await stopService(ledger);
  await env?.close();
});

const screenshots = process.env.DASHBOARD_SCREENSHOTS === "1";
async function shot(page: Page, name: string): Promise<void> {
  if (!screenshots) return;
  await mkdir(`${root}docs`, { recursive: true });
  await page.screenshot({ path: `${root}docs/dashboard-${name}.png`, fullPage: false });
}

it("draws the log's lineage, verifies a receipt in the browser and flags a tampered entry", async () => {
  expect(existsSync(CHROMIUM)).toBe(true);
  env = await createTestEnv("dashboard");
  ledger = await spawnService(
    ledgerJs,
    env.vars({ LEDGER_ORIGIN: ORIGIN, LEDGER_SIGNING_KEY: logKey.signerKey, LEDGER_CHECKPOINT_INTERVAL_MS: "50" }),
  );
  const ledgerUrl = `http://127.0.0.1:${ledger.port}`;
  // A dataset, a repair's new placement, a sampler's attestation and a slash record naming its provider.
  const content = sha("corpus-en content");
  const shardRoot = sha("corpus-en shards");
  const evidenceId = sha("evidence-1");
  const statements = [
    [
      statement(
        [
          { name: "corpus-en", hex: content },
          { name: "corpus-en/shards", hex: shardRoot },
        ],
        PredicateTypes.datasetManifest,
        { name: "corpus-en", k: 4, m: 2, parents: [] },
      ),
      owner,
    ],
    [
      statement(
        [
          { name: "corpus-en/shards", hex: shardRoot },
          { name: "corpus-en", hex: content },
        ],
        PredicateTypes.placement,
        { version: 2, cause: "repair", moved: [{ slot: 3, from: "sp-lazy", to: "sp-spare", reason: "unavailable" }] },
      ),
      sampler,
    ],
    [
      statement(
        [
          { name: "corpus-en/shards", hex: shardRoot },
          { name: "corpus-en", hex: content },
        ],
        PredicateTypes.samplingAttestation,
        { kind: "recheck", provider: "sp-lazy", verdict: "unavailable" },
      ),
      sampler,
    ],
    [
      statement([{ name: "evidence-1", hex: evidenceId }], PredicateTypes.slashRecord, {
        event: "applied",
        provider: "sp-lazy",
        evidenceId,
      }),
      slasher,
    ],
  ] as const;
  for (const [i, [stmt, key]] of statements.entries()) {
    const res = await signedFetch(`${ledgerUrl}/v1/ledger/entries`, key, {
      body: JSON.stringify({ envelope: envelope(stmt, key), waitForIntegration: i === statements.length - 1 }),
    });
    expect(res.status).toBe(200);
    expect(Number(((await res.json()) as { index: string }).index)).toBe(i);
  }

  slashing = await spawnService(slashingJs, env.vars({ SLASHING_TICK_MS: "1000" }));

  proxy = await startTamperProxy(ledgerUrl);
  dashboard = await spawnService(dashboardJs, {
    HOST: "127.0.0.1",
    PORT: "0",
    SHUTDOWN_DRAIN_MS: "0",
    DASHBOARD_LOG_KEY: logKey.verifierKey,
    DASHBOARD_LEDGER_URL: proxy.url,
    DASHBOARD_SLASHING_URL: `http://127.0.0.1:${slashing.port}`,
  });
  const dashUrl = `http://127.0.0.1:${dashboard.port}`;
  expect((await fetch(`${dashUrl}/readyz`)).status).toBe(200);

  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${dashUrl}/#/lineage`);

  // The log as served hashes to the signed root; the graph has the dataset and what followed.
  await page.locator('[data-testid="log-contents"] [data-verdict="verified"]').waitFor();
  for (const id of ["entry:0", "entry:1", "entry:2", "entry:3", `artifact:sha256:${content}`, "provider:sp-lazy", "provider:sp-spare"]) {
    expect(await page.locator(`[data-node="${id}"]`).count()).toBe(1);
  }
  expect(await page.locator(`[data-node="artifact:sha256:${content}"]`).getAttribute("aria-label")).toContain("corpus-en");
  // Keyboard: focus the dataset manifest and press Enter.
  await page.locator('[data-node="entry:0"]').focus();
  await page.keyboard.press("Enter");
  const overall = page.locator('[data-detail="entry:0"] .overall [data-verdict]');
  await overall.waitFor();
  expect(await page.locator('[data-detail="entry:0"] .checks').textContent()).not.toContain("FAILED");
  expect(await overall.getAttribute("data-verdict")).toBe("verified");
  expect(await page.locator('[data-detail="entry:0"] pre').first().textContent()).toContain("corpus-en");
  expect(await page.locator('[data-detail="entry:0"] pre').nth(1).textContent()).toContain("c2sp.org/tlog-proof@v1");
  await shot(page, "lineage");

  // A tampered entry from the REST API: its receipt no longer verifies.
  proxy.tamperEntry = true;
  await page.reload();
  await page.locator('[data-testid="log-contents"] [data-verdict="verified"]').waitFor();
  await page.locator('[data-node="entry:0"]').click();
  await overall.waitFor();
  expect(await overall.getAttribute("data-verdict")).toBe("failed");
  expect(await page.locator('[data-detail="entry:0"] [data-testid="overall-detail"]').textContent()).toMatch(/receipt/);
  // An untouched entry still verifies through the same proxy.
  await page.locator('[data-node="entry:1"]').click();
  await page.locator('[data-detail="entry:1"] .overall [data-verdict="verified"]').waitFor();
  await page.locator('[data-node="entry:0"]').click();
  await overall.waitFor();
  await shot(page, "tampered");

  // Tampered tiles, seen by a new visitor (the first one's cache holds the honest bundle for
  // its max-age): the log's contents no longer hash to the signed checkpoint.
  proxy.tamperEntry = false;
  proxy.tamperTiles = true;
  const fresh = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  fresh.on("pageerror", (e) => errors.push(e.message));
  await fresh.goto(`${dashUrl}/#/lineage`);
  const contents = fresh.locator('[data-testid="log-contents"] [data-verdict]');
  await contents.waitFor();
  expect(await contents.getAttribute("data-verdict")).toBe("failed");
  expect(await fresh.locator('[data-testid="log-contents"]').textContent()).toContain("do not hash to the checkpoint's root");
  await fresh.close();

  // The other pages through the passthrough: slashing is a real service (empty), the rest are
  // not configured and say so; none throws.
  await page.goto(`${dashUrl}/#/slashes`);
  await page.getByText("No slashes yet.").waitFor();
  for (const [route, what] of [
    ["datasets", "datasets"],
    ["providers", "providers"],
    ["market", "marketplace"],
  ]) {
    await page.goto(`${dashUrl}/#/${route}`);
    const alert = page.getByRole("alert");
    await alert.waitFor();
    expect(await alert.textContent()).toBe(`${what}: not configured`);
  }

  // The training page says plainly that there is no data.
  await page.goto(`${dashUrl}/#/training`);
  expect(await page.locator("main").textContent()).toContain("No data yet");
  await shot(page, "training");
  expect(errors).toEqual([]);
}, 120_000);
