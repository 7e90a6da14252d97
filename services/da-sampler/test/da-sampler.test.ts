// DA sampling end to end: a real ledger, a real ingestion upload over 6 in-process S3
// providers, one in-process sampler process running two identities (a1, a2) and one spawned
// sampler process (c) cut off from every provider. Quorum 2 of 3.
import { execFile } from "node:child_process";

import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";

import { AttestationVerdict } from "@deai/contracts/deai/da/v1/da_pb";
import { RecheckVotedSchema } from "@deai/contracts/deai/events/v1/da_pb";
import { createLogger, EventBus, generateActorKey, startService, type RunningService } from "@deai/kit";
import { natsUrl, spawnService, type ServiceProcess } from "@deai/testkit";
import {
  dsseFromJson,
  dsseSign,
  ed25519DsseSigner,
  IN_TOTO_PAYLOAD_TYPE,
  parseTlogProof,
  verifySamplingAttestation,
  verifyTlogProof,
} from "@deai/proofs";

import { envelopeToProto } from "../src/app/envelopes.js";
import { loadDaSamplerConfig } from "../src/config.js";
import { daSamplerDefinition, type SamplerParts } from "../src/definition.js";
import type { DaSamplerDb } from "../src/store/tables.js";
import { bytesOf, newSampler, providerClient, samplerMain, startDaHarness, uploadAll, type DaHarness } from "./harness.js";

const a1 = newSampler();
const a2 = newSampler();
const c = newSampler();
const all = [a1, a2, c];
const owner = generateActorKey();
let d: DaHarness;
let svc: RunningService<DaSamplerDb>;
let parts: SamplerParts;
let base: string;
let cut: ServiceProcess;
let datasetId: string;

type Json = ReturnType<typeof JSON.parse>;

function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 15_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

async function eventually<T>(f: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function get(url: string): Promise<{ status: number; json: Json }> {
  const r = await fetch(url);
  return { status: r.status, json: await r.json() };
}

// Newest first, and the newest are often not anchored yet on a loaded machine: one large page.
const attestations = async (at: string, q = ""): Promise<Json[]> =>
  (await get(`${at}/v1/da/attestations?datasetId=${datasetId}&pageSize=500${q}`)).json.attestations ?? [];

beforeAll(async () => {
  d = await startDaHarness("da-sampler", 6);
  const up = await uploadAll(d.ingestionUrl, owner, bytesOf(200_000, 7), { k: 4, m: 2, shardSize: 4096 });
  datasetId = up.done.datasetId as string;
  const dbA = await d.database();
  const config = loadDaSamplerConfig(d.samplerVars(dbA, [a1, a2], all));
  svc = await startService(daSamplerDefinition(config, { built: (p) => (parts = p) }), config);
  base = `http://127.0.0.1:${svc.port}`;
  const dbC = await d.database();
  const dead = JSON.stringify(JSON.parse(d.h.providersJson()).map((p: Json) => ({ ...p, endpoint: "http://127.0.0.1:9" })));
  cut = await spawnService(samplerMain, d.samplerVars(dbC, [c], all, { DA_PROVIDERS: dead, DA_SAMPLE_TIMEOUT_MS: "1500" }), {
    timeoutMs: 90_000,
  });
}, 240_000);

afterAll(async () => {
  cut?.kill("SIGKILL");
  await cut?.exited;
  await svc?.stop();
  await d?.close();
}, 60_000);

it("samples a newly ingested dataset and anchors its passing rounds, recomputable offline", async () => {
  const found = await eventually<Json>(async () => {
    const list = await attestations(base);
    return list.find((x: Json) => x.receipt && x.verdict === "ATTESTATION_VERDICT_AVAILABLE");
  });
  const envelope = dsseFromJson({
    payloadType: found.envelope.payloadType,
    payload: found.envelope.payload,
    signatures: found.envelope.signatures,
  });
  const v = verifySamplingAttestation(envelope, { samplers: all.map((s) => s.id), quorumThreshold: 2 });
  expect(v.predicate.kind).toBe("rounds");
  expect(v.evidence).toBe(false);
  expect(v.predicate.confidence).toBeGreaterThan(0);
  expect([a1.id, a2.id]).toContain(v.predicate.sampler);
  // The receipt proves the entry under the ledger's key.
  const proof = parseTlogProof(found.receipt.tlogProof);
  expect(verifyTlogProof(proof, { leafHash: Buffer.from(found.receipt.leafHash, "base64") }, { log: d.h.verifier }).index).toBe(
    Number(found.receipt.index),
  );
}, 60_000);

it("a sampler cut off from the providers produces no evidence", async () => {
  // c has been failing every read since it started; it notices that its control reads fail too.
  const cutBase = `http://127.0.0.1:${cut.port}`;
  await eventually(async () => {
    const r = await get(`${cutBase}/v1/da/providers/p0/availability`);
    return r.status === 200 && Number(r.json.samplesFailed) > 0 ? true : undefined;
  });
  expect(await attestations(base, "&verdict=ATTESTATION_VERDICT_UNAVAILABLE")).toEqual([]);
  expect(await attestations(cutBase, "&verdict=ATTESTATION_VERDICT_UNAVAILABLE")).toEqual([]);
  const opened = await parts.ctx.db.selectFrom("rechecks").selectAll().execute();
  expect(opened.filter((r) => r.requester_id === c.id)).toEqual([]);
}, 60_000);

it("catches a provider that silently dropped a slot, and a quorum of two attests it as evidence", async () => {
  const ds = await parts.catalog.get(datasetId);
  const victim = ds.placements[1]!;
  const index = Number(victim.providerId.slice(1));
  await providerClient(d.h.providers[index]!).removeObject(victim.bucket, victim.key);
  const evidence = await eventually<Json>(async () => {
    const list = await attestations(base, "&verdict=ATTESTATION_VERDICT_UNAVAILABLE");
    return list.find((x: Json) => x.receipt);
  }, 45_000);
  expect(evidence.providerId).toBe(victim.providerId);
  expect(evidence.slot).toBe(1);
  expect(evidence.signers.sort()).toEqual([a1.id, a2.id].sort());
  const v = verifySamplingAttestation(dsseFromJson(evidence.envelope), { samplers: all.map((s) => s.id), quorumThreshold: 2 });
  expect(v.evidence).toBe(true);
  expect(v.predicate.trigger!.outcome).toBe("missing");
  // c, cut off, did not confirm: it abstained.
  const votes = await parts.ctx.db.selectFrom("votes").selectAll().where("recheck_id", "=", evidence.attestationId).execute();
  expect(votes.map((x) => x.sampler_id)).not.toContain(c.id);
  // The evidence went out on NATS: c's process received it and recorded it after verifying it.
  const cutBase = `http://127.0.0.1:${cut.port}`;
  await eventually(async () => ((await get(`${cutBase}/v1/da/attestations/${evidence.attestationId}`)).status === 200 ? true : undefined));
  // One piece of evidence per outage, however many rounds keep failing.
  await new Promise((r) => setTimeout(r, 3000));
  const evidences = (await attestations(base, "&verdict=ATTESTATION_VERDICT_UNAVAILABLE")).filter((x: Json) => x.slot === 1);
  expect(evidences).toHaveLength(1);
  const slots = (await get(`${base}/v1/da/providers/${victim.providerId}/availability`)).json.slots as Json[];
  expect(slots.find((s: Json) => s.datasetId === datasetId && s.slot === 1).consecutiveFailures).toBeGreaterThan(0);
}, 90_000);

it("refuses forged, unknown and duplicate votes precisely, with no state change", async () => {
  const recheck = await parts.ctx.db.selectFrom("rechecks").selectAll().where("state", "=", "evidence").executeTakeFirstOrThrow();
  // Rounds go on meanwhile; what must not change is this re-check's votes and attestations.
  const snapshot = async () => ({
    votes: await parts.ctx.db.selectFrom("votes").selectAll().where("recheck_id", "=", recheck.recheck_id).orderBy("sampler_id").execute(),
    attestations: await parts.ctx.db
      .selectFrom("attestations")
      .select(["attestation_id", "signers", "ledger_index"])
      .where("attestation_id", "in", [recheck.recheck_id, recheck.available_id])
      .execute(),
  });
  const before = await snapshot();
  const vote = (signer: { keyid: string; sign(m: Uint8Array): Uint8Array }, samplerId: string, payload = recheck.payload) => {
    const env = dsseSign(IN_TOTO_PAYLOAD_TYPE, payload, [signer]);
    return create(RecheckVotedSchema, {
      eventId: "x",
      occurredAt: timestampFromDate(new Date()),
      recheckId: recheck.recheck_id,
      attestationId: recheck.recheck_id,
      samplerId,
      verdict: AttestationVerdict.UNAVAILABLE,
      envelope: envelopeToProto(env),
    });
  };
  const stranger = ed25519DsseSigner(new Uint8Array(32).fill(9));
  await expect(parts.quorum.acceptVote(vote(stranger, stranger.keyid))).rejects.toThrow(/unknown sampler/);
  // c's name with someone else's signature.
  const forged = vote(stranger, c.id);
  forged.envelope!.signatures[0]!.keyid = c.id;
  await expect(parts.quorum.acceptVote(forged)).rejects.toThrow(/does not verify/);
  const cSigner = ed25519DsseSigner(Buffer.from(c.seed, "base64url"));
  const twice = vote(cSigner, c.id);
  twice.envelope!.signatures.push(twice.envelope!.signatures[0]!);
  await expect(parts.quorum.acceptVote(twice)).rejects.toThrow(/exactly one signature/);
  // a1 already voted (as the requester or a voter): a second vote is a duplicate.
  const a1Signer = ed25519DsseSigner(Buffer.from(a1.seed, "base64url"));
  await expect(parts.quorum.acceptVote(vote(a1Signer, a1.id))).rejects.toThrow(/already voted/);
  expect(await snapshot()).toEqual(before);
  // The same through NATS: acked, refused, nothing stored.
  const bus = await EventBus.connect({
    url: natsUrl,
    prefix: d.h.env.natsPrefix,
    name: "t",
    logger: createLogger({ service: "t", level: "silent" }),
  });
  await bus.publish("deai.da.recheck_voted", RecheckVotedSchema, { ...vote(stranger, stranger.keyid), eventId: "forged-1" }, "forged-1");
  await bus.close();
  await new Promise((r) => setTimeout(r, 1500));
  expect(await snapshot()).toEqual(before);
}, 60_000);

// The CLI scans the ledger up to its latest checkpoint and asks the service for the score at
// that tree size (as_of_tree_size): rounds keep anchoring meanwhile, and neither side counts them.
it("deai da reputation recomputes every provider's score from the ledger's public entries, and the service agrees", async () => {
  const ds = await parts.catalog.get(datasetId);
  const cli = new URL("../../../tools/cli/dist/main.js", import.meta.url).pathname;
  // "=" form: a base64url id may start with "-".
  const samplers = all.map((s) => `--sampler=${s.id}`);
  for (const provider of [ds.placements[1]!.providerId, ds.placements[0]!.providerId]) {
    const doc = await eventually<Json>(async () => {
      // Asynchronously: the sampler under test runs in this process and must answer --compare.
      const r = await run(process.execPath, [
        cli,
        "--json",
        "--server",
        base,
        "da",
        "reputation",
        provider,
        "--ledger",
        d.h.ledgerUrl,
        ...samplers,
        "--compare",
      ]);
      if (r.code !== 0) console.warn(r.code, r.stderr.slice(0, 2000));
      return r.code === 0 ? JSON.parse(r.stdout) : undefined;
    }, 20_000);
    expect(doc.agrees).toBe(true);
    expect(doc.reputation.attestations).toBeGreaterThan(0);
    expect(doc.refused).toEqual([]);
  }
  // The provider that lost its slot scores below one that kept it.
  const rep = async (p: string) => (await get(`${base}/v1/da/providers/${p}/availability`)).json.reputation.mean as number;
  expect(await rep(ds.placements[1]!.providerId)).toBeLessThan(await rep(ds.placements[0]!.providerId));
}, 60_000);
