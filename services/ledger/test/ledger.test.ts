import { toJson } from "@bufbuild/protobuf";
import { connect } from "nats";
import { fromBinary } from "@bufbuild/protobuf";

import { generateActorKey, startService, streamName, type RunningService } from "@deai/kit";
import { createTestEnv, signedFetch, type TestEnv } from "@deai/testkit";
import { CheckpointPublishedSchema } from "@deai/contracts/deai/events/v1/ledger_pb";
import {
  compactRangeNodes,
  decodeEntryBundle,
  generateNoteKey,
  leafHash,
  openCheckpoint,
  parseVerifierKey,
  rootFromSubtreeHashes,
  tileHashAccessor,
  tilePath,
  tilesForPlan,
  verifyConsistency,
  verifyInclusion,
  verifyTlogProof,
  type NoteVerifier,
  type Tile,
} from "@deai/proofs";

import { fsck } from "../src/app/fsck.js";
import { loadLedgerConfig } from "../src/config.js";
import { ledgerDefinition } from "../src/definition.js";
import { canonicalJson } from "../src/domain/jcs.js";
import { LedgerSubjects } from "../src/events/checkpoint-published.js";
import type { LedgerDb } from "../src/store/tables.js";
import { envelope, sha256Hex, statement } from "./fixtures.js";

const ORIGIN = "ledger.test/log";
const keys = generateNoteKey(ORIGIN);
const author = generateActorKey();

let env: TestEnv;
let svc: RunningService<LedgerDb>;
let base: string;
let verifier: NoteVerifier;

interface AppendJson {
  index: string;
  leafHash: string;
  duplicate: boolean;
  integrated: boolean;
  receipt?: { tlogProof: string; index: string; treeSize: string; checkpoint: string; inclusionProof: string[] };
}

async function append(env: unknown, body: Record<string, unknown> = {}): Promise<Response> {
  return signedFetch(`${base}/v1/ledger/entries`, author, { body: JSON.stringify({ envelope: env, ...body }) });
}

async function appendOk(env: unknown, body: Record<string, unknown> = {}): Promise<AppendJson> {
  const res = await append(env, body);
  const json = (await res.json()) as AppendJson;
  expect(res.status).toBe(200);
  return json;
}

async function get<T>(path: string): Promise<{ status: number; body: T }> {
  const res = await fetch(`${base}${path}`);
  return { status: res.status, body: (await res.json()) as T };
}

async function publish(): Promise<{ checkpoint: { note: string; size: string; rootHash: string }; published: boolean }> {
  const res = await signedFetch(`${base}/v1/ledger/checkpoints`, author, { body: "{}" });
  expect(res.status).toBe(200);
  return (await res.json()) as never;
}

function b64(s: string): Uint8Array {
  return Buffer.from(s, "base64");
}

beforeAll(async () => {
  env = await createTestEnv("ledger");
  const cfg = loadLedgerConfig(
    env.vars({ LEDGER_ORIGIN: ORIGIN, LEDGER_SIGNING_KEY: keys.signerKey, LEDGER_CHECKPOINT_INTERVAL_MS: "200" }),
  );
  svc = await startService(ledgerDefinition(cfg), cfg);
  base = `http://127.0.0.1:${svc.port}`;
  verifier = parseVerifierKey(keys.verifierKey);
});

afterAll(async () => {
  await svc?.stop();
  await env?.close();
});

describe("append and receipts", () => {
  it("appends, waits for integration and returns a tlog-proof that verifies offline against the pinned key", async () => {
    const env1 = envelope(statement([sha256Hex("model-0")], "https://deai.dev/lease/v1", { lease: "l-1" }), [author]);
    const r = await appendOk(env1, { waitForIntegration: true, waitTimeout: "10s" });
    expect(r.integrated).toBe(true);
    expect(r.duplicate).toBe(false);
    // The leaf is the JCS canonical JSON of the envelope, and the receipt proves it.
    const leaf = new TextEncoder().encode(canonicalJson(env1));
    expect(Buffer.from(leafHash(leaf)).toString("base64")).toBe(r.leafHash);
    const verified = verifyTlogProof(r.receipt!.tlogProof, { entry: leaf }, { log: verifier });
    expect(verified.index).toBe(Number(r.index));
    const { body } = await get<{
      entry: { leaf: string; integrated: boolean; signers: string[]; predicateType: string; envelope: unknown };
    }>(`/v1/ledger/entries/${r.index}`);
    expect(Buffer.from(body.entry.leaf, "base64")).toEqual(Buffer.from(leaf));
    expect(body.entry).toMatchObject({
      integrated: true,
      signers: [author.id],
      predicateType: "https://deai.dev/lease/v1",
      envelope: env1,
    });
  });

  it("returns the existing index for an identical envelope and writes nothing", async () => {
    const env1 = envelope(statement([sha256Hex("dup")], "https://deai.dev/lease/v1"), [author]);
    const a = await appendOk(env1);
    const b = await appendOk(env1);
    expect(b).toMatchObject({ index: a.index, leafHash: a.leafHash, duplicate: true });
    const byHash = await get<{ entry: { index: string } }>(`/v1/ledger/leaves/${Buffer.from(a.leafHash, "base64").toString("base64url")}`);
    expect(byHash.body.entry.index).toBe(a.index);
  });

  it("refuses malformed envelopes, bad or missing signatures and oversized entries with 400, writing nothing", async () => {
    const before = (await publish()).checkpoint.size;
    const other = generateActorKey();
    const good = envelope(statement([sha256Hex("x")], "https://deai.dev/lease/v1"), [author]);
    const forged = { ...good, signatures: [{ keyid: other.id, sig: good.signatures[0]!.sig }] };
    const big = envelope(statement([sha256Hex("big")], "https://deai.dev/lease/v1", { blob: "a".repeat(50_000) }), [author]);
    const cases: [string, unknown, RegExp][] = [
      ["missing envelope", undefined, /envelope is required/],
      ["no signatures", { ...good, signatures: [] }, /no signatures/],
      ["signature by another key", forged, /does not verify/],
      ["bad keyid", { ...good, signatures: [{ keyid: "not-a-key", sig: good.signatures[0]!.sig }] }, /actor id/],
      ["short signature", { ...good, signatures: [{ keyid: author.id, sig: "AAAA" }] }, /64-byte/],
      ["wrong payload type", envelope(statement([sha256Hex("x")], "p"), [author], "text/plain"), /payloadType/],
      ["not JSON", envelope("not json at all", [author]), /_type|object/],
      ["not a statement", envelope({ _type: "https://in-toto.io/Statement/v0.1", subject: [] }, [author]), /_type/],
      ["no subjects", envelope({ ...statement([], "p") }, [author]), /subject/],
      ["bad digest", envelope(statement(["abc"], "p"), [author]), /64 lowercase hex/],
      ["oversized", big, /limit is 65535/],
    ];
    for (const [what, e, message] of cases) {
      const res = await append(e);
      const body = (await res.json()) as { code: string; message: string };
      expect({ what, status: res.status, code: body.code }).toEqual({ what, status: 400, code: "invalid_argument" });
      expect(body.message).toMatch(message);
    }
    const after = await publish();
    expect(after.checkpoint.size).toBe(before);
    expect(after.published).toBe(false);
  });

  it("answers 404 for unknown entries and hashes and 400 for indexes beyond the tree", async () => {
    const { checkpoint } = await publish();
    const size = Number(checkpoint.size);
    const unknown = Buffer.alloc(32, 7).toString("base64url");
    expect((await get(`/v1/ledger/entries/${size + 1000}`)).status).toBe(404);
    expect((await get(`/v1/ledger/leaves/${unknown}`)).status).toBe(404);
    expect((await get(`/v1/ledger/proofs/inclusion?leafHash=${unknown}`)).status).toBe(404);
    expect((await get(`/v1/ledger/proofs/inclusion?leafIndex=${size}`)).status).toBe(400);
    expect((await get(`/v1/ledger/proofs/inclusion?leafIndex=0&treeSize=${size + 1}`)).status).toBe(400);
    expect((await get(`/v1/ledger/proofs/consistency?first=0&second=1`)).status).toBe(400);
    expect((await get(`/v1/ledger/proofs/consistency?first=${size + 1}`)).status).toBe(400);
    expect((await get(`/v1/ledger/leaves/${Buffer.alloc(5).toString("base64url")}`)).status).toBe(400);
  });
});

interface BatchJson {
  results: { index: string; leafHash: string; duplicate: boolean }[];
}

async function appendBatch(envelopes: unknown[]): Promise<Response> {
  return signedFetch(`${base}/v1/ledger/entries:batch`, author, { body: JSON.stringify({ envelopes }) });
}

describe("batch append", () => {
  const lease = (tag: string, keys = [author]): ReturnType<typeof envelope> =>
    envelope(statement([sha256Hex(tag)], "https://deai.dev/lease/v1", { tag }), keys);

  it("sequences a batch contiguously in request order; repeats and logged envelopes are duplicates", async () => {
    const logged = await appendOk(lease("batch-logged"));
    const [a, b, c] = [lease("batch-a"), lease("batch-b"), lease("batch-c")];
    const res = await appendBatch([
      a,
      b,
      a,
      envelope(statement([sha256Hex("batch-logged")], "https://deai.dev/lease/v1", { tag: "batch-logged" }), [author]),
      c,
    ]);
    expect(res.status).toBe(200);
    const { results } = (await res.json()) as BatchJson;
    expect(results).toHaveLength(5);
    const [ra, rb, ra2, rl, rc] = results;
    expect([ra!.duplicate, rb!.duplicate, ra2!.duplicate, rl!.duplicate, rc!.duplicate]).toEqual([false, false, true, true, false]);
    expect(Number(rb!.index)).toBe(Number(ra!.index) + 1);
    expect(Number(rc!.index)).toBe(Number(ra!.index) + 2);
    expect(ra2).toEqual({ ...ra, duplicate: true });
    expect(rl).toMatchObject({ index: logged.index, leafHash: logged.leafHash });
    // Each result's leaf hash is its envelope's, and the entry is readable by it.
    for (const [e, r] of [
      [a, ra],
      [b, rb],
      [c, rc],
    ] as const) {
      expect(r!.leafHash).toBe(Buffer.from(leafHash(new TextEncoder().encode(canonicalJson(e)))).toString("base64"));
      const got = await get<{ entry: { index: string; envelope: unknown } }>(`/v1/ledger/entries/${r!.index}`);
      expect(got.body.entry).toMatchObject({ index: r!.index, envelope: e });
    }
    // Sending the same batch again writes nothing new.
    const again = (await (await appendBatch([a, b, c])).json()) as BatchJson;
    expect(again.results.map((r) => [r.index, r.duplicate])).toEqual([ra, rb, rc].map((r) => [r!.index, true]));
  });

  it("rejects the whole batch when one envelope is bad, naming its position, and writes nothing", async () => {
    const before = (await publish()).checkpoint.size;
    const other = generateActorKey();
    const good = [lease("reject-0"), lease("reject-1"), lease("reject-2"), lease("reject-3")];
    const forged = { ...good[2]!, signatures: [{ keyid: other.id, sig: good[2]!.signatures[0]!.sig }] };
    const cases: [string, unknown[], RegExp][] = [
      ["bad signature at 2", [good[0], good[1], forged, good[3]], /^envelopes\[2\]: signatures\[0\] does not verify for keyid /],
      ["not a statement at 1", [good[0], envelope("not json", [author]), good[2]], /^envelopes\[1\]: payload|^envelopes\[1\]: statement/],
      ["no signatures at 3", [good[0], good[1], good[2], { ...good[3]!, signatures: [] }], /^envelopes\[3\]: envelope has no signatures$/],
      // The first bad envelope by position wins, whatever its kind of problem.
      [
        "forged at 0, malformed at 1",
        [forged, { ...good[1]!, payloadType: "text/plain" }],
        /^envelopes\[0\]: signatures\[0\] does not verify/,
      ],
      [
        "malformed at 0, forged at 1",
        [{ ...good[1]!, payloadType: "text/plain" }, forged],
        /^envelopes\[0\]: envelope payloadType must be/,
      ],
      ["empty", [], /envelopes is empty/],
      ["too many", Array.from({ length: 1001 }, () => good[0]), /1001 envelopes; the limit is 1000/],
    ];
    for (const [what, envelopes, message] of cases) {
      const res = await appendBatch(envelopes);
      const body = (await res.json()) as { code: string; message: string };
      expect({ what, status: res.status, code: body.code }).toEqual({ what, status: 400, code: "invalid_argument" });
      expect({ what, message: body.message }).toEqual({ what, message: expect.stringMatching(message) });
    }
    const after = await publish();
    expect(after.checkpoint.size).toBe(before);
    expect(after.published).toBe(false);
    for (const e of good) {
      const hash = Buffer.from(leafHash(new TextEncoder().encode(canonicalJson(e)))).toString("base64url");
      expect((await get(`/v1/ledger/leaves/${hash}`)).status).toBe(404);
    }
  });

  it("needs a signed request", async () => {
    const res = await fetch(`${base}/v1/ledger/entries:batch`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ envelopes: [lease("unsigned")] }),
    });
    expect(res.status).toBe(401);
  });

  it("keeps concurrent batches and single appends contiguous", async () => {
    const start = Number((await publish()).checkpoint.size);
    const batches = Array.from({ length: 6 }, (_, b) => Array.from({ length: 50 }, (_, i) => lease(`mix-${b}-${i}`)));
    const [batchResults, singles] = await Promise.all([
      Promise.all(batches.map(async (envs) => ((await (await appendBatch(envs)).json()) as BatchJson).results)),
      Promise.all(Array.from({ length: 40 }, (_, i) => appendOk(lease(`mix-single-${i}`)))),
    ]);
    // Each batch is one transaction: its indexes are consecutive.
    for (const r of batchResults) {
      const idx = r.map((x) => Number(x.index));
      expect(idx).toEqual(Array.from({ length: 50 }, (_, i) => idx[0]! + i));
    }
    const all = [...batchResults.flat().map((r) => Number(r.index)), ...singles.map((r) => Number(r.index))].sort((a, b) => a - b);
    expect(all).toEqual(Array.from({ length: 340 }, (_, i) => start + i));
    const cp = (await publish()).checkpoint;
    expect(Number(cp.size)).toBe(start + 340);
    // Every one of them proves against the new checkpoint.
    for (const r of batchResults.flat().filter((_, i) => i % 23 === 0)) {
      const p = await get<{ inclusionProof: string[] }>(`/v1/ledger/proofs/inclusion?leafIndex=${r.index}&treeSize=${cp.size}`);
      verifyInclusion(Number(r.index), Number(cp.size), b64(r.leafHash), p.body.inclusionProof.map(b64), b64(cp.rootHash));
    }
  });
});

describe("sequencing, proofs and tiles", () => {
  let first: { size: number; root: Uint8Array };
  let second: { size: number; root: Uint8Array; note: string };

  it("sequences 600 concurrent appends contiguously and proves inclusion and consistency", async () => {
    const c1 = (await publish()).checkpoint;
    first = { size: Number(c1.size), root: b64(c1.rootHash) };
    const results = await Promise.all(
      Array.from({ length: 600 }, (_, i) =>
        appendOk(envelope(statement([sha256Hex(`bulk-${i}`)], "https://deai.dev/lease/v1", { i }), [author])),
      ),
    );
    const indexes = results.map((r) => Number(r.index)).sort((a, b) => a - b);
    expect(indexes).toEqual(Array.from({ length: 600 }, (_, i) => first.size + i));
    // The schedule may already have integrated them; either way the latest covers all 600.
    const c2 = await publish();
    second = { size: Number(c2.checkpoint.size), root: b64(c2.checkpoint.rootHash), note: c2.checkpoint.note };
    expect(second.size).toBe(first.size + 600);
    expect(openCheckpoint(second.note, { log: verifier }).checkpoint.size).toBe(second.size);

    const cons = await get<{ consistencyProof: string[] }>(`/v1/ledger/proofs/consistency?first=${first.size}&second=${second.size}`);
    verifyConsistency(first.size, second.size, cons.body.consistencyProof.map(b64), first.root, second.root);
    for (const r of results.filter((_, i) => i % 97 === 0)) {
      const p = await get<{ inclusionProof: string[]; treeSize: string; checkpoint: { size: string } }>(
        `/v1/ledger/proofs/inclusion?leafIndex=${r.index}`,
      );
      expect(Number(p.body.treeSize)).toBe(second.size);
      verifyInclusion(Number(r.index), second.size, b64(r.leafHash), p.body.inclusionProof.map(b64), second.root);
    }
    // A proof against an older size (not a checkpoint size) also verifies against recomputed roots.
    const old = await get<{ inclusionProof: string[]; checkpoint?: unknown }>(
      `/v1/ledger/proofs/inclusion?leafIndex=0&treeSize=${first.size}`,
    );
    expect(old.status).toBe(200);
  });

  it("serves C2SP tlog-tiles from which a client computes the checkpoint's root and every leaf", async () => {
    const res = await fetch(`${base}/checkpoint`);
    expect(res.headers.get("cache-control")).toBe("no-cache");
    const note = await res.text();
    const { checkpoint } = openCheckpoint(note, { log: verifier });
    const size = checkpoint.size;
    expect(size).toBeGreaterThan(256);
    // Fetch every tile the root needs, then compute it locally.
    const tiles = tilesForPlan([compactRangeNodes(0, size)], size);
    const data = new Map<string, Uint8Array>();
    for (const t of tiles) {
      const r = await fetch(`${base}/${tilePath(t)}`);
      expect(r.status).toBe(200);
      expect(r.headers.get("cache-control")).toBe(t.width === 256 ? "public, max-age=31536000, immutable" : "public, max-age=60");
      data.set(tilePath(t), new Uint8Array(await r.arrayBuffer()));
    }
    const hashAt = tileHashAccessor(size, (t: Tile) => data.get(tilePath(t))!);
    expect(Buffer.from(rootFromSubtreeHashes(size, hashAt))).toEqual(Buffer.from(checkpoint.rootHash));
    // The first entry bundle's leaves hash to the first level-0 tile.
    const bundle = await fetch(`${base}/tile/entries/000`);
    expect(bundle.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    const leaves = decodeEntryBundle(new Uint8Array(await bundle.arrayBuffer()), 256);
    const tile0 = new Uint8Array(await (await fetch(`${base}/tile/0/000`)).arrayBuffer());
    leaves.forEach((l, i) => expect(Buffer.from(leafHash(l))).toEqual(Buffer.from(tile0.subarray(i * 32, i * 32 + 32))));
    // Tiles beyond the tree and malformed paths are 404.
    expect((await fetch(`${base}/tile/0/999`)).status).toBe(404);
    expect((await fetch(`${base}/tile/0/009.p/1`)).status).toBe(404);
    expect((await fetch(`${base}/tile/0/x000/001`)).status).toBe(404);
  });

  it("publishes a CheckpointPublished event for each checkpoint", async () => {
    const nc = await connect({ servers: "nats://127.0.0.1:4222" });
    try {
      const jsm = await nc.jetstreamManager();
      const subject = `${env.natsPrefix}.${LedgerSubjects.checkpointPublished}`;
      let event: ReturnType<typeof fromBinary<typeof CheckpointPublishedSchema>> | undefined;
      for (let i = 0; i < 50 && event?.treeSize !== BigInt(second.size); i++) {
        const msg = await jsm.streams.getMessage(streamName(env.natsPrefix, "ledger"), { last_by_subj: subject }).catch(() => undefined);
        if (msg) event = fromBinary(CheckpointPublishedSchema, msg.data);
        if (event?.treeSize !== BigInt(second.size)) await new Promise((r) => setTimeout(r, 100));
      }
      expect(event).toBeDefined();
      expect(toJson(CheckpointPublishedSchema, event!)).toMatchObject({
        origin: ORIGIN,
        eventId: expect.stringMatching(/^ledger\/checkpoint\/\d+$/),
      });
      expect(event!.note).toContain(ORIGIN);
    } finally {
      await nc.close();
    }
  });
});

describe("search and lineage", () => {
  const A = sha256Hex("dataset-A");
  const B = sha256Hex("dataset-B");
  const base0 = sha256Hex("base-checkpoint");
  const M = sha256Hex("model-M");

  it("finds entries by subject and walks ancestors and descendants with a receipt per hop", async () => {
    const dataset = (hex: string, parents: string[]): unknown =>
      envelope(
        statement([hex], "https://deai.dev/dataset-manifest/v1", {
          name: hex.slice(0, 6),
          parents: parents.map((p) => ({ algorithm: "sha256", hex: p })),
        }),
        [author],
      );
    await appendOk(dataset(A, []));
    await appendOk(dataset(B, [A]));
    const run = envelope(
      statement([M], "https://slsa.dev/provenance/v1", {
        buildDefinition: {
          buildType: "https://deai.dev/diloco/v1",
          resolvedDependencies: [
            { name: "dataset", digest: { sha256: B } },
            { name: "base", digest: { sha256: base0 } },
          ],
        },
      }),
      [author],
    );
    await appendOk(run, { waitForIntegration: true });

    const search = await get<{
      entries: { predicateType: string; receipt?: { tlogProof: string }; leaf: string }[];
      nextPageToken: string;
    }>(`/v1/ledger/subjects/sha256/${B}/entries?includeReceipts=true`);
    expect(search.body.entries).toHaveLength(1);
    expect(search.body.entries[0]!.predicateType).toBe("https://deai.dev/dataset-manifest/v1");
    verifyTlogProof(search.body.entries[0]!.receipt!.tlogProof, { entry: b64(search.body.entries[0]!.leaf) }, { log: verifier });

    type Hop = {
      subject: { hex: string };
      material: { hex: string };
      depth: number;
      direction: string;
      entry: { leaf: string };
      receipt: { tlogProof: string; checkpoint: string };
    };
    const anc = await get<{ hops: Hop[]; truncated: boolean; checkpoint: { note: string } }>(`/v1/ledger/lineage/sha256/${M}`);
    expect(anc.status).toBe(200);
    const edges = anc.body.hops.map((h) => [h.depth, h.subject.hex, h.material.hex, h.direction]);
    expect(edges).toEqual(
      expect.arrayContaining([
        [1, M, B, "LINEAGE_DIRECTION_ANCESTORS"],
        [1, M, base0, "LINEAGE_DIRECTION_ANCESTORS"],
        [2, B, A, "LINEAGE_DIRECTION_ANCESTORS"],
      ]),
    );
    expect(edges).toHaveLength(3);
    expect(anc.body.truncated).toBe(false);
    for (const h of anc.body.hops) {
      expect(h.receipt.checkpoint).toBe(anc.body.checkpoint.note);
      verifyTlogProof(h.receipt.tlogProof, { entry: b64(h.entry.leaf) }, { log: verifier });
    }
    const desc = await get<{ hops: Hop[] }>(`/v1/ledger/lineage/sha256/${A}?direction=LINEAGE_DIRECTION_DESCENDANTS`);
    expect(desc.body.hops.map((h) => [h.depth, h.subject.hex, h.material.hex])).toEqual([
      [1, B, A],
      [2, M, B],
    ]);
    const shallow = await get<{ hops: Hop[]; truncated: boolean }>(
      `/v1/ledger/lineage/sha256/${A}?direction=LINEAGE_DIRECTION_DESCENDANTS&maxDepth=1`,
    );
    expect(shallow.body.hops).toHaveLength(1);
    expect(shallow.body.truncated).toBe(true);
    expect((await get(`/v1/ledger/lineage/sha256/xyz`)).status).toBe(400);
  });

  it("pages search results newest first", async () => {
    const S = sha256Hex("shared-subject");
    for (let i = 0; i < 5; i++) await appendOk(envelope(statement([S], "https://deai.dev/slash-record/v1", { i }), [author]));
    const p1 = await get<{ entries: { index: string }[]; nextPageToken: string }>(`/v1/ledger/subjects/sha256/${S}/entries?pageSize=3`);
    const p2 = await get<{ entries: { index: string }[]; nextPageToken: string }>(
      `/v1/ledger/subjects/sha256/${S}/entries?pageSize=3&pageToken=${p1.body.nextPageToken}`,
    );
    const all = [...p1.body.entries, ...p2.body.entries].map((e) => Number(e.index));
    expect(all).toHaveLength(5);
    expect([...all].sort((a, b) => b - a)).toEqual(all);
    expect(p2.body.nextPageToken).toBe("");
  });
});

describe("fsck", () => {
  it("finds the log sound, and notices a tampered tile", async () => {
    await publish();
    const clean = await fsck(svc.deps.db, verifier, ORIGIN);
    expect(clean.problems).toEqual([]);
    expect(clean.checkpoints).toBeGreaterThan(3);
    const row = await svc.deps.db.selectFrom("tiles").selectAll().where("level", "=", 0).where("idx", "=", 0n).executeTakeFirstOrThrow();
    const bad = Buffer.from(row.hashes);
    bad[5]! ^= 1;
    await svc.deps.db.updateTable("tiles").set({ hashes: bad }).where("level", "=", 0).where("idx", "=", 0n).execute();
    const dirty = await fsck(svc.deps.db, verifier, ORIGIN);
    await svc.deps.db.updateTable("tiles").set({ hashes: row.hashes }).where("level", "=", 0).where("idx", "=", 0n).execute();
    expect(dirty.problems).toEqual([expect.stringMatching(/tile 0\/0/)]);
  });
});
