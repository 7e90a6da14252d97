import { sql, type Kysely, type Transaction } from "kysely";

import { NotFoundError } from "../errors.js";
import type { StateMachine } from "./state-machine.js";

export interface TransitionOptions<S extends string> {
  table: string;
  /** Columns that identify the row, e.g. `{ upload_id: id }`. */
  key: Readonly<Record<string, unknown>>;
  to: S;
  /**
   * States the row may be in; a subset of the machine's sources of `to`.
   * @default every source of `to`
   */
  from?: readonly S[];
  /** Other columns to set in the same UPDATE. */
  set?: Readonly<Record<string, unknown>>;
  /** @default "state" */
  column?: string;
}

/**
 * Moves one row to `to` with `UPDATE … SET state = to WHERE key AND state IN (from)` and
 * returns the updated row. When no row matched, reads the row once to say why: NotFound,
 * or the machine's precise FailedPrecondition naming the state the row is in.
 */
export async function transitionRow<S extends string, Row = Record<string, unknown>>(
  db: Kysely<any> | Transaction<any>, // eslint-disable-line @typescript-eslint/no-explicit-any
  machine: StateMachine<S>,
  opts: TransitionOptions<S>,
): Promise<Row> {
  const column = opts.column ?? "state";
  const allowed = opts.from ?? machine.sourcesOf(opts.to);
  for (const f of allowed) machine.assert(f, opts.to);
  const id = Object.values(opts.key).map(String).join("/");
  if (allowed.length > 0) {
    let q = db
      .updateTable(opts.table)
      .set({ ...(opts.set ?? {}), [column]: opts.to })
      .where(column, "in", [...allowed]);
    for (const [k, v] of Object.entries(opts.key)) q = q.where(k, "=", v);
    const row = (await q.returningAll().executeTakeFirst()) as Row | undefined;
    if (row) return row;
  }
  let s = db.selectFrom(opts.table).select(sql.ref(column).as("state"));
  for (const [k, v] of Object.entries(opts.key)) s = s.where(k, "=", v);
  const current = (await s.executeTakeFirst()) as { state: S } | undefined;
  if (!current) throw new NotFoundError(`${machine.entity} ${id} not found`);
  throw machine.illegal(current.state, opts.to, id);
}
