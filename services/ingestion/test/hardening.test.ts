// Issue 9 for ingestion: bounds at create, the terminal failed state and the sweep over every
// live state, strict page tokens, the session memory budget. Real Postgres, NATS, ledger, S3.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import { IngestionService } from "@deai/contracts/deai/ingestion/v1/ingestion_pb";
import { generateActorKey, startService, type RunningService } from "@deai/kit";

import { loadIngestionConfig } from "../src/config.js";
import { ingestionDefinition } from "../src/definition.js";
import type { IngestionDb } from "../src/store/tables.js";
import { bytesOf, call, objectNames, putData, signManifest, startHarness, uploadAll, type Harness } from "./harness.js";

const K = 4;
const M = 2;
const owner = generateActorKey();
let h: Harness;
/** Defaults, except a small memory budget. */
let svc: RunningService<IngestionDb>;
/** Believes the ledger takes 200 kB entries (it takes 65,535 bytes): the ledger refuses for good. Sweeps every 200 ms. */
let loose: RunningService<IngestionDb>;
let base: string;
let looseBase: string;

async function eventually<T>(f: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function objectsOf(uploadId: string): Promise<string[]> {
  return (await Promise.all(h.providers.map((p) => objectNames(p, `datasets/${uploadId}/`)))).flat();
}

beforeAll(async () => {
  h = await startHarness("ingestion-hardening", K + M + 1);
  const vars = {
    INGESTION_PROVIDERS: h.providersJson(),
    INGESTION_LEDGER_URL: h.ledgerUrl,
    INGESTION_PART_BYTES: "16384",
    INGESTION_HEDGE_MS: "200",
  };
  const config = loadIngestionConfig(h.env.vars({ ...vars, INGESTION_SESSION_MEMORY_BYTES: String(1024 * 1024) }));
  svc = await startService(ingestionDefinition(config), config);
  base = `http://127.0.0.1:${svc.port}`;
  const looseConfig = loadIngestionConfig(
    h.env.vars({
      ...vars,
      INGESTION_LEDGER_MAX_ENTRY_BYTES: "200000",
      INGESTION_SWEEP_INTERVAL_MS: "200",
      INGESTION_ANCHOR_RETRY_AFTER_MS: "0",
    }),
  );
  loose = await startService(ingestionDefinition(looseConfig), looseConfig);
  looseBase = `http://127.0.0.1:${loose.port}`;
}, 60_000);

afterAll(async () => {
  await loose?.stop();
  await svc?.stop();
  await h?.close();
});

function create(spec: Record<string, unknown>, at = base) {
  return call(at, owner, "POST", "/v1/uploads", { spec: { name: "h", k: K, m: M, shardSize: 4096, ...spec } });
}

describe("bounds at create", () => {
  it("refuses a spec whose manifest statement cannot fit a ledger entry, naming what is too big", async () => {
    const terms = await create({ usageTerms: "x".repeat(70_000) });
    expect(terms.status).toBe(400);
    expect(terms.json.message).toMatch(
      /manifest statement of this spec can reach \d+ bytes; a ledger entry holds statements up to \d+ bytes/,
    );
    const provenance = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`field${i}`, "v"]));
    expect((await create({ provenance })).json.message).toMatch(/spec.provenance has 1000 fields; the limit is 128/);
    // Many fields under the count limit, together too big.
    const wide = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`f${i}`, "y".repeat(600)]));
    expect((await create({ provenance: wide })).json.message).toMatch(/manifest statement of this spec can reach/);
    const parents = Array.from({ length: 65 }, () => ({ algorithm: "sha256", hex: "a".repeat(64) }));
    expect((await create({ parents })).json.message).toMatch(/spec.parents has 65 entries; the limit is 64/);
    // Just under the bound is accepted.
    expect((await create({ usageTerms: "x".repeat(40_000) })).status).toBe(200);
  });

  it("bounds S, and the declared size by the leaf table", async () => {
    expect((await create({ shardSize: 8 })).json.message).toMatch(
      /shard size must be a multiple of 8 bytes from 4096 B \(4 KiB\) to 4194304 B/,
    );
    expect((await create({ shardSize: 8 * 1024 * 1024 })).json.message).toMatch(/shard size must be a multiple of 8 bytes/);
    // 64 MiB of leaves at k=4, m=2, S=4 KiB: 349,525 stripes × 16 KiB = 5.3 GiB.
    const big = await create({ size: String(6 * 2 ** 30) });
    expect(big.status).toBe(400);
    expect(big.json.message).toMatch(/leaf table would exceed 67108864 bytes .*use a larger shard size/);
    expect((await create({ size: String(5 * 2 ** 30) })).status).toBe(200);
  });

  it("refuses NUL and lone surrogates in the spec's text with INVALID_ARGUMENT naming the field", async () => {
    expect((await create({ name: "a\u0000b" })).json).toMatchObject({
      code: "invalid_argument",
      message: "spec.name contains a NUL character (U+0000)",
    });
    expect((await create({ license: "\u0000" })).json.message).toBe("spec.license contains a NUL character (U+0000)");
    expect((await create({ provenance: { "k\u0000": "v" } })).json.message).toMatch(/spec.provenance key .* contains a NUL character/);
    // A lone surrogate is refused already by the JSON decoding (invalid UTF-8 on the wire).
    expect((await create({ usageTerms: "\ud800x" })).json).toMatchObject({ code: "invalid_argument" });
  });
});

describe("reads refuse malformed input with INVALID_ARGUMENT", () => {
  it("owner and page tokens", async () => {
    const owner0 = await call(base, owner, "GET", "/v1/datasets?owner=%00");
    expect(owner0.status).toBe(400);
    expect(owner0.json.message).toMatch(/owner contains a NUL character/);
    const garbage = await call(base, owner, "GET", "/v1/datasets?pageToken=" + Buffer.from("\u0000\u00ff|zz").toString("base64url"));
    expect(garbage.json).toMatchObject({
      code: "invalid_argument",
      message: expect.stringMatching(/page_token is not one this service issued/),
    });
    const huge = Buffer.from(`9999999999999999|${"0".repeat(8)}-0000-0000-0000-${"0".repeat(12)}`).toString("base64url");
    expect((await call(base, owner, "GET", `/v1/datasets?pageToken=${huge}`)).json.message).toMatch(/time is out of range/);
    expect((await call(base, owner, "GET", "/v1/datasets?pageToken=%2F%2F")).json.message).toMatch(/not base64url/);
  });

  it("an empty DownloadDataset request", async () => {
    const client = createClient(IngestionService, createGrpcTransport({ baseUrl: base }));
    await expect(async () => {
      for await (const _ of client.downloadDataset({})) void _;
    }).rejects.toMatchObject({ code: 3, rawMessage: "dataset_id is required" });
    await expect(async () => {
      for await (const _ of client.downloadDataset({ datasetId: "nope" })) void _;
    }).rejects.toMatchObject({ code: 3 });
  });
});

describe("failed state and the sweep", () => {
  it("a manifest the ledger refuses for good fails the upload and deletes its objects; abort says why", async () => {
    const data = bytesOf(30_000, 11);
    const c = await create({ size: String(data.length), usageTerms: "t".repeat(70_000) }, looseBase);
    expect(c.status).toBe(200);
    const id = c.json.upload.uploadId;
    expect((await putData(looseBase, owner, id, 0, data)).status).toBe(200);
    const fin = await call(looseBase, owner, "POST", `/v1/uploads/${id}/complete`, {});
    expect(fin.json.upload.state).toBe("UPLOAD_STATE_AWAITING_SIGNATURE");
    expect((await objectsOf(id)).length).toBe(K + M);
    const done = await call(looseBase, owner, "POST", `/v1/uploads/${id}/complete`, {
      manifestEnvelope: signManifest(fin.json.upload.manifestStatement, owner),
    });
    expect(done.json).toMatchObject({
      code: "failed_precondition",
      message: expect.stringMatching(/failed: the ledger refused the manifest for good: .*limit is 65535.*its objects were deleted/),
    });
    const got = await call(looseBase, owner, "GET", `/v1/uploads/${id}`);
    expect(got.json.upload.state).toBe("UPLOAD_STATE_FAILED");
    expect(got.json.upload.error).toMatch(/the ledger refused the manifest for good/);
    expect(await objectsOf(id)).toEqual([]);
    const abort = await call(looseBase, owner, "POST", `/v1/uploads/${id}/abort`, {});
    expect(abort.json.message).toMatch(/already failed \(the ledger refused .*\); its objects were deleted: nothing to abort/);
  }, 30_000);

  it("the sweep finishes an upload left anchoring by a crash, and fails one the ledger refuses", async () => {
    const db = loose.deps.db;
    // Two uploads signed and claimed, then the instance "died" before the ledger call.
    const stranded: string[] = [];
    for (const terms of ["ok", "t".repeat(70_000)]) {
      const data = bytesOf(20_000, terms.length);
      const c = await create({ size: String(data.length), usageTerms: terms }, looseBase);
      const id = c.json.upload.uploadId;
      expect((await putData(looseBase, owner, id, 0, data)).status).toBe(200);
      const fin = await call(looseBase, owner, "POST", `/v1/uploads/${id}/complete`, {});
      const env = signManifest(fin.json.upload.manifestStatement, owner);
      await db
        .updateTable("uploads")
        .set({ state: "anchoring", anchor_envelope: JSON.stringify(env), updated_at: new Date(Date.now() + 3_600_000) })
        .where("upload_id", "=", id)
        .execute();
      stranded.push(id);
    }
    const abort = await call(looseBase, owner, "POST", `/v1/uploads/${stranded[0]}/abort`, {});
    expect(abort.json.message).toMatch(/is being anchored in the ledger, which may already hold its manifest: it cannot be aborted/);
    // Now they look stale to the sweep (it retries anchors untouched for INGESTION_ANCHOR_RETRY_AFTER_MS).
    await db
      .updateTable("uploads")
      .set({ updated_at: new Date(Date.now() - 3_600_000) })
      .where("upload_id", "in", stranded)
      .execute();
    const states = await eventually(async () => {
      const rows = await db.selectFrom("uploads").select(["upload_id", "state", "error"]).where("upload_id", "in", stranded).execute();
      return rows.every((r) => r.state !== "anchoring") ? rows : undefined;
    });
    const byId = new Map(states.map((r) => [r.upload_id, r]));
    expect(byId.get(stranded[0]!)!.state).toBe("completed");
    expect(byId.get(stranded[1]!)!.state).toBe("failed");
    expect(byId.get(stranded[1]!)!.error).toMatch(/refused the manifest for good/);
    expect(await objectsOf(stranded[1]!)).toEqual([]);
    const ds = await call(looseBase, owner, "GET", `/v1/datasets/${stranded[0]}`);
    expect(ds.json.dataset.receipt.tlogProof).toMatch(/^c2sp.org\/tlog-proof@v1/);
  }, 30_000);

  it("sweepOnce never runs twice at once", async () => {
    const { Uploads } = await import("../src/app/uploads.js");
    const { MemoryBudget } = await import("../src/app/memory-budget.js");
    const { ProviderRegistry, WeightedPlacement } = await import("@deai/kit");
    const registry = new ProviderRegistry([]);
    const u = new Uploads({
      db: svc.deps.db,
      registry,
      placement: new WeightedPlacement(registry),
      outbox: svc.deps.outbox,
      logger: svc.deps.logger,
      ledger: undefined,
      ttlS: 3600,
      partBytes: 16384,
      maxUploadBytes: 2 ** 40,
      ledgerEntryBytes: 65_535,
      maxLeafTableBytes: 2 ** 26,
      memory: new MemoryBudget(2 ** 20),
      sessionIdleMs: 60_000,
      anchorRetryAfterMs: 60_000,
      readOptions: { hedgeMs: 200, windowStripes: 4, onInvalid: () => undefined },
    });
    const a = u.sweepOnce();
    const b = u.sweepOnce();
    expect(b).toBe(a);
    await a;
    const c = u.sweepOnce();
    expect(c).not.toBe(a);
    await c;
  });
});

describe("memory budget for upload sessions", () => {
  it("refuses a session or buffer beyond the budget with RESOURCE_EXHAUSTED, and gives it back on abort", async () => {
    // S = 64 KiB, k = 4: each session reserves 2 stripe buffers (512 KiB); part buffers are 6 × 64 KiB.
    const spec = { shardSize: 65_536 };
    const a = (await create(spec)).json.upload.uploadId;
    const b = (await create(spec)).json.upload.uploadId;
    const c = (await create(spec)).json.upload.uploadId;
    expect((await putData(base, owner, a, 0, bytesOf(100, 1))).status).toBe(200);
    expect((await putData(base, owner, b, 0, bytesOf(100, 1))).status).toBe(200);
    // The budget (1 MiB) is spent: B's part buffers and C's session do not fit.
    const bMore = await putData(base, owner, b, 0, bytesOf(300_000, 2));
    expect(bMore.status).toBe(429);
    expect(bMore.json).toMatchObject({
      code: "resource_exhausted",
      message: expect.stringMatching(/memory budget .*part buffers needs 0.4 MiB more/),
    });
    const cFirst = await putData(base, owner, c, 0, bytesOf(100, 1));
    expect(cFirst.json).toMatchObject({
      code: "resource_exhausted",
      message: expect.stringMatching(/upload .*: stripe buffers needs 0.5 MiB/),
    });
    // Aborting A releases its share: B goes on.
    expect((await call(base, owner, "POST", `/v1/uploads/${a}/abort`, {})).status).toBe(200);
    const bRetry = await putData(base, owner, b, 0, bytesOf(300_000, 2));
    expect(bRetry.status).toBe(200);
    expect(bRetry.json.receivedOffset).toBe("300000");
    // Finishing B releases its share too: C starts.
    expect((await call(base, owner, "POST", `/v1/uploads/${b}/complete`, {})).json.upload.state).toBe("UPLOAD_STATE_AWAITING_SIGNATURE");
    expect((await putData(base, owner, c, 0, bytesOf(100, 1))).status).toBe(200);
    // And a normal upload still completes.
    await call(base, owner, "POST", `/v1/uploads/${c}/abort`, {});
    expect((await uploadAll(base, owner, bytesOf(50_000, 4))).done.datasetId).toMatch(/-/);
  }, 60_000);
});
