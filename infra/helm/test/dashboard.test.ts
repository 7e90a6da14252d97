// The Grafana dashboard shipped with the chart (charts/deai/dashboards/deai.json): it parses,
// every PromQL expression uses only the Prometheus series (and labels) the services export
// (the metric-name table agreed for issue 11, copied below), every family the SRE needs is on
// it, and the chart's ConfigMap carries the file unchanged.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";

import { parseAllDocuments } from "yaml";

const run = promisify(execFile);
const root = new URL("../../../", import.meta.url).pathname;
const dashboardPath = `${root}charts/deai/dashboards/deai.json`;

/** Series -> its labels (OTel attributes, dots as underscores), from the metric-name table. */
const histogram = (base: string, labels: string[]): [string, string[]][] =>
  ["_bucket", "_sum", "_count"].map((s) => [`${base}${s}`, s === "_bucket" ? [...labels, "le"] : labels]);
const SERIES = new Map<string, string[]>([
  ...histogram("rpc_server_call_duration_seconds", ["rpc_system", "rpc_service", "rpc_method", "rpc_grpc_status_code"]),
  ...histogram("http_server_request_duration_seconds", ["http_request_method", "http_route", "http_response_status_code"]),
  ["db_client_connection_count", ["db_client_connection_state", "db_client_connection_pool_name"]],
  ["db_client_connection_pending_requests", ["db_client_connection_pool_name"]],
  ...histogram("db_client_operation_duration_seconds", ["db_system_name", "db_operation_name"]),
  ["deai_outbox_backlog", []],
  ["deai_events_consumer_lag", ["durable"]],
  ["deai_events_consumer_redeliveries_total", ["durable"]],
  ["deai_events_dead_lettered_total", []],
  ["deai_schedule_runs_total", ["schedule"]],
  ["deai_schedule_failures_total", ["schedule"]],
  ...histogram("deai_schedule_duration_seconds", ["schedule"]),
  ["deai_ledger_tree_size", []],
  ["deai_ledger_integration_lag_seconds", []],
  ["deai_ledger_checkpoint_age_seconds", []],
  ["deai_ingestion_received_bytes_total", []],
  ["deai_ingestion_served_bytes_total", []],
  ["deai_ingestion_active_uploads", []],
  ["deai_ingestion_reconstructions_total", []],
]);
/** Labels Prometheus adds to every scraped series (ServiceMonitor target labels). */
const TARGET_LABELS = ["job", "namespace", "pod", "instance", "service", "container", "endpoint"];

/** What the SRE must find on the dashboard (issue 11, "Metrics"). */
const REQUIRED = [
  "rpc_server_call_duration_seconds_count",
  "rpc_server_call_duration_seconds_bucket",
  "db_client_connection_count",
  "db_client_connection_pending_requests",
  "deai_outbox_backlog",
  "deai_events_consumer_lag",
  "deai_events_consumer_redeliveries_total",
  "deai_events_dead_lettered_total",
  "deai_ledger_tree_size",
  "deai_ledger_integration_lag_seconds",
  "deai_ledger_checkpoint_age_seconds",
  "deai_ingestion_received_bytes_total",
  "deai_ingestion_served_bytes_total",
  "deai_ingestion_active_uploads",
  "deai_ingestion_reconstructions_total",
];

const KEYWORDS = new Set([
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "and",
  "or",
  "unless",
  "bool",
  "offset",
  "inf",
  "nan",
]);

/** The series names and label names a PromQL expression uses. */
function promqlNames(expr: string): { series: string[]; labels: string[] } {
  const labels: string[] = [];
  let rest = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  // Label matchers: {name op "value", ...}
  rest = rest.replace(/\{([^}]*)\}/g, (_, body: string) => {
    for (const m of body.matchAll(/([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)/g)) labels.push(m[1]!);
    return " ";
  });
  // Grouping: by (...), without (...), on (...), ignoring (...), group_left (...)
  rest = rest.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g, (_, _kw: string, body: string) => {
    for (const l of body
      .split(",")
      .map((x) => x.trim())
      .filter(Boolean))
      labels.push(l);
    return " ";
  });
  rest = rest.replace(/\[[^\]]*\]/g, " ").replace(/\$\w+/g, " ");
  const series = [...rest.matchAll(/([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?/g)]
    .filter((m) => m[2] === undefined && !KEYWORDS.has(m[1]!.toLowerCase()))
    .map((m) => m[1]!);
  return { series, labels };
}

interface Panel {
  type: string;
  title: string;
  targets?: { expr: string }[];
  panels?: Panel[];
}
const dashboard = JSON.parse(readFileSync(dashboardPath, "utf8")) as {
  uid: string;
  panels: Panel[];
  templating: { list: { query?: unknown }[] };
};
const exprs = (function collect(panels: Panel[]): { title: string; expr: string }[] {
  return panels.flatMap((p) => [...(p.targets ?? []).map((t) => ({ title: p.title, expr: t.expr })), ...collect(p.panels ?? [])]);
})(dashboard.panels);

it("parses and has panels with PromQL targets", () => {
  expect(dashboard.uid).toBe("deai-os");
  expect(exprs.length).toBeGreaterThanOrEqual(REQUIRED.length);
});

it("the name extraction finds series and labels (and so can catch a wrong one)", () => {
  expect(
    promqlNames('histogram_quantile(0.99, sum by (le, job) (rate(foo_seconds_bucket{job=~"$job", a!="0"}[$__rate_interval]))) / bar_total'),
  ).toEqual({ series: ["foo_seconds_bucket", "bar_total"], labels: ["job", "a", "le", "job"] });
});

it.each(exprs.map((e, i) => [`${e.title} (target ${i})`, e.expr]))(
  "%s: every series and label is one the services export",
  (_title, expr) => {
    const { series, labels } = promqlNames(expr);
    expect(series.length).toBeGreaterThan(0);
    const unknown = series.filter((s) => !SERIES.has(s));
    expect(unknown).toEqual([]);
    const allowed = new Set([...TARGET_LABELS, ...series.flatMap((s) => SERIES.get(s)!)]);
    expect(labels.filter((l) => !allowed.has(l))).toEqual([]);
  },
);

it("shows every series the issue asks for", () => {
  const used = new Set(exprs.flatMap((e) => promqlNames(e.expr).series));
  expect(REQUIRED.filter((s) => !used.has(s))).toEqual([]);
});

it("template variables query only exported series", () => {
  for (const v of dashboard.templating.list) {
    const q = typeof v.query === "object" && v.query !== null ? (v.query as { query: string }).query : undefined;
    if (q === undefined) continue;
    const inner = /^label_values\((.*),\s*\w+\)$/.exec(q);
    expect(inner).not.toBeNull();
    expect(promqlNames(inner![1]!).series.every((s) => SERIES.has(s))).toBe(true);
  }
});

it("the chart's opt-in ConfigMap carries the dashboard unchanged, with the sidecar label", async () => {
  const { stdout: helm } = await run("bash", [`${root}infra/helm/helm.sh`]);
  const { stdout } = await run(
    helm.trim(),
    [
      "template",
      "deai",
      `${root}charts/deai`,
      "--kube-version",
      "1.31.0",
      "--show-only",
      "templates/dashboard.yaml",
      "--set",
      "grafanaDashboard.enabled=true",
    ],
    { maxBuffer: 16 * 1024 * 1024 },
  );
  const [cm] = parseAllDocuments(stdout).map(
    (d) => d.toJS() as { metadata: { labels: Record<string, string> }; data: Record<string, string> },
  );
  expect(cm!.metadata.labels.grafana_dashboard).toBe("1");
  expect(JSON.parse(cm!.data["deai.json"]!)).toEqual(dashboard);
}, 60_000);
