import { Kysely, Migrator, PostgresDialect, sql, type Migration, type MigrationProvider } from "kysely";
import pg from "pg";

import type { NonceStore } from "../signing/http-signature.js";

/** A service's database: a kysely instance whose connections default to the service's own schema. */
export interface Database<DB> {
  readonly db: Kysely<DB>;
  readonly schema: string;
  readonly pool: pg.Pool;
  close(): Promise<void>;
}

// int8 (bigint) columns come back as strings by default; our counters fit in 2^53.
pg.types.setTypeParser(20, (v: string) => {
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : BigInt(v);
});

/** Opens a pool whose search_path is `schema, public`, so repositories name tables plainly. */
export function openDatabase<DB>(opts: { url: string; schema: string; poolSize?: number }): Database<DB> {
  if (!/^[a-z_][a-z0-9_]*$/.test(opts.schema)) throw new Error(`invalid schema name ${opts.schema}`);
  const pool = new pg.Pool({
    connectionString: opts.url,
    max: opts.poolSize ?? 10,
    options: `-c search_path=${opts.schema},public`,
    // Fail fast when Postgres is unreachable instead of hanging readiness and requests.
    connectionTimeoutMillis: 5_000,
  });
  // A dropped idle connection must not crash the process; the pool replaces it.
  pool.on("error", () => {});
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
  return {
    db,
    schema: opts.schema,
    pool,
    close: () => db.destroy(),
  };
}

/** A forward-only migration: there is no `down`; fixes ship as new migrations. */
export type ForwardMigration = (db: Kysely<unknown>) => Promise<void>;

/** Migrations every service gets from the kit: nonce replay store, outbox, inbox. */
export const kitMigrations: Record<string, ForwardMigration> = {
  "0000_kit_001_nonces": async (db) => {
    await db.schema
      .createTable("kit_request_nonces")
      .addColumn("keyid", "text", (c) => c.notNull())
      .addColumn("nonce", "text", (c) => c.notNull())
      .addColumn("expires_at", "timestamptz", (c) => c.notNull())
      .addPrimaryKeyConstraint("kit_request_nonces_pk", ["keyid", "nonce"])
      .execute();
    await db.schema.createIndex("kit_request_nonces_expiry").on("kit_request_nonces").column("expires_at").execute();
  },
  "0000_kit_002_outbox": async (db) => {
    await db.schema
      .createTable("kit_outbox")
      .addColumn("id", "bigserial", (c) => c.primaryKey())
      .addColumn("event_id", "text", (c) => c.notNull().unique())
      .addColumn("subject", "text", (c) => c.notNull())
      .addColumn("payload", "bytea", (c) => c.notNull())
      .addColumn("headers", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
      .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
      .execute();
  },
  "0000_kit_003_inbox": async (db) => {
    await db.schema
      .createTable("kit_inbox")
      .addColumn("consumer", "text", (c) => c.notNull())
      .addColumn("event_id", "text", (c) => c.notNull())
      .addColumn("processed_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
      .addPrimaryKeyConstraint("kit_inbox_pk", ["consumer", "event_id"])
      .execute();
  },
};

/**
 * Runs the kit's and the service's migrations, in name order, in the service schema.
 * Safe to run from several replicas at once (kysely takes a lock); forward-only.
 * Returns the names of all migrations applied so far.
 */
export async function migrate(database: Database<unknown>, migrations: Record<string, ForwardMigration>): Promise<string[]> {
  const { db, schema } = database;
  await sql`create schema if not exists ${sql.id(schema)}`.execute(db).catch(async (e: unknown) => {
    // Two replicas racing to create the schema: the loser sees a unique violation.
    const exists = await sql<{ n: number }>`select count(*)::int as n from pg_namespace where nspname = ${schema}`.execute(db);
    if (exists.rows[0]?.n !== 1) throw e;
  });
  // The kit's migrations keep their own history table, so a kit release can add one without
  // reordering the history of a service that has already applied its own.
  const kit = await runMigrator(database, kitMigrations, "kit_migration");
  const own = await runMigrator(database, migrations, "kysely_migration");
  return [...kit, ...own];
}

async function runMigrator(database: Database<unknown>, migrations: Record<string, ForwardMigration>, table: string): Promise<string[]> {
  const all: Record<string, Migration> = {};
  for (const [name, up] of Object.entries(migrations)) all[name] = { up };
  const provider: MigrationProvider = { getMigrations: async () => all };
  const migrator = new Migrator({
    db: database.db,
    provider,
    migrationTableSchema: database.schema,
    migrationTableName: table,
    migrationLockTableName: `${table}_lock`,
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === "Error")?.migrationName;
    throw new Error(
      `migration ${failed ?? "(setup)"} failed in schema ${database.schema}: ${error instanceof Error ? error.message : JSON.stringify(error)}`,
      {
        cause: error,
      },
    );
  }
  return (await migrator.getMigrations()).filter((m) => m.executedAt !== undefined).map((m) => m.name);
}

/** Nonces shared by every replica of a service, in its schema. */
export class PostgresNonceStore implements NonceStore {
  private lastSweep = 0;
  constructor(private readonly db: Kysely<unknown>) {}

  async claim(keyid: string, nonce: string, expiresAt: Date): Promise<boolean> {
    const k = this.db as unknown as Kysely<{ kit_request_nonces: { keyid: string; nonce: string; expires_at: Date } }>;
    if (Date.now() - this.lastSweep > 60_000) {
      this.lastSweep = Date.now();
      await k.deleteFrom("kit_request_nonces").where("expires_at", "<", new Date()).execute();
    }
    const r = await k
      .insertInto("kit_request_nonces")
      .values({ keyid, nonce, expires_at: expiresAt })
      .onConflict((oc) =>
        // An expired row may be reused; a live one may not.
        oc.columns(["keyid", "nonce"]).doUpdateSet({ expires_at: expiresAt }).where("kit_request_nonces.expires_at", "<", new Date()),
      )
      .returning("keyid")
      .executeTakeFirst();
    return r !== undefined;
  }
}
