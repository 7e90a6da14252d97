// Issue 9 defects in the ledger's own code, against real Postgres: a poisoned member of a
// group commit fails alone (defect 2), search never 500s on a NUL (defect 2), repeated
// signatures are verified once (defect 8), the ledger's own number parsing is strict (defect 7).
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { fromBinary } from "@bufbuild/protobuf";
import { sql, type Kysely } from "kysely";

import { CheckpointPublishedSchema } from "@deai/contracts/deai/events/v1/ledger_pb";
import { generateActorKey, startService, type RunningService } from "@deai/kit";
import { ManualClock } from "@deai/kit/clock";
import { createTestEnv, signedFetch, type TestEnv } from "@deai/testkit";
import { COSIGNATURE_V1_TYPE, generateNoteKey } from "@deai/proofs";

import { AppendBatcher } from "../src/app/append-batcher.js";
import { Cosignatures } from "../src/app/cosignatures.js";
import { Integrator } from "../src/app/integrator.js";
import { Ledger } from "../src/app/ledger.js";
import { SignatureVerifier } from "../src/app/signature-verifier.js";
import { runWitness } from "../src/app/witness.js";
import { loadLedgerConfig } from "../src/config.js";
import { ledgerDefinition } from "../src/definition.js";
import { entryLeafHash } from "../src/domain/envelope.js";
import { checkpointEventId, enqueueCheckpointPublished, LedgerSubjects } from "../src/events/checkpoint-published.js";
import type { NewEntry } from "../src/store/entries.js";
import type { LedgerDb } from "../src/store/tables.js";
import { envelope, sha256Hex, statement } from "./fixtures.js";

const ORIGIN = "ledger.test/hardening";
const keys = generateNoteKey(ORIGIN);
const author = generateActorKey();

let env: TestEnv;
let svc: RunningService<LedgerDb>;
let base: string;

beforeAll(async () => {
  env = await createTestEnv("ledgerhard");
  const cfg = loadLedgerConfig(
    env.vars({ LEDGER_ORIGIN: ORIGIN, LEDGER_SIGNING_KEY: keys.signerKey, LEDGER_CHECKPOINT_INTERVAL_MS: "200" }),
  );
  svc = await startService(ledgerDefinition(cfg), cfg);
  base = `http://127.0.0.1:${svc.port}`;
});

afterAll(async () => {
  await svc?.stop();
  await env?.close();
});

/** A storable entry for the batcher, bypassing every check above it (as a bug or a new field would). */
function rawEntry(tag: string, predicateType = "https://deai.dev/lease/v1", subject = `sha256:${sha256Hex(tag)}`): NewEntry {
  const leaf = new TextEncoder().encode(`{"raw":${JSON.stringify(tag)}}`);
  return { leaf, leafHash: entryLeafHash(leaf), predicateType, signers: [author.id], subjects: [subject], materials: [] };
}

/** A Ledger over the service's database with its own verifier, so a test can count signature checks. */
function countingLedger(clock?: ManualClock): { ledger: Ledger; verifier: SignatureVerifier; close: () => Promise<void> } {
  const { db, outbox, logger, scheduler } = svc.deps;
  const verifier = new SignatureVerifier({ threads: 1, minOffload: 1 });
  const integrator = new Integrator({ db, origin: ORIGIN, signer: undefined, outbox, logger, scheduler, intervalMs: 60_000 });
  const ledger = new Ledger({
    db,
    origin: ORIGIN,
    batcher: new AppendBatcher(db),
    integrator,
    verifier,
    cosignatures: new Cosignatures({ db, witnesses: [], quorum: 0 }),
    waitDefaultMs: 0,
    waitMaxMs: 0,
    ...(clock ? { clock } : {}),
  });
  return { ledger, verifier, close: () => verifier.close() };
}

function protoEnvelope(json: ReturnType<typeof envelope>): {
  payloadType: string;
  payload: Uint8Array;
  signatures: { keyid: string; sig: Uint8Array }[];
} {
  return {
    payloadType: json.payloadType,
    payload: Buffer.from(json.payload, "base64"),
    signatures: json.signatures.map((s) => ({ keyid: s.keyid, sig: Buffer.from(s.sig, "base64") })),
  };
}

describe("group commit (defect 2)", () => {
  it("lets 60 concurrent valid appends succeed when members with a NUL or a lone surrogate share their group", async () => {
    const batcher = new AppendBatcher(svc.deps.db);
    const valid = Array.from({ length: 60 }, (_, i) => rawEntry(`valid-${i}-${Date.now()}`));
    const poisoned = [
      rawEntry("nul", "https://deai.dev/lease/v1\u0000"),
      rawEntry("surrogate", "https://deai.dev/\ud800/v1"),
      rawEntry("nul-subject", undefined, "sha256:\u0000"),
    ];
    // All submitted in one turn: the first two go alone, the rest queue into one group with the poison.
    const members = [...valid.slice(0, 30), ...poisoned, ...valid.slice(30)];
    const results = await Promise.allSettled(members.map((e) => batcher.submit(e)));
    const outcome = (e: NewEntry): PromiseSettledResult<unknown> => results[members.indexOf(e)]!;
    expect(valid.map((e) => outcome(e).status)).toEqual(valid.map(() => "fulfilled"));
    expect(poisoned.map((e) => outcome(e).status)).toEqual(["rejected", "rejected", "rejected"]);
    expect(batcher.isolatedRetries).toBeGreaterThan(0);
    // Every valid member got its own contiguous index: nothing was lost or written twice.
    const indexes = valid.map((e) => (outcome(e) as PromiseFulfilledResult<{ index: number }>).value.index).sort((a, b) => a - b);
    expect(new Set(indexes).size).toBe(60);
    const rows = await svc.deps.db
      .selectFrom("entries")
      .select("idx")
      .where(
        "idx",
        "in",
        indexes.map((i) => BigInt(i)),
      )
      .execute();
    expect(rows).toHaveLength(60);
  });

  it("refuses a NUL or lone surrogate in the predicate type at the API with 400, never 500", async () => {
    for (const bad of ["https://deai.dev/lease/v1\u0000", "https://deai.dev/\ud800/v1"]) {
      const res = await signedFetch(`${base}/v1/ledger/entries`, author, {
        body: JSON.stringify({ envelope: envelope(statement([sha256Hex(bad)], bad), [author]) }),
      });
      expect({ status: res.status, body: await res.json() }).toMatchObject({ status: 400, body: { code: "invalid_argument" } });
    }
  });

  it("answers search with a NUL or control character in predicateType with 400, not 500", async () => {
    const hex = sha256Hex("search");
    for (const q of ["%00", "lease%00", "%01"]) {
      const res = await fetch(`${base}/v1/ledger/subjects/sha256/${hex}/entries?predicateType=${q}`);
      expect({ q, status: res.status }).toEqual({ q, status: 400 });
    }
    // The path of the abuse run's report (no such GET route: never a 5xx either).
    const bare = await fetch(`${base}/v1/ledger/entries?predicateType=%00`);
    expect(bare.status).toBeLessThan(500);
    const ok = await fetch(`${base}/v1/ledger/subjects/sha256/${hex}/entries?predicateType=https://deai.dev/lease/v1`);
    expect(ok.status).toBe(200);
    // The search path itself, below any boundary check.
    const { ledger, close } = countingLedger();
    try {
      const search = { algorithm: "sha256", hex, includeReceipts: false, pageSize: 10, pageToken: "" };
      await expect(ledger.searchBySubject({ ...search, predicateType: "x\u0000" })).rejects.toThrow(
        /predicate_type holds a control character/,
      );
      await expect(ledger.searchBySubject({ ...search, predicateType: "\udc00" })).rejects.toThrow(/lone surrogate/);
    } finally {
      await close();
    }
  });
});

describe("signature checks (defect 8)", () => {
  it("verifies a repeated (keyid, sig) pair once per envelope and a repeated envelope once per batch", async () => {
    const { ledger, verifier, close } = countingLedger();
    try {
      const one = protoEnvelope(envelope(statement([sha256Hex(`rep-${Date.now()}`)], "https://deai.dev/lease/v1"), [author]));
      const repeated = { ...one, signatures: Array.from({ length: 64 }, () => one.signatures[0]!) };
      await ledger.append(repeated, { wait: false });
      expect(verifier.checked).toBe(1);

      // 100 copies of that envelope in one batch: one check, not 6,400.
      const before = verifier.checked;
      const out = await ledger.appendBatch(Array.from({ length: 100 }, () => repeated));
      expect(verifier.checked - before).toBe(1);
      expect(new Set(out.map((r) => r.index)).size).toBe(1);

      // 100 distinct envelopes, each with 64 copies of its signature: one check each.
      const distinct = Array.from({ length: 100 }, (_, i) => {
        const e = protoEnvelope(envelope(statement([sha256Hex(`d-${i}-${Date.now()}`)], "https://deai.dev/lease/v1"), [author]));
        return { ...e, signatures: Array.from({ length: 64 }, () => e.signatures[0]!) };
      });
      const mid = verifier.checked;
      await ledger.appendBatch(distinct);
      expect(verifier.checked - mid).toBe(100);

      // More than MAX_ENVELOPE_SIGNATURES is refused before any check.
      const over = { ...one, signatures: Array.from({ length: 65 }, () => one.signatures[0]!) };
      const end = verifier.checked;
      await expect(ledger.append(over, { wait: false })).rejects.toThrow(/65 signatures; the limit is 64/);
      expect(verifier.checked).toBe(end);
    } finally {
      await close();
    }
  });
});

describe("strict number parsing (defect 7)", () => {
  it("takes only canonical decimal page tokens", async () => {
    const hex = sha256Hex("tokens");
    for (const token of ["%201", "01", "%2B1", "0x10", "1e3", "1.0", "-1", "99999999999999999999"]) {
      const res = await fetch(`${base}/v1/ledger/subjects/sha256/${hex}/entries?pageToken=${token}`);
      expect({ token, status: res.status }).toEqual({ token, status: 400 });
    }
    expect((await fetch(`${base}/v1/ledger/subjects/sha256/${hex}/entries?pageToken=10`)).status).toBe(200);
  });

  it("takes only canonical decimal tile paths", async () => {
    for (const path of ["tile/0/%20", "tile/0/0x10", "tile/0/+1", "tile/0/01", "tile/entries/%201"]) {
      expect({ path, status: (await fetch(`${base}/${path}`)).status }).toEqual({ path, status: 404 });
    }
  });

  it("refuses a non-decimal witness --interval-ms", async () => {
    const witness = generateNoteKey("hardening.test/w", { type: COSIGNATURE_V1_TYPE });
    const state = join(mkdtempSync(join(tmpdir(), "witness-")), "state.json");
    const run = (interval: string): Promise<number> =>
      runWitness(
        [
          "--log",
          base,
          "--log-key",
          keys.verifierKey,
          "--witness-key",
          witness.signerKey,
          "--state",
          state,
          "--once",
          "--interval-ms",
          interval,
        ],
        new AbortController().signal,
      );
    for (const v of ["0x10", " 100", "1e3", "+100", "0100"]) expect({ v, code: await run(v) }).toEqual({ v, code: 2 });
    // The same arguments with a decimal interval get past parsing (and witness once).
    expect(await run("100")).not.toBe(2);
  });
});

describe("clock", () => {
  it("keeps a latest checkpoint read from another replica for 100 ms of its clock, not of the wall", async () => {
    const clock = new ManualClock();
    const { ledger, close } = countingLedger(clock);
    const publish = async (): Promise<number> => {
      await signedFetch(`${base}/v1/ledger/entries`, author, {
        body: JSON.stringify({ envelope: envelope(statement([sha256Hex(`clock-${Math.random()}`)], "p"), [author]) }),
      });
      const res = await signedFetch(`${base}/v1/ledger/checkpoints`, author, { body: "{}" });
      return Number(((await res.json()) as { checkpoint: { size: string } }).checkpoint.size);
    };
    try {
      const first = await publish();
      expect((await ledger.consistencyProof(1n, 0n)).second).toBe(first);
      // The service (another "replica" to this Ledger) signs a larger checkpoint.
      const second = await publish();
      expect(second).toBeGreaterThan(first);
      await new Promise((r) => setTimeout(r, 150)); // wall time alone does not expire the cache
      expect((await ledger.consistencyProof(1n, 0n)).second).toBe(first);
      clock.advance(100);
      expect((await ledger.consistencyProof(1n, 0n)).second).toBe(second);
    } finally {
      await close();
    }
  });
});

describe("events", () => {
  it("enqueues CheckpointPublished in the caller's transaction, once per tree size", async () => {
    const db = svc.deps.db as unknown as Kysely<unknown>;
    const c = {
      origin: ORIGIN,
      treeSize: 9_000_001,
      rootHash: new Uint8Array(32).fill(7),
      note: "note\n",
      previousTreeSize: 9_000_000,
      publishedAt: new Date(0),
    };
    // Rolled back with its transaction: nothing is published for a checkpoint never stored.
    await expect(
      db.transaction().execute(async (trx) => {
        await enqueueCheckpointPublished(trx, c);
        throw new Error("roll back");
      }),
    ).rejects.toThrow("roll back");
    const rows = () =>
      sql<{
        subject: string;
        payload: Buffer;
      }>`select subject, payload from kit_outbox where event_id = ${checkpointEventId(c.treeSize)}`.execute(db);
    expect((await rows()).rows).toHaveLength(0);
    await db.transaction().execute(async (trx) => {
      await enqueueCheckpointPublished(trx, c);
      await enqueueCheckpointPublished(trx, c);
    });
    const stored = (await rows()).rows;
    expect(stored).toHaveLength(1);
    expect(stored[0]!.subject).toBe(LedgerSubjects.checkpointPublished);
    const event = fromBinary(CheckpointPublishedSchema, stored[0]!.payload);
    expect({ treeSize: event.treeSize, previous: event.previousTreeSize, origin: event.origin }).toEqual({
      treeSize: 9_000_001n,
      previous: 9_000_000n,
      origin: ORIGIN,
    });
  });
});
