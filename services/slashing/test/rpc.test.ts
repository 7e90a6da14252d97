// deai.slashing.v1 end to end in one process against real Postgres, NATS and the real ledger
// process, time from a ManualClock near real time (signed requests carry real timestamps):
// signed Bond/Unbond/SubmitEvidence/Veto over gRPC, precise refusals with no state change,
// GetProviderStatus for the marketplace, the veto window, every record anchored with a receipt
// that checks against the pinned log key, slash_proposed/evidence_accepted on NATS, and DA
// attestations consumed from NATS exactly once.
import { execFile } from "node:child_process";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { sql } from "kysely";

import { AttestationVerdict } from "@deai/contracts/deai/da/v1/da_pb";
import { AttestationIssuedSchema } from "@deai/contracts/deai/events/v1/da_pb";
import { EvidenceAcceptedSchema, SlashProposedSchema } from "@deai/contracts/deai/events/v1/slashing_pb";
import { EvidenceState, ProviderStatus, SlashingService, SlashState } from "@deai/contracts/deai/slashing/v1/slashing_pb";
import {
  actorKeySeed,
  auditBooks,
  checkReceipt,
  createLogger,
  EventBus,
  generateActorKey,
  ManualClock,
  serviceClient,
  startService,
  type RunningService,
} from "@deai/kit";
import {
  dsseSign,
  dsseToJson,
  IN_TOTO_PAYLOAD_TYPE,
  parseSamplingAttestation,
  sha256Hex,
  verifySlashRecord,
  vetoPayload,
} from "@deai/proofs";
import { natsUrl } from "@deai/testkit";

import { loadSlashingConfig } from "../src/config.js";
import { slashingDefinition, type SlashingParts } from "../src/definition.js";
import { SlashingSubjects } from "../src/events/status-events.js";
import { envelopeToProto } from "../src/grpc/views.js";
import { evidenceOf, forge, leaseBreach, newSigner, unavailability } from "./evidence-factory.js";
import { actorOf, startSlashHarness, submitRequest, type SlashHarness } from "./harness.js";

let h: SlashHarness;
let running: RunningService<unknown>;
let parts: SlashingParts;
let base: string;
const clock = new ManualClock(new Date());

beforeAll(async () => {
  h = await startSlashHarness("slashing-rpc");
  const config = loadSlashingConfig(h.vars({ SLASHING_SERVICE_KEY: actorKeySeed(generateActorKey()) }));
  running = await startService(slashingDefinition(config, { built: (p) => (parts = p) }), config, {
    clock,
    logger: createLogger({ service: "slashing", level: "silent" }),
  });
  base = `http://127.0.0.1:${running.port}`;
}, 120_000);

afterAll(async () => {
  await running?.stop();
  await h?.close();
}, 60_000);

const client = (key = generateActorKey()) => serviceClient(SlashingService, { baseUrl: base, key });
const code = async (p: Promise<unknown>): Promise<Code | "ok"> =>
  p.then(
    () => "ok" as const,
    (e: unknown) => ConnectError.from(e).code,
  );
const count = async (table: string): Promise<number> =>
  Number((await sql<{ n: string }>`select count(*) as n from ${sql.table(table)}`.execute(running.deps.db)).rows[0]!.n);

it("bonds, takes evidence once, jails, vetoes, applies after the window and anchors every record", async () => {
  const p = newSigner();
  const q = newSigner();
  const pc = client(actorOf(p));
  const reporter = generateActorKey();
  const rc = client(reporter);
  const money = (n: bigint, currency = "DEAI") => ({ currency, micros: n });

  // The marketplace's view before any stake: active but not eligible.
  let st = await client().getProviderStatus({ providerId: p.keyid });
  expect(st).toMatchObject({ status: ProviderStatus.ACTIVE, eligible: false, minStake: { micros: 1000n } });
  await pc.bond({ amount: money(1_000_000n), idempotencyKey: "b1" });
  await pc.bond({ amount: money(1_000_000n), idempotencyKey: "b1" }); // a retry: the first result
  await client(actorOf(q)).bond({ amount: money(500_000n), idempotencyKey: "b" });
  // Bystanders: with only p and q bonded, their two faults would be a mass failure (the guard).
  for (let i = 0; i < 5; i++) await parts.app.bond(newSigner().keyid, 1_000_000n, "b");
  st = await client().getProviderStatus({ providerId: p.keyid });
  expect(st).toMatchObject({ status: ProviderStatus.ACTIVE, eligible: true, bonded: { micros: 1_000_000n } });

  // The infraction comes after the bond: a penalty is a fraction of the stake held then.
  clock.advance(10_000);
  // Refusals with no state change.
  const before = await count("money_transfers");
  expect(await code(pc.bond({ amount: money(5n, "USD"), idempotencyKey: "x" }))).toBe(Code.InvalidArgument);
  expect(await code(pc.bond({ amount: money(0n), idempotencyKey: "x" }))).toBe(Code.InvalidArgument);
  expect(await code(pc.bond({ amount: money(7n), idempotencyKey: "b1" }))).toBe(Code.FailedPrecondition);
  expect(await code(pc.unbond({ amount: money(2_000_000n), idempotencyKey: "u" }))).toBe(Code.FailedPrecondition);
  expect(await code(client().getStake({ providerId: "not an actor" }))).toBe(Code.InvalidArgument);
  expect(await code(client().getEvidence({ evidenceId: "ab".repeat(32) }))).toBe(Code.NotFound);
  expect(await code(rc.submitEvidence({}))).toBe(Code.InvalidArgument);
  const at = clock.nowMs() - 5_000;
  const ev = evidenceOf(h.world, "unavailability", p, at);
  expect(await code(rc.submitEvidence(submitRequest(forge(ev, "flip"))))).toBe(Code.InvalidArgument);
  expect(await code(rc.submitEvidence(submitRequest(forge(ev, "stranger"))))).toBe(Code.InvalidArgument);
  const old = evidenceOf(h.world, "unavailability", p, clock.nowMs() - 3_700_000);
  expect(await code(rc.submitEvidence(submitRequest(old)))).toBe(Code.FailedPrecondition);
  expect(await count("money_transfers")).toBe(before);
  expect(await count("evidence")).toBe(0);

  // Unavailability: accepted once, jailed at once, the duplicate is the same record.
  const first = await rc.submitEvidence(submitRequest(ev));
  expect(first).toMatchObject({
    duplicate: false,
    evidence: { state: EvidenceState.ACCEPTED, providerId: p.keyid, reporterId: reporter.id },
  });
  const again = await client().submitEvidence(submitRequest(ev));
  expect(again.duplicate).toBe(true);
  expect(again.evidence!.evidenceId).toBe(first.evidence!.evidenceId);
  expect((await client().getEvidence({ evidenceId: first.evidence!.evidenceId })).evidence!.slashId).toBe(first.evidence!.slashId);
  st = await client().getProviderStatus({ providerId: p.keyid });
  expect(st).toMatchObject({ status: ProviderStatus.JAILED, eligible: false, slashId: first.evidence!.slashId });
  // Objective kinds cannot be vetoed; a stranger is not on the council.
  const member = h.council[0]!;
  const vetoOf = (slashId: string, evidenceId: string, reason = "operator outage") =>
    envelopeToProto(dsseSign(IN_TOTO_PAYLOAD_TYPE, vetoPayload({ slashId, evidenceId, member: member.keyid, reason }), [member]));
  const mc = client(actorOf(member));
  expect(
    await code(mc.veto({ slashId: first.evidence!.slashId, statement: vetoOf(first.evidence!.slashId, first.evidence!.evidenceId) })),
  ).toBe(Code.FailedPrecondition);

  // Lease breach against q: vetoed by the council (1 of 2) inside the window, with the signed statement.
  const lb = await rc.submitEvidence(submitRequest(leaseBreach(h.world, q.keyid, clock.nowMs() - 1000)));
  const lbSlash = lb.evidence!.slashId;
  expect(await code(client().veto({ slashId: lbSlash, statement: vetoOf(lbSlash, lb.evidence!.evidenceId) }))).toBe(Code.PermissionDenied);
  expect(await code(mc.veto({ slashId: lbSlash }))).toBe(Code.InvalidArgument);
  expect(await code(mc.veto({ slashId: lbSlash, reason: "other", statement: vetoOf(lbSlash, lb.evidence!.evidenceId) }))).toBe(
    Code.InvalidArgument,
  );
  const vetoed = await mc.veto({ slashId: lbSlash, reason: "operator outage", statement: vetoOf(lbSlash, lb.evidence!.evidenceId) });
  expect(vetoed).toMatchObject({ vetoes: 1, threshold: 1, slash: { state: SlashState.VETOED, vetoedBy: member.keyid } });
  expect((await client().getProviderStatus({ providerId: q.keyid })).status).toBe(ProviderStatus.ACTIVE);

  // The veto window: nothing moves before it ends, the slash applies once after.
  expect(await parts.app.applyDue()).toBe(0);
  clock.advance(61_000);
  // The service's tick (woken by the clock) or this call applies it: exactly once either way.
  await parts.app.applyDue();
  expect(await parts.app.applyDue()).toBe(0);
  const moved = await sql<{
    code: string;
  }>`select code from money_transfers where reference = ${first.evidence!.slashId} order by code`.execute(running.deps.db);
  expect(moved.rows.map((r) => r.code)).toEqual(["slash.repair", "slash.reporter", "slash.treasury"]);
  const stake = (await client().getStake({ providerId: p.keyid })).stake!;
  expect(stake).toMatchObject({ bonded: { micros: 990_000n }, slashedTotal: { micros: 10_000n } });
  expect((await auditBooks(running.deps.db as never)).problems).toEqual([]);

  // Anchoring: every record (jailed, applied; jailed, vetoed) gets a receipt that checks offline.
  while ((await parts.anchoring!.anchorPending()) > 0);
  const list = await client().listSlashes({});
  expect(list.slashes).toHaveLength(2);
  const events = list.slashes.flatMap((s) => s.records.map((r) => r.event)).sort();
  // The veto ends the jail its slash imposed (no other jail holds): a released record.
  expect(events).toEqual(["applied", "jailed", "jailed", "released", "vetoed"]);
  for (const s of list.slashes) {
    expect(s.receipt).toBeDefined();
    for (const r of s.records) {
      expect(r.receipt).toBeDefined();
      checkReceipt(r.receipt!, r.receipt!.index, h.verifier);
      const v = verifySlashRecord(
        {
          payloadType: r.envelope!.payloadType,
          payload: r.envelope!.payload,
          signatures: r.envelope!.signatures.map((x) => ({ keyid: x.keyid, sig: x.sig })),
        },
        { serviceKey: parts.app.serviceKey, council: { members: h.council.map((c) => c.keyid), threshold: 1 } },
      );
      expect(v.predicate.event).toBe(r.event);
    }
  }
  const applied = list.slashes.find((s) => s.state === SlashState.APPLIED)!;
  expect(applied).toMatchObject({ providerId: p.keyid, amount: { micros: 10_000n }, reporterId: reporter.id });
  expect((await client().listSlashes({ state: SlashState.VETOED })).slashes.map((s) => s.slashId)).toEqual([lbSlash]);
  const page1 = await client().listSlashes({ pageSize: 1 });
  expect(page1.nextPageToken).toBe("1");
  expect(await code(client().listSlashes({ pageToken: "x" }))).toBe(Code.InvalidArgument);
}, 120_000);

it("publishes slash_proposed and evidence_accepted on NATS", async () => {
  const bus = await EventBus.connect({
    url: natsUrl,
    prefix: h.env.natsPrefix,
    name: "rpc-test",
    logger: createLogger({ service: "test", level: "silent" }),
  });
  try {
    const proposed: string[] = [];
    const accepted: string[] = [];
    await bus.consume({
      domain: "slashing",
      durable: "rpc-test-proposed",
      subject: SlashingSubjects.slashProposed,
      schema: SlashProposedSchema,
      handler: async (e) => void proposed.push(e.slash!.slashId),
    });
    await bus.consume({
      domain: "slashing",
      durable: "rpc-test-accepted",
      subject: SlashingSubjects.evidenceAccepted,
      schema: EvidenceAcceptedSchema,
      handler: async (e) => void accepted.push(e.evidenceId),
    });
    running.deps.outbox.kick();
    for (let i = 0; i < 100 && (proposed.length < 2 || accepted.length < 2); i++) await new Promise((r) => setTimeout(r, 100));
    expect(proposed).toHaveLength(2);
    expect(accepted).toHaveLength(2);
  } finally {
    await bus.close();
  }
}, 60_000);

it("consumes DA attestations from NATS: an unavailable one is evidence once; available and unknown-sampler ones change nothing", async () => {
  const bus = await EventBus.connect({
    url: natsUrl,
    prefix: h.env.natsPrefix,
    name: "rpc-test-da",
    logger: createLogger({ service: "test", level: "silent" }),
  });
  try {
    const p = newSigner();
    await client(actorOf(p)).bond({ amount: { currency: "DEAI", micros: 100_000n }, idempotencyKey: "b" });
    clock.advance(5_000);
    const publish = async (env: ReturnType<typeof unavailability>, verdict: AttestationVerdict, eventId: string) => {
      if (env.kind !== "unavailability") throw new Error("unavailability only");
      const id = sha256Hex(env.attestation.payload);
      await bus.publish(
        "deai.da.attestation_issued",
        AttestationIssuedSchema,
        create(AttestationIssuedSchema, {
          eventId,
          occurredAt: timestampFromDate(clock.now()),
          attestationId: id,
          providerId: p.keyid,
          verdict,
          attestation: { attestationId: id, verdict, envelope: envelopeToProto(env.attestation) },
        }),
        eventId,
      );
      return id;
    };
    const at = clock.nowMs() - 2000;
    const e = unavailability(h.world, p.keyid, at, { variant: 7 });
    const stranger = { ...h.world, samplers: [newSigner(), newSigner(), newSigner()] };
    // The same attestation under two event ids (a re-publish), an available one, and one by unknown samplers.
    await publish(e, AttestationVerdict.UNAVAILABLE, "da/attestation/a1");
    await publish(e, AttestationVerdict.UNAVAILABLE, "da/attestation/a1-again");
    await publish(unavailability(h.world, p.keyid, at, { variant: 8 }), AttestationVerdict.AVAILABLE, "da/attestation/a2");
    await publish(unavailability(stranger, p.keyid, at, { variant: 9 }), AttestationVerdict.UNAVAILABLE, "da/attestation/a3");
    const evidenceOfP = async () =>
      Number(
        (await sql<{ n: string }>`select count(*) as n from evidence where provider_id = ${p.keyid}`.execute(running.deps.db)).rows[0]!.n,
      );
    const inbox = async () =>
      Number(
        (await sql<{ n: string }>`select count(*) as n from kit_inbox where consumer = 'slashing-da-attestations'`.execute(running.deps.db))
          .rows[0]!.n,
      );
    for (let i = 0; i < 200 && (await inbox()) < 4; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await inbox()).toBe(4);
    expect(await evidenceOfP()).toBe(1);
    const ev = await sql<{ reporter_id: string }>`select reporter_id from evidence where provider_id = ${p.keyid}`.execute(running.deps.db);
    // The reporter is the sampler whose round found the fault.
    expect(ev.rows[0]!.reporter_id).toBe(
      parseSamplingAttestation(e.kind === "unavailability" ? e.attestation.payload : new Uint8Array()).trigger!.sampler,
    );
    expect((await client().getProviderStatus({ providerId: p.keyid })).status).toBe(ProviderStatus.JAILED);
  } finally {
    await bus.close();
  }
}, 60_000);

const cliJs = new URL("../../../tools/cli/dist/main.js", import.meta.url).pathname;
function deai(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(
      process.execPath,
      [cliJs, ...args],
      { env: { PATH: process.env.PATH ?? "", DEAI_SLASHING_URL: base } },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

it("deai slash verify checks a listed record offline (signature, evidence, penalty, receipt) and refuses tampered ones", async () => {
  const dir = await mkdtemp(join(tmpdir(), "slash-verify-"));
  const listed = await deai("slash", "list", "--records-dir", dir, "--json");
  expect(listed.code).toBe(0);
  const files = (JSON.parse(listed.stdout) as { files: string[] }).files;
  const applied = files.find((f) => f.endsWith("-applied.json"))!;
  const vetoed = files.find((f) => f.endsWith("-vetoed.json"))!;
  const logKey = join(dir, "log.key");
  await writeFile(logKey, h.logKey);
  // Actor ids may start with "-": they are passed as --option=ID.
  const ok = await deai("slash", "verify", applied, "--log-key", logKey, `--service-key=${parts.app.serviceKey}`);
  expect(ok.stderr).toBe("");
  expect(ok.code).toBe(0);
  expect(ok.stdout).toMatch(/OK slash [0-9a-f]{32} \(applied\): unavailability/);
  expect(ok.stdout).toMatch(/penalty recomputed: 100 bps of 1000000 = 10000/);
  expect(ok.stdout).toMatch(/anchored: leaf [0-9a-f]{64} is entry \d+ of ledger.slashing-test\/log/);
  const pinned = [`--service-key=${parts.app.serviceKey}`];
  const councilArgs = h.council.map((c) => `--council=${c.keyid}`);
  expect((await deai("slash", "verify", vetoed, "--log-key", logKey, ...pinned, ...councilArgs, "--veto-threshold", "1")).stdout).toMatch(
    /vetoed by 1 of 2 council members \(threshold 1\)/,
  );
  // A vetoed record is checked against the pinned council: without it a usage error; k above the vetoes, or a council without the member, fail.
  expect((await deai("slash", "verify", vetoed, "--log-key", logKey, ...pinned)).code).toBe(2);
  const k2 = await deai("slash", "verify", vetoed, "--log-key", logKey, ...pinned, ...councilArgs, "--veto-threshold", "2");
  expect({ code: k2.code, stderr: k2.stderr }).toEqual({ code: 1, stderr: expect.stringMatching(/pinned threshold is 2 of 2/) as unknown });
  const others = await deai(
    "slash",
    "verify",
    vetoed,
    "--log-key",
    logKey,
    ...pinned,
    `--council=${newSigner().keyid}`,
    "--veto-threshold",
    "1",
  );
  expect({ code: others.code, stderr: others.stderr }).toEqual({
    code: 1,
    stderr: expect.stringMatching(/not on the pinned council/) as unknown,
  });

  const record = JSON.parse(await readFile(applied, "utf8")) as {
    envelope: { payload: string; signatures: { keyid: string; sig: string }[] };
    receipt: { tlogProof: string };
  };
  // The receipt alone, with the record beside it.
  const receiptFile = join(dir, "applied.tlog-proof");
  await writeFile(receiptFile, record.receipt.tlogProof);
  expect((await deai("slash", "verify", receiptFile, "--record", applied, "--log-key", logKey, ...pinned)).code).toBe(0);
  // A different penalty in the payload: the service signature no longer holds.
  const statement = JSON.parse(Buffer.from(record.envelope.payload, "base64").toString("utf8")) as {
    predicate: { penalty: { amount: string } };
  };
  statement.predicate.penalty.amount = "1";
  const tampered = { ...record, envelope: { ...record.envelope, payload: Buffer.from(JSON.stringify(statement)).toString("base64") } };
  await writeFile(join(dir, "tampered.json"), JSON.stringify(tampered));
  const t = await deai("slash", "verify", join(dir, "tampered.json"), "--log-key", logKey, ...pinned);
  expect(t.code).toBe(1);
  // Re-signed by a stranger: the pinned service key refuses it (the penalty recomputation would too).
  const stranger = newSigner();
  const resigned = dsseSign(IN_TOTO_PAYLOAD_TYPE, Buffer.from(JSON.stringify(statement)), [stranger]);
  await writeFile(join(dir, "resigned.json"), JSON.stringify({ envelope: dsseToJson(resigned), receipt: record.receipt }));
  const r = await deai("slash", "verify", join(dir, "resigned.json"), "--log-key", logKey, ...pinned);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/not signed by the slashing service key/);
  // Without a pinned service key: a usage error, whatever key the bundle names.
  expect((await deai("slash", "verify", applied, "--log-key", logKey)).code).toBe(2);
  // The right record with another record's receipt: the leaf differs.
  const jailed = JSON.parse(
    await readFile(
      files.find((f) => f.endsWith("-jailed.json"))!,
      "utf8",
    ),
  ) as { receipt: unknown };
  await writeFile(join(dir, "swapped.json"), JSON.stringify({ ...record, receipt: jailed.receipt }));
  const s = await deai("slash", "verify", join(dir, "swapped.json"), "--log-key", logKey, ...pinned);
  expect(s.code).toBe(1);
  expect(s.stderr).toMatch(/FAIL/);
  // A record signed by another key than the pinned service key.
  expect((await deai("slash", "verify", applied, "--log-key", logKey, `--service-key=${stranger.keyid}`)).code).toBe(1);
  // No receipt and no --unanchored: refused; usage errors exit 2.
  await writeFile(join(dir, "bare.json"), JSON.stringify(record.envelope));
  expect((await deai("slash", "verify", join(dir, "bare.json"), "--log-key", logKey, ...pinned)).code).toBe(1);
  expect((await deai("slash", "verify", join(dir, "bare.json"), "--unanchored", ...pinned)).code).toBe(0);
  expect((await deai("slash", "verify", applied)).code).toBe(2);
}, 60_000);
