/**
 * A Postgres backend terminated under a checked-out connection must not crash the process.
 * pg-pool removes its error listener from a client while it is checked out, so a connection
 * that dies between two queries of a transaction (while the code awaits something else: a
 * fetch, a read from S3) emits "error" with no listener: an uncaught exception that took
 * down a whole service (seen as "read ECONNRESET" in the DA sampler). The child process
 * below runs the kit's built openDatabase, holds a transaction open, and waits; the test
 * terminates that backend; the child must see its next query fail, then serve a new query
 * from the pool, and exit 0.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";

import { createTestDatabase, type TestDatabase } from "@deai/testkit";
import pg from "pg";

const builtKit = new URL("../dist/db/database.js", import.meta.url).pathname;

const child = `
import { sql } from "kysely";
import { openDatabase } from ${JSON.stringify(builtKit)};
const database = openDatabase({ url: process.argv[1], schema: "public", poolSize: 2 });
const say = (line) => process.stdout.write(line + "\\n");
let step;
const next = new Promise((r) => (step = r));
process.stdin.on("data", () => step());
let failed = "";
try {
  await database.db.transaction().execute(async (trx) => {
    const { rows } = await sql\`select pg_backend_pid() as pid\`.execute(trx);
    say("pid " + rows[0].pid);
    await next; // the backend is terminated while nothing is in flight on this connection
    await new Promise((r) => setTimeout(r, 300));
    await sql\`select 1\`.execute(trx);
  });
} catch (e) {
  failed = e.message;
}
say("transaction failed: " + failed);
const { rows } = await sql\`select 41 + 1 as answer\`.execute(database.db);
say("answer " + rows[0].answer);
await database.close();
`;

let tdb: TestDatabase;
beforeAll(async () => {
  tdb = await createTestDatabase("dbterm");
});
afterAll(async () => {
  await tdb?.drop();
});

it("a backend terminated under a checked-out connection fails that transaction, not the process", async () => {
  if (!existsSync(builtKit)) throw new Error(`${builtKit} does not exist: build the kit first (npx turbo run build --filter=@deai/kit)`);
  const proc = spawn(process.execPath, ["--input-type=module", "-e", child, tdb.url], {
    cwd: new URL("..", import.meta.url).pathname,
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stderr = "";
  proc.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const lines: string[] = [];
  const admin = new pg.Client({ connectionString: tdb.url });
  await admin.connect();
  try {
    for await (const line of createInterface({ input: proc.stdout })) {
      lines.push(line);
      const pid = /^pid (\d+)$/.exec(line)?.[1];
      if (pid) {
        await admin.query("select pg_terminate_backend($1)", [Number(pid)]);
        proc.stdin.end("go\n");
      }
    }
  } finally {
    await admin.end();
  }
  const code = await new Promise<number | null>((r) => (proc.exitCode !== null ? r(proc.exitCode) : proc.on("exit", r)));
  expect({ code, stderr: code === 0 ? "" : stderr }).toEqual({ code: 0, stderr: "" });
  expect(lines[1]).toMatch(/^transaction failed: .+/);
  expect(lines[2]).toBe("answer 42");
}, 60_000);
