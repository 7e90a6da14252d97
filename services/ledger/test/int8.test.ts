// The store with int8 columns parsed as bigint, as the kit's database will parse them
// (packages/kit/src/db/database.ts): every path that reads an index or a size decodes it once,
// so nothing mixes bigint and number or serializes a bigint. Flipped here for this file only
// (jest gives each test file its own module registry, so its own `pg`).
import pg from "pg";

import { generateActorKey, startService, type RunningService } from "@deai/kit";
import { createTestEnv, signedFetch, type TestEnv } from "@deai/testkit";
import { generateNoteKey, parseVerifierKey, verifyTlogProof } from "@deai/proofs";

import { fsck } from "../src/app/fsck.js";
import { loadLedgerConfig } from "../src/config.js";
import { ledgerDefinition } from "../src/definition.js";
import { canonicalJson } from "../src/domain/jcs.js";
import type { LedgerDb } from "../src/store/tables.js";
import { envelope, sha256Hex, statement } from "./fixtures.js";

const ORIGIN = "ledger.test/int8";
const keys = generateNoteKey(ORIGIN);
const author = generateActorKey();

let env: TestEnv;
let svc: RunningService<LedgerDb>;
let base: string;

beforeAll(async () => {
  pg.types.setTypeParser(20, (v: string) => BigInt(v));
  env = await createTestEnv("ledgerint8");
  const cfg = loadLedgerConfig(
    env.vars({ LEDGER_ORIGIN: ORIGIN, LEDGER_SIGNING_KEY: keys.signerKey, LEDGER_CHECKPOINT_INTERVAL_MS: "100" }),
  );
  svc = await startService(ledgerDefinition(cfg), cfg);
  base = `http://127.0.0.1:${svc.port}`;
});

afterAll(async () => {
  await svc?.stop();
  await env?.close();
});

async function get(path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${base}${path}`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe("int8 columns as bigint", () => {
  it("reads bigint back", async () => {
    const r = await svc.deps.db.selectFrom("sequencer").select("next_index").executeTakeFirstOrThrow();
    expect(typeof r.next_index).toBe("bigint");
  });

  it("appends, proves, searches, serves tiles and checks the log with bigint rows", async () => {
    const subject = sha256Hex("int8-subject");
    const material = sha256Hex("int8-material");
    const envs = Array.from({ length: 5 }, (_, i) =>
      envelope(
        statement([i === 4 ? subject : sha256Hex(`int8-${i}`)], "https://slsa.dev/provenance/v1", {
          buildDefinition: { resolvedDependencies: [{ digest: { sha256: material } }] },
        }),
        [author],
      ),
    );
    for (const [i, e] of envs.entries()) {
      const res = await signedFetch(`${base}/v1/ledger/entries`, author, {
        body: JSON.stringify({ envelope: e, waitForIntegration: i === envs.length - 1, waitTimeout: "10s" }),
      });
      const json = (await res.json()) as { index: string; duplicate: boolean; receipt?: { tlogProof: string } };
      expect({ status: res.status, index: json.index }).toEqual({ status: 200, index: String(i) });
      if (json.receipt) {
        const v = verifyTlogProof(
          json.receipt.tlogProof,
          { entry: new TextEncoder().encode(canonicalJson(e)) },
          { log: parseVerifierKey(keys.verifierKey) },
        );
        expect(v.index).toBe(i);
      }
    }
    // A duplicate finds the existing index (the sequencer's bigint lookup).
    const dup = await signedFetch(`${base}/v1/ledger/entries`, author, { body: JSON.stringify({ envelope: envs[2] }) });
    expect(await dup.json()).toMatchObject({ index: "2", duplicate: true });
    const batch = await signedFetch(`${base}/v1/ledger/entries:batch`, author, { body: JSON.stringify({ envelopes: [envs[1], envs[3]] }) });
    expect(await batch.json()).toMatchObject({
      results: [
        { index: "1", duplicate: true },
        { index: "3", duplicate: true },
      ],
    });

    const cp = await get("/v1/ledger/checkpoint");
    expect(cp.status).toBe(200);
    expect((cp.body.checkpoint as { size: string }).size).toBe("5");
    expect((await get("/v1/ledger/entries/4?includeReceipt=true")).body).toMatchObject({ entry: { index: "4", integrated: true } });
    expect((await get("/v1/ledger/proofs/inclusion?leafIndex=1&treeSize=5")).body).toMatchObject({ leafIndex: "1", treeSize: "5" });
    expect((await get("/v1/ledger/proofs/consistency?first=2&second=5")).status).toBe(200);
    const found = await get(`/v1/ledger/subjects/sha256/${subject}/entries?pageSize=1`);
    expect(found.body).toMatchObject({ entries: [{ index: "4" }] });
    const lineage = await get(`/v1/ledger/lineage/sha256/${material}?direction=LINEAGE_DIRECTION_DESCENDANTS`);
    expect({ status: lineage.status, hops: (lineage.body.hops as unknown[] | undefined)?.length }).toEqual({ status: 200, hops: 5 });
    expect((await fetch(`${base}/tile/0/000.p/5`)).status).toBe(200);
    expect((await fetch(`${base}/tile/entries/000.p/5`)).status).toBe(200);
    const check = await fsck(svc.deps.db, parseVerifierKey(keys.verifierKey), ORIGIN);
    expect(check.problems).toEqual([]);
  });
});
