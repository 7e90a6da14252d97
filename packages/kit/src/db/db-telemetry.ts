/**
 * Database spans and metrics, made by the kit's one database wrapper (no require hooks: the
 * services are ESM). Every statement kysely sends gets a CLIENT span `{operation} {table}`
 * with `db.system.name=postgresql`, `db.operation.name`, `db.collection.name`,
 * `db.query.summary`, `db.query.text` and `db.namespace`, and one
 * `db.client.operation.duration` point. Spans are made only inside a recording span (a
 * request, a consumed event, a scheduled run): pool warm-up, migrations and the scheduler's
 * own bookkeeping make none.
 *
 * The query text is safe to export: kysely sends every value as a bind parameter (`$1`),
 * so the text holds none; literals written into raw SQL are replaced by `?` all the same,
 * and the text is cut at 2 KiB.
 *
 * The pool: `db.client.connection.count` (state idle / used) and
 * `db.client.connection.pending_requests`, observed from pg's Pool counters at collection.
 */
import { SpanKind, SpanStatusCode, type Attributes, type Histogram, type ObservableResult } from "@opentelemetry/api";
import { PostgresDialect, type CompiledQuery, type DatabaseConnection, type Driver } from "kysely";
import type pg from "pg";

import { inRecordingSpan, meter, tracer } from "../telemetry.js";

const MAX_TEXT = 2048;
const OPERATION = /^\s*(?:with\b[\s\S]*?\)\s*)?([a-z]+)/i;
const COLLECTION = /\b(?:from|into|update|join|table)\s+("?[a-z_][a-z0-9_]*"?(?:\."?[a-z_][a-z0-9_]*"?)?)/i;

/** What a statement does, for span names and attributes: operation, table, summary, sanitized text. */
export function describeQuery(sql: string): { operation: string; collection?: string; summary: string; text: string } {
  const operation = (OPERATION.exec(sql)?.[1] ?? "query").toUpperCase();
  const collection = COLLECTION.exec(sql)?.[1]?.replace(/"/g, "");
  const text = sql
    .replace(/'(?:[^']|'')*'/g, "?")
    .replace(/\s+/g, " ")
    .trim();
  return {
    operation,
    ...(collection ? { collection } : {}),
    summary: collection ? `${operation} ${collection}` : operation,
    text: text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT)}…` : text,
  };
}

let durationHistogram: Histogram | undefined;
const operationDuration = (): Histogram =>
  (durationHistogram ??= meter().createHistogram("db.client.operation.duration", {
    description: "Duration of database statements",
    unit: "s",
    advice: { explicitBucketBoundaries: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] },
  }));

const traced = new WeakSet<DatabaseConnection>();

function traceConnection(conn: DatabaseConnection, namespace: string): DatabaseConnection {
  if (traced.has(conn)) return conn;
  traced.add(conn);
  const execute = conn.executeQuery.bind(conn);
  conn.executeQuery = async <R>(q: CompiledQuery) => {
    const started = performance.now();
    const d = describeQuery(q.sql);
    const attrs: Attributes = { "db.system.name": "postgresql", "db.operation.name": d.operation };
    const span = inRecordingSpan()
      ? tracer().startSpan(d.summary, {
          kind: SpanKind.CLIENT,
          attributes: {
            ...attrs,
            "db.namespace": namespace,
            "db.query.summary": d.summary,
            "db.query.text": d.text,
            ...(d.collection ? { "db.collection.name": d.collection } : {}),
          },
        })
      : undefined;
    try {
      const r = await execute<R>(q);
      return r;
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      const status = typeof code === "string" ? code : "error";
      attrs["error.type"] = status;
      span?.setAttribute("db.response.status_code", status);
      span?.setStatus({ code: SpanStatusCode.ERROR, message: (e as Error).message });
      throw e;
    } finally {
      span?.end();
      operationDuration().record((performance.now() - started) / 1000, attrs);
    }
  };
  return conn;
}

/** PostgresDialect whose connections trace and time every statement (see the module comment). */
export class TracedPostgresDialect extends PostgresDialect {
  constructor(
    config: ConstructorParameters<typeof PostgresDialect>[0],
    private readonly namespace: string,
  ) {
    super(config);
  }

  override createDriver(): Driver {
    const driver = super.createDriver();
    const acquire = driver.acquireConnection.bind(driver);
    driver.acquireConnection = async () => traceConnection(await acquire(), this.namespace);
    return driver;
  }
}

const pools = new Map<pg.Pool, string>();
let poolGaugesRegistered = false;

/** Observes `pool` in the connection metrics under `name` until the returned function is called. */
export function observePool(pool: pg.Pool, name: string): () => void {
  pools.set(pool, name);
  if (!poolGaugesRegistered) {
    poolGaugesRegistered = true;
    const m = meter();
    m.createObservableUpDownCounter("db.client.connection.count", {
      description: "Connections of the pool, by state (idle, used)",
      unit: "{connection}",
    }).addCallback((r: ObservableResult) => {
      for (const [p, n] of pools) {
        r.observe(p.idleCount, { "db.client.connection.state": "idle", "db.client.connection.pool.name": n });
        r.observe(p.totalCount - p.idleCount, { "db.client.connection.state": "used", "db.client.connection.pool.name": n });
      }
    });
    m.createObservableUpDownCounter("db.client.connection.pending_requests", {
      description: "Requests waiting for a connection of the pool",
      unit: "{request}",
    }).addCallback((r: ObservableResult) => {
      for (const [p, n] of pools) r.observe(p.waitingCount, { "db.client.connection.pool.name": n });
    });
  }
  return () => void pools.delete(pool);
}
