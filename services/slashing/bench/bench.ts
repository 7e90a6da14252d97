// make bench-slashing: evidence verified and applied per second through the app layer against
// real Postgres (verify every signature, store, propose, apply after the veto window with its
// transfers), next to the same run's raw Ed25519 verification rate (@noble/curves, what
// packages/proofs verifies with). BENCH_EVIDENCE sets the count.
import { randomBytes } from "node:crypto";

import { ed25519 } from "@noble/curves/ed25519.js";

import { envInt, loadAverage, machineBlock, round, writeResult } from "@deai/bench";
import { auditBooks, ManualClock, migrate, openDatabase } from "@deai/kit";
import { DEFAULT_PENALTY_PARAMS, type EvidenceInput, type EvidenceKindName } from "@deai/proofs";
import { createTestDatabase } from "@deai/testkit";

import { Slashing } from "../src/app/slashing.js";
import { DEFAULT_TIMING } from "../src/domain/parameters.js";
import { migrations } from "../src/store/migrations.js";
import { evidenceOf, newSigner, newWorld } from "../test/evidence-factory.js";

const N = envInt("BENCH_EVIDENCE", 2000);
const load0 = loadAverage();
const w = newWorld();
const clock = new ManualClock(new Date("2026-03-01T00:00:00Z"));
const tdb = await createTestDatabase("slashing-bench");
const database = openDatabase<unknown>({ url: tdb.url, schema: "slashing", poolSize: 8 });
await migrate(database, migrations);
const app = new Slashing(
  database.db as never,
  clock,
  { currency: "DEAI", ...DEFAULT_TIMING, minStake: 0n, council: [], vetoThreshold: 1, trust: w.trust, penalty: DEFAULT_PENALTY_PARAMS },
  new Uint8Array(randomBytes(32)),
);
await app.init();
const providers = Array.from({ length: 50 }, () => newSigner());
for (const p of providers) await app.bond(p.keyid, 1_000_000_000n, "b");
const kinds: EvidenceKindName[] = ["unavailability", "equivocation", "lease-breach", "invalid-contribution"];
const now = clock.now().getTime();
const evidence: EvidenceInput[] = [];
// Distinct (provider, kind, window) so every one is a penalty; equivocation tombstones, so one per provider.
for (let i = 0; evidence.length < N; i++) {
  const p = providers[i % providers.length]!;
  const kind = kinds[Math.floor(i / providers.length) % 4]!;
  if (kind === "equivocation" && i >= providers.length * 4) continue;
  const win = Math.floor(i / (providers.length * 4));
  evidence.push(evidenceOf(w, kind === "equivocation" ? "lease-breach" : kind, p, now - (win + 1) * 3_600_000 - 1000, i));
}
const t0 = performance.now();
let next = 0;
await Promise.all(
  Array.from({ length: 4 }, async () => {
    while (next < evidence.length) await app.submitEvidence(evidence[next++]!, "bench");
  }),
);
const tSubmit = performance.now() - t0;
clock.advance(DEFAULT_TIMING.vetoWindowMs);
const t1 = performance.now();
const applied = await app.applyDue(N + 10);
const tApply = performance.now() - t1;
const audit = await auditBooks(database.db);
// Raw Ed25519 verification of the same message size, same process, right after.
const seed = ed25519.utils.randomSecretKey();
const pub = ed25519.getPublicKey(seed);
const msg = new Uint8Array(600);
const sig = ed25519.sign(msg, seed);
const V = 2000;
const t2 = performance.now();
for (let i = 0; i < V; i++) ed25519.verify(sig, msg, pub);
const rawPerS = V / ((performance.now() - t2) / 1000);
const result = {
  machine: machineBlock(load0),
  inputs: {
    evidence: N,
    providers: providers.length,
    submitters: 4,
    kinds: "unavailability (3 sampler signatures), lease-breach (2), invalid-contribution (2)",
  },
  submittedPerS: round(N / (tSubmit / 1000), 1),
  appliedPerS: round(applied / (tApply / 1000), 1),
  verifiedAndAppliedPerS: round(N / ((tSubmit + tApply) / 1000), 1),
  rawEd25519VerifyPerS: round(rawPerS, 1),
  signaturesPerEvidence: "2–3 (plus 1 for the record when signed)",
  booksProblems: audit.problems.length,
};
console.log(JSON.stringify(result, null, 2));
console.log("wrote", writeResult(new URL("../../../../..", import.meta.url).pathname, "slashing", result));
await database.close();
await tdb.drop();
