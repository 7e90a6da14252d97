/**
 * "No state change", defined generically: a digest of every row of every table in the
 * service's Postgres schema, per table, so a difference names the tables that changed.
 * The kit's nonce and inbox tables are left out by default: claiming a nonce is what a
 * refused-but-authentic request is allowed to do.
 */
import { createHash } from "node:crypto";

import pg from "pg";

/** Table name → digest of its rows. */
export type StateSnapshot = Readonly<Record<string, string>>;

// kit_schedules records the service's own loops (last run, leader lease), which move with time.
export const KIT_BOOKKEEPING_TABLES = ["kit_request_nonces", "kit_inbox", "kit_schedules"] as const;

/** A snapshot function over `schema` in the database at `url`. */
export function postgresSnapshot(opts: { url: string; schema: string; exclude?: readonly string[] }): () => Promise<StateSnapshot> {
  const exclude = new Set(opts.exclude ?? KIT_BOOKKEEPING_TABLES);
  return async () => {
    const client = new pg.Client({ connectionString: opts.url });
    await client.connect();
    try {
      const tables = await client.query<{ table_name: string }>(
        "select table_name from information_schema.tables where table_schema = $1 and table_type = 'BASE TABLE' order by table_name",
        [opts.schema],
      );
      const out: Record<string, string> = {};
      for (const { table_name: t } of tables.rows) {
        if (exclude.has(t)) continue;
        const ident = `${client.escapeIdentifier(opts.schema)}.${client.escapeIdentifier(t)}`;
        const rows = await client.query<{ r: string }>(`select t::text as r from ${ident} t order by 1`);
        const h = createHash("sha256");
        for (const row of rows.rows) h.update(row.r).update("\n");
        out[t] = `${rows.rows.length}:${h.digest("hex").slice(0, 16)}`;
      }
      return out;
    } finally {
      await client.end();
    }
  };
}

/** The tables whose digest differs between two snapshots (added and removed tables too). */
export function changedTables(before: StateSnapshot, after: StateSnapshot): string[] {
  const names = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...names].filter((n) => before[n] !== after[n]).map((n) => `${n} (${before[n] ?? "absent"} → ${after[n] ?? "absent"})`);
}
