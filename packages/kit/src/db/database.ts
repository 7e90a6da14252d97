import { Kysely, Migrator, sql, type Migration, type MigrationProvider } from "kysely";
import pg from "pg";

import { observePool, TracedPostgresDialect } from "./db-telemetry.js";
import type { NonceStore } from "../signing/http-signature.js";
import { systemClock, type Clock } from "../time/clock.js";

/** A service's database: a kysely instance whose connections default to the service's own schema. */
export interface Database<DB> {
  readonly db: Kysely<DB>;
  readonly schema: string;
  readonly pool: pg.Pool;
  close(): Promise<void>;
}

// int8 columns (and int8[]) always come back as bigint: one type per column, whatever its
// value, so code cannot work in tests with small numbers and break past 2^53. pg's default
// is a string; count(*) is int8 too, so cast it (count(*)::int) where a number is wanted.
const INT8 = pg.types.builtins.INT8;
// Not in pg-types' enum of scalar types.
const INT8_ARRAY = 1016 as typeof INT8;
const parseInt8Array = pg.types.getTypeParser(INT8_ARRAY);
pg.types.setTypeParser(INT8, (v: string) => BigInt(v));
pg.types.setTypeParser(INT8_ARRAY, (v: string) => (parseInt8Array(v) as (string | null)[]).map((x) => (x === null ? null : BigInt(x))));

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
  // Nor a dropped checked-out one: pg-pool takes its error listener off a client while it is
  // checked out, so a backend that dies between two queries of a transaction (the code awaiting
  // a fetch or an S3 read) emitted "error" with no listener, an uncaught exception that took a
  // whole service down. The error is not lost: the client is no longer queryable, so its next
  // query fails for whoever holds it, and the pool discards it on release.
  pool.on("connect", (client) => client.on("error", () => {}));
  const db = new Kysely<DB>({ dialect: new TracedPostgresDialect({ pool }, opts.schema) });
  const unobserve = observePool(pool, opts.schema);
  return {
    db,
    schema: opts.schema,
    pool,
    close: () => (unobserve(), db.destroy()),
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
  // One row per scheduled loop: its last run (so a restart keeps the cadence) and, for loops
  // with leadership, the lease (holder and expiry) that lets one replica run it.
  "0000_kit_004_schedules": async (db) => {
    await db.schema
      .createTable("kit_schedules")
      .addColumn("name", "text", (c) => c.primaryKey())
      .addColumn("last_started", "timestamptz")
      .addColumn("last_finished", "timestamptz")
      .addColumn("last_error", "text")
      .addColumn("leader", "text")
      .addColumn("lease_expires", "timestamptz")
      .execute();
  },
  // The inbox prune deletes by age.
  "0000_kit_005_inbox_processed_at": async (db) => {
    await db.schema.createIndex("kit_inbox_processed_at").on("kit_inbox").column("processed_at").execute();
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

interface PendingClaim {
  readonly keyid: string;
  readonly nonce: string;
  readonly expiresAt: Date;
  readonly resolve: (fresh: boolean) => void;
  readonly reject: (e: unknown) => void;
}

/**
 * Nonces shared by every replica of a service, in its schema.
 *
 * Claims made while an earlier write is in flight are coalesced into one multi-row INSERT
 * ... ON CONFLICT (group commit): under load one statement and one commit claim many
 * nonces, instead of one round trip and one WAL flush per request. Each claim still
 * resolves only after its row committed, and a nonce claimed twice in one group is fresh
 * for the first caller only.
 */
export class PostgresNonceStore implements NonceStore {
  private lastSweep = 0;
  private queue: PendingClaim[] = [];
  private inflight = 0;

  /**
   * @param maxBatch most nonces per statement. @default 1000
   * @param concurrency claim statements in flight at once. @default 2
   */
  constructor(
    private readonly db: Kysely<unknown>,
    private readonly maxBatch = 1000,
    private readonly concurrency = 2,
    private readonly clock: Clock = systemClock,
  ) {}

  claim(keyid: string, nonce: string, expiresAt: Date): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.queue.push({ keyid, nonce, expiresAt, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inflight < this.concurrency && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      this.inflight++;
      this.write(batch)
        .catch((e: unknown) => batch.forEach((c) => c.reject(e)))
        .finally(() => {
          this.inflight--;
          this.pump();
        });
    }
  }

  private async write(batch: readonly PendingClaim[]): Promise<void> {
    const now = this.clock.now();
    if (now.getTime() - this.lastSweep > 60_000) {
      this.lastSweep = now.getTime();
      await sql`delete from kit_request_nonces where expires_at < ${now}`.execute(this.db);
    }
    // One row per distinct (keyid, nonce): a statement may not touch a row twice. Sorted, so
    // concurrent statements (other replicas) take the unique-index entries in one order.
    const first = new Map<string, PendingClaim>();
    for (const c of batch) {
      const key = `${c.keyid} ${c.nonce}`;
      if (!first.has(key)) first.set(key, c);
    }
    const rows = [...first.values()].sort((a, b) =>
      a.keyid !== b.keyid ? (a.keyid < b.keyid ? -1 : 1) : a.nonce < b.nonce ? -1 : a.nonce > b.nonce ? 1 : 0,
    );
    // An expired row may be reused; a live one may not.
    const r = await sql<{ keyid: string; nonce: string }>`
      insert into kit_request_nonces (keyid, nonce, expires_at)
      select * from unnest(${rows.map((c) => c.keyid)}::text[], ${rows.map((c) => c.nonce)}::text[], ${rows.map((c) => c.expiresAt)}::timestamptz[])
      on conflict (keyid, nonce) do update set expires_at = excluded.expires_at
        where kit_request_nonces.expires_at < ${now}
      returning keyid, nonce`.execute(this.db);
    const claimed = new Set(r.rows.map((x) => `${x.keyid} ${x.nonce}`));
    for (const c of batch) {
      const key = `${c.keyid} ${c.nonce}`;
      c.resolve(first.get(key) === c && claimed.has(key));
    }
  }
}
