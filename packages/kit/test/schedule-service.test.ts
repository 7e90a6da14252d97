/**
 * The scheduler in the service shape: loops registered in create() start once the app is
 * created, and on shutdown the run in flight finishes before the app stops and the database
 * closes. The service clock comes from startService's options.
 */
import { sql } from "kysely";
import pg from "pg";

import { ManualClock, createLogger, startService, type RunContext, type ScheduledLoop } from "@deai/kit";
import { createTestEnv, type TestEnv } from "@deai/testkit";

const logger = createLogger({ service: "schedule-service-test", level: "silent" });
let env: TestEnv;

beforeAll(async () => {
  env = await createTestEnv("schedsvc");
});
afterAll(async () => {
  await env?.close();
});

it("starts loops after create, finishes the run in flight on stop before the app stops and Postgres closes", async () => {
  const clock = new ManualClock(Date.UTC(2026, 5, 1));
  const events: string[] = [];
  let gate: (() => void) | undefined;
  let loop: ScheduledLoop | undefined;
  let runsDuringCreate = -1;
  const svc = await startService(
    {
      name: "sched-demo",
      version: "0",
      migrations: {
        "0001_ticks": async (db) => {
          await db.schema.createTable("ticks").addColumn("at", "timestamptz").execute();
        },
      },
      create: async ({ scheduler, db, clock: depsClock }) => {
        expect(depsClock).toBe(clock);
        expect(scheduler.clock).toBe(clock);
        loop = scheduler.register({
          name: "demo.tick",
          intervalMs: 3600_000,
          run: async (ctx: RunContext) => {
            events.push(`run ${ctx.trigger}`);
            if (ctx.trigger === "kick") await new Promise<void>((r) => (gate = r));
            // Uses the database after shutdown began: it must still be open.
            await sql`insert into ticks (at) values (${ctx.startedAt})`.execute(db);
            events.push(`end ${ctx.trigger}`);
          },
        });
        await new Promise((r) => setTimeout(r, 100));
        runsDuringCreate = loop.stats.runs;
        return { bindings: [], stop: async () => void events.push("app stop") };
      },
    },
    env.config(),
    { logger, clock },
  );
  expect(runsDuringCreate).toBe(0);
  const deadline = Date.now() + 5000;
  while (loop!.stats.runs < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  expect(events).toEqual(["run schedule", "end schedule"]);
  loop!.kick();
  while (!gate && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  const stopping = svc.stop();
  await new Promise((r) => setTimeout(r, 100));
  expect(events).toEqual(["run schedule", "end schedule", "run kick"]);
  gate!();
  expect(await stopping).toBe(true);
  expect(events).toEqual(["run schedule", "end schedule", "run kick", "end kick", "app stop"]);
  // Both runs committed, and the last one is recorded for the next start's cadence.
  const c = new pg.Client({ connectionString: env.database.url });
  await c.connect();
  try {
    const ticks = await c.query<{ n: number }>("select count(*)::int as n from sched_demo.ticks");
    expect(ticks.rows[0]?.n).toBe(2);
    const row = await c.query<{ last_started: Date }>("select last_started from sched_demo.kit_schedules where name = 'demo.tick'");
    expect(row.rows[0]?.last_started.getTime()).toBe(clock.nowMs());
    const loops = await c.query<{ name: string }>("select name from sched_demo.kit_schedules order by name");
    // The kit's own inbox prune loop ran too (leader, persisted); the relay is not persisted.
    expect(loops.rows.map((r) => r.name)).toEqual(["demo.tick", "kit.inbox.prune"]);
  } finally {
    await c.end();
  }
});
