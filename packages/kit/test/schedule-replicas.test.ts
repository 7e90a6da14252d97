/**
 * Two replica processes share one leader-only loop: exactly one runs it, kill -9 of the
 * leader hands over within the lease, and no two runs ever overlap (each run records its
 * start and end in Postgres, and the test checks the intervals).
 */
import { existsSync } from "node:fs";

import pg from "pg";

import { migrate, openDatabase } from "@deai/kit";
import { createTestDatabase, spawnService, type ServiceProcess, type TestDatabase } from "@deai/testkit";

const replicaJs = new URL("./fixtures/scheduled-replica.mjs", import.meta.url).pathname;
const kitDist = new URL("../dist/index.js", import.meta.url).pathname;
const LEASE_MS = 1500;
const INTERVAL_MS = 100;
const RUN_MS = 40;

interface Run {
  holder: string;
  started_at: Date;
  ended_at: Date | null;
}

let tdb: TestDatabase;
let client: pg.Client;
const procs: ServiceProcess[] = [];

beforeAll(async () => {
  if (!existsSync(kitDist)) throw new Error(`${kitDist} does not exist: build the kit first (npx tsc -p packages/kit/tsconfig.build.json)`);
  tdb = await createTestDatabase("replicas");
  // Kit migrations (kit_schedules) in the replicas' schema, before either starts.
  const d = openDatabase<unknown>({ url: tdb.url, schema: "replicas" });
  await migrate(d, {});
  await d.close();
  client = new pg.Client({ connectionString: tdb.url });
  await client.connect();
  await client.query(
    "create table public.replica_runs (id bigserial primary key, holder text not null, started_at timestamptz not null, ended_at timestamptz)",
  );
});
afterAll(async () => {
  for (const p of procs) if (p.proc.exitCode === null && p.proc.signalCode === null) p.kill("SIGKILL");
  await Promise.all(procs.map((p) => p.exited));
  await client?.end();
  await tdb?.drop();
});

const runs = async (): Promise<Run[]> =>
  (await client.query<Run>("select holder, started_at, ended_at from public.replica_runs order by started_at, id")).rows;
const dbNow = async (): Promise<Date> => (await client.query<{ t: Date }>("select clock_timestamp() as t")).rows[0]!.t;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

it("runs on one replica; kill -9 of the leader hands over within the lease; runs never overlap", async () => {
  const spawnReplica = async (holder: string): Promise<ServiceProcess> => {
    const p = await spawnService(replicaJs, {
      DATABASE_URL: tdb.url,
      HOLDER: holder,
      LEASE_MS: String(LEASE_MS),
      INTERVAL_MS: String(INTERVAL_MS),
      RUN_MS: String(RUN_MS),
      LOG_LEVEL: "warn",
    });
    procs.push(p);
    return p;
  };
  const [a, b] = await Promise.all([spawnReplica("a"), spawnReplica("b")]);
  // Both run for a while: only one of them may have run the loop.
  await sleep(2000);
  const early = await runs();
  expect(early.length).toBeGreaterThanOrEqual(5);
  const holders = new Set(early.map((r) => r.holder));
  expect(holders.size).toBe(1);
  const leader = [...holders][0]!;
  const follower = leader === "a" ? "b" : "a";
  const leaderProc = leader === "a" ? a : b;
  const followerProc = leader === "a" ? b : a;

  leaderProc.kill("SIGKILL");
  await leaderProc.exited;
  const killedAt = await dbNow();
  let handoverMs = -1;
  const waitUntil = Date.now() + LEASE_MS * 3;
  while (Date.now() < waitUntil) {
    const first = (await runs()).find((r) => r.holder === follower);
    if (first) {
      handoverMs = first.started_at.getTime() - killedAt.getTime();
      break;
    }
    await sleep(20);
  }
  expect(handoverMs).toBeGreaterThanOrEqual(0);
  // The dead leader's lease was renewed at most leaseMs/3 before the kill, and the follower
  // tries every leaseMs/5: handover comes within the lease plus one try (and scheduling slack).
  expect(handoverMs).toBeLessThanOrEqual(LEASE_MS + LEASE_MS / 5 + 300);
  await sleep(500);

  followerProc.kill("SIGTERM");
  expect(await followerProc.exited).toBe(0);
  const all = await runs();
  // The follower never ran while the leader lived.
  expect(all.filter((r) => r.holder === follower).every((r) => r.started_at >= killedAt)).toBe(true);
  expect(all.filter((r) => r.holder === follower).length).toBeGreaterThanOrEqual(3);
  // Only the run cut by kill -9 is open; a graceful stop finished the follower's last run.
  const open = all.filter((r) => r.ended_at === null);
  expect(open.length).toBeLessThanOrEqual(1);
  expect(open.every((r) => r.holder === leader)).toBe(true);
  // No two runs overlap: each ends (or, cut by the kill, dies) before the next starts.
  for (let i = 1; i < all.length; i++) {
    const prev = all[i - 1]!;
    const end = prev.ended_at ?? killedAt;
    expect(all[i]!.started_at.getTime()).toBeGreaterThanOrEqual(end.getTime());
  }
  console.log(`handover after kill -9: ${handoverMs} ms (lease ${LEASE_MS} ms); ${all.length} runs, none overlapping`);
}, 30_000);
