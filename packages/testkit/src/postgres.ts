import { randomBytes } from "node:crypto";

import pg from "pg";

/** Where the test databases are created; override with TEST_DATABASE_ADMIN_URL. */
export const adminUrl = process.env.TEST_DATABASE_ADMIN_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

export interface TestDatabase {
  readonly url: string;
  readonly name: string;
  drop(): Promise<void>;
}

/** A fresh, empty Postgres database (one per test file); `drop()` removes it. */
export async function createTestDatabase(label = "t"): Promise<TestDatabase> {
  const name = `deai_${label
    .replace(/[^a-z0-9]/gi, "")
    .toLowerCase()
    .slice(0, 20)}_${randomBytes(5).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  try {
    await admin.connect();
  } catch (e) {
    throw new Error(`test Postgres is not reachable at ${adminUrl} (run 'make services'): ${(e as Error).message}`, { cause: e });
  }
  try {
    await admin.query(`create database "${name}" template template0`);
  } finally {
    await admin.end();
  }
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    name,
    drop: async () => {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      try {
        await c.query(`drop database if exists "${name}" with (force)`);
      } finally {
        await c.end();
      }
    },
  };
}
