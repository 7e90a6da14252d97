// The single-page app: preact + htm, hash routes, every page reading the services' public
// REST APIs from the browser. Receipts and signatures are checked here (verify.ts).
import { render, type ComponentChildren, type VNode } from "preact";
import { useEffect, useMemo, useState } from "preact/hooks";
import { html } from "htm/preact";
import type { NoteVerifier } from "@deai/proofs";

import { buildLineage, predicateName, type GraphNode, type Lineage } from "./lineage.js";
import {
  checkReceipt,
  checkServiceReceipt,
  pinnedKey,
  scanLog,
  type LogScan,
  type ReceiptCheck,
  type ReceiptJson,
  type Verdict,
} from "./verify.js";

interface Config {
  logKey: string | null;
  ledgerTilesPrefix: string;
  apis: Partial<Record<"ledger" | "ingestion" | "sampler" | "marketplace" | "slashing" | "training", string>>;
}

/**
 * A service's JSON object as it came (proto3 JSON of its REST answer): rendered as given, so
 * its fields are read loosely here; nothing read this way is presented as verified.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
type Obj = Record<string, any>;

const fetchFn = (url: string): Promise<Response> => fetch(url, { headers: { accept: "application/json, text/plain, */*" } });

async function getJson(base: string | undefined, path: string): Promise<unknown> {
  if (!base) throw new Error("not configured");
  const res = await fetchFn(`${base}${path}`);
  const text = await res.text();
  if (!res.ok) throw new Error(`HTTP ${res.status}: ${text.slice(0, 200)}`);
  return JSON.parse(text) as unknown;
}

/** Loads once per dependency change; the state says loading, the value, or the error. */
function useLoad<T>(f: () => Promise<T>, deps: unknown[]): { value?: T; error?: string; loading: boolean } {
  const [state, setState] = useState<{ value?: T; error?: string; loading: boolean }>({ loading: true });
  useEffect(() => {
    let live = true;
    setState({ loading: true });
    f().then(
      (value) => live && setState({ value, loading: false }),
      (e: unknown) => live && setState({ error: e instanceof Error ? e.message : String(e), loading: false }),
    );
    return () => {
      live = false;
    };
  }, deps);
  return state;
}

function Badge({ verdict, what }: { verdict: Verdict; what: string }): VNode {
  return html`<span
    class=${verdict.ok ? "badge ok" : "badge failed"}
    data-verdict=${verdict.ok ? "verified" : "failed"}
    title=${verdict.detail}
  >
    ${verdict.ok ? "✔ VERIFIED" : "✘ FAILED"}<span class="sr-only"> ${what}</span>
  </span>`;
}

function Status({ state, what }: { state: { error?: string; loading: boolean }; what: string }): VNode | null {
  if (state.loading) return html`<p role="status">Loading ${what}…</p>`;
  if (state.error) return html`<p class="error" role="alert">${what}: ${state.error}</p>`;
  return null;
}

function cell(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "object") {
    const o = v as Record<string, unknown>;
    if (typeof o.amount === "string" && typeof o.currency === "string") return `${o.amount} ${o.currency}`;
    if (typeof o.units === "string" || typeof o.value === "string") return JSON.stringify(v);
    return JSON.stringify(v).slice(0, 120);
  }
  return typeof v === "string" ? v : JSON.stringify(v);
}

/** A table cell showing a check's outcome (a receipt verified here). */
interface VerdictCell {
  readonly verdict: Verdict;
}
function isVerdictCell(v: unknown): v is VerdictCell {
  return typeof v === "object" && v !== null && "verdict" in v && typeof (v as VerdictCell).verdict?.ok === "boolean";
}

/** Where a page checks the receipts services hand out: the pinned key and the scanned log. */
interface Trust {
  readonly key: NoteVerifier | undefined;
  readonly scan: LogScan | undefined;
}
function receiptCell(receipt: unknown, trust: Trust): VerdictCell {
  if (!trust.key) return { verdict: { ok: false, detail: "no pinned log key" } };
  return { verdict: checkServiceReceipt(receipt as ReceiptJson | undefined, trust.key, trust.scan) };
}

/** A table of objects: the columns asked for, in order; a caption for screen readers. */
function Table({ rows, columns, caption }: { rows: Record<string, unknown>[]; columns: string[]; caption: string }): VNode {
  if (rows.length === 0) return html`<p>No ${caption.toLowerCase()} yet.</p>`;
  return html`<div class="table-wrap" tabindex="0" role="region" aria-label=${caption}>
    <table>
      <caption>
        ${caption}
      </caption>
      <thead>
        <tr>
          ${columns.map((c) => html`<th scope="col">${c}</th>`)}
        </tr>
      </thead>
      <tbody>
        ${rows.map(
          (r) =>
            html`<tr>
              ${columns.map((c) => {
                const v = r[c];
                return html`<td>
                  ${isVerdictCell(v) ? html`<${Badge} verdict=${v.verdict} what=${c} /> <small>${v.verdict.detail}</small>` : cell(v)}
                </td>`;
              })}
            </tr>`,
        )}
      </tbody>
    </table>
  </div>`;
}

// ---------- lineage ----------

const COL_W = 190;
const ROW_H = 46;
const NODE_W = 168;
const NODE_H = 30;

function Graph({ lineage, selected, onSelect }: { lineage: Lineage; selected?: string; onSelect: (n: GraphNode) => void }): VNode {
  const pos = new Map(lineage.nodes.map((n) => [n.id, { x: 10 + n.column * COL_W, y: 30 + n.row * ROW_H }]));
  const rows = Math.max(1, ...lineage.nodes.map((n) => n.row + 1));
  const cols = Math.max(1, ...lineage.nodes.map((n) => n.column + 1));
  const heads = ["artifacts", "statements", "placements, leases", "attestations, evidence", "slashes", "providers"];
  return html`<svg
    class="graph"
    role="group"
    aria-label="Lineage graph: artifacts, statements and providers"
    width=${cols * COL_W + 20}
    height=${rows * ROW_H + 40}
  >
    ${heads.slice(0, cols).map((t, i) => html`<text class="col-head" x=${10 + i * COL_W} y="14">${t}</text>`)}
    ${lineage.edges.map((e) => {
      const a = pos.get(e.from)!;
      const b = pos.get(e.to)!;
      return html`<line class=${`edge ${e.label}`} x1=${a.x + NODE_W} y1=${a.y + NODE_H / 2} x2=${b.x} y2=${b.y + NODE_H / 2} />`;
    })}
    ${lineage.nodes.map((n) => {
      const p = pos.get(n.id)!;
      const choose = (): void => onSelect(n);
      return html`<g
        class=${`node ${n.kind}${n.ok === false ? " bad" : ""}${selected === n.id ? " selected" : ""}`}
        transform=${`translate(${p.x},${p.y})`}
        tabindex="0"
        role="button"
        data-node=${n.id}
        aria-label=${`${n.kind} ${n.label}${n.ok === false ? ", signature failed" : ""}`}
        onClick=${choose}
        onKeyDown=${(ev: KeyboardEvent) => (ev.key === "Enter" || ev.key === " ") && (ev.preventDefault(), choose())}
      >
        <rect width=${NODE_W} height=${NODE_H} rx="6" />
        <text x="8" y="19">${n.label.length > 24 ? `${n.label.slice(0, 23)}…` : n.label}</text>
      </g>`;
    })}
  </svg>`;
}

function NodeDetail({ node, scan, config, keyV }: { node: GraphNode; scan: LogScan; config: Config; keyV: NoteVerifier }): VNode {
  const entry = node.index !== undefined ? scan.entries[node.index] : undefined;
  const check = useLoad<ReceiptCheck | undefined>(
    async () => (node.index === undefined ? undefined : checkReceipt(fetchFn, config.apis.ledger!, node.index, keyV, entry?.leaf)),
    [node.id],
  );
  if (node.kind !== "statement") {
    return html`<section aria-labelledby="detail-h" class="detail">
      <h2 id="detail-h">${node.kind}: ${node.label}</h2>
      <p><code>${node.id}</code></p>
      <p>Select a statement to see its receipt.</p>
    </section>`;
  }
  return html`<section aria-labelledby="detail-h" class="detail" data-detail=${node.id}>
    <h2 id="detail-h">Entry #${node.index} · ${node.predicate}</h2>
    <${Status} state=${check} what="receipt" />
    ${
      check.value &&
      html`<p class="overall">
          Receipt: <${Badge} verdict=${check.value.overall} what="receipt" />
          <span data-testid="overall-detail">${check.value.overall.detail}</span>
        </p>
        <ul class="checks">
          <li>
            Inclusion in a checkpoint signed by the pinned key:
            <${Badge} verdict=${check.value.receipt} what="inclusion" /> ${check.value.receipt.detail}
          </li>
          <li>Envelope signatures: <${Badge} verdict=${check.value.signature} what="signatures" /> ${check.value.signature.detail}</li>
          ${check.value.matchesLog && html`<li>Same as the log's tiles: <${Badge} verdict=${check.value.matchesLog} what="tiles" /> ${check.value.matchesLog.detail}</li>`}
        </ul>
        <h3>Statement (as served)</h3>
        <pre tabindex="0" aria-label="statement JSON">${JSON.stringify(check.value.statement ?? entry?.statement ?? null, null, 2)}</pre>
        <h3>Receipt (c2sp.org/tlog-proof)</h3>
        <pre tabindex="0" aria-label="receipt">${check.value.tlogProof || "(none)"}</pre>`
    }
  </section>`;
}

function LineagePage({
  config,
  keyV,
  scan,
}: {
  config: Config;
  keyV: NoteVerifier;
  scan: { value?: LogScan; error?: string; loading: boolean };
}): VNode {
  const [selected, setSelected] = useState<GraphNode | undefined>();
  const lineage = useMemo(() => (scan.value ? buildLineage(scan.value.entries) : undefined), [scan.value]);
  return html`<section aria-labelledby="page-h">
    <h1 id="page-h">Lineage</h1>
    <p>Everything below is read from the log's own tiles and checked here against the pinned log key <code>${keyV.name}</code>.</p>
    <${Status} state=${scan} what="log" />
    ${
      scan.value &&
      html`<p>Checkpoint: <${Badge} verdict=${scan.value.checkpoint} what="checkpoint" /> ${scan.value.checkpoint.detail}</p>
        <p data-testid="log-contents">
          Log contents: <${Badge} verdict=${scan.value.contents} what="log contents" /> ${scan.value.contents.detail}
        </p>
        ${lineage && lineage.nodes.length === 0 ? html`<p>The log holds no statements yet.</p>` : ""}
        ${lineage && html`<div class="graph-wrap"><${Graph} lineage=${lineage} selected=${selected?.id} onSelect=${setSelected} /></div>`}
        ${selected && html`<${NodeDetail} key=${selected.id} node=${selected} scan=${scan.value} config=${config} keyV=${keyV} />`}
        <h2>Entries</h2>
        <${Table}
          caption="Log entries"
          columns=${["index", "predicate", "subjects", "signature"]}
          rows=${scan.value.entries.map((e) => ({
            index: e.index,
            predicate: e.statement ? predicateName(e.statement.predicateType) : "(unreadable)",
            subjects: e.statement?.subject.map((s) => s.name ?? Object.values(s.digest ?? {})[0]?.slice(0, 16)).join(", "),
            signature: e.signature.ok ? "verified" : `FAILED: ${e.signature.detail}`,
          }))}
        />`
    }
  </section>`;
}

// ---------- datasets, providers, market, slashes, training ----------

function DatasetsPage({ config, trust }: { config: Config; trust: Trust }): VNode {
  const data = useLoad(async () => {
    const list = (await getJson(config.apis.ingestion, "/v1/datasets?pageSize=100")) as { datasets?: Obj[] };
    const datasets = list.datasets ?? [];
    const providers = new Set<string>();
    for (const d of datasets)
      for (const p of (d.manifest?.placements ?? []) as { providerId?: string }[]) if (p.providerId) providers.add(p.providerId);
    const availability = await Promise.all(
      [...providers].map(async (id) => {
        try {
          const a = (await getJson(config.apis.sampler, `/v1/da/providers/${encodeURIComponent(id)}/availability`)) as Obj;
          return {
            provider: id,
            availability: a.availability,
            samplesTotal: a.samplesTotal,
            samplesFailed: a.samplesFailed,
            reputation: a.reputation?.score ?? a.reputation,
          };
        } catch (e) {
          return { provider: id, availability: `unavailable: ${(e as Error).message}` };
        }
      }),
    );
    return { datasets, availability };
  }, []);
  return html`<section aria-labelledby="page-h">
    <h1 id="page-h">Datasets</h1>
    <${Status} state=${data} what="datasets" />
    ${
      data.value &&
      html`<${Table}
          caption="Datasets"
          columns=${["datasetId", "name", "state", "size", "k", "m", "providers", "receipt"]}
          rows=${data.value.datasets.map((d) => ({
            receipt: receiptCell(d.receipt, trust),
            datasetId: d.datasetId,
            name: d.manifest?.name,
            state: d.state,
            size: d.manifest?.size,
            k: d.manifest?.k,
            m: d.manifest?.m,
            providers: [...new Set(((d.manifest?.placements ?? []) as { providerId?: string }[]).map((p) => p.providerId))].join(", "),
          }))}
        />
        <h2>Availability per provider (DA sampler)</h2>
        <${Table}
          caption="Per-provider availability"
          columns=${["provider", "availability", "samplesTotal", "samplesFailed", "reputation"]}
          rows=${data.value.availability}
        />`
    }
  </section>`;
}

function ProvidersPage({ config }: { config: Config }): VNode {
  const data = useLoad(async () => {
    const list = (await getJson(config.apis.ingestion, "/v1/storage-providers?pageSize=100")) as { providers?: Obj[] };
    return Promise.all(
      (list.providers ?? []).map(async (p) => {
        const id = encodeURIComponent(String(p.providerId));
        const [status, avail] = await Promise.all([
          getJson(config.apis.slashing, `/v1/slashing/providers/${id}/status`).catch((e: Error) => ({
            status: `? ${e.message}`,
          })) as Promise<Obj>,
          getJson(config.apis.sampler, `/v1/da/providers/${id}/availability`).catch(() => ({})) as Promise<Obj>,
        ]);
        return {
          provider: p.providerId,
          endpoint: p.endpoint,
          stake: p.stake,
          bonded: status.bonded,
          status: status.status,
          eligible: status.eligible ?? p.eligible,
          jailedUntil: status.jailedUntil,
          availability: avail.availability,
          reputation: avail.reputation?.score ?? avail.reputation,
        };
      }),
    );
  }, []);
  return html`<section aria-labelledby="page-h">
    <h1 id="page-h">Providers</h1>
    <${Status} state=${data} what="providers" />
    ${
      data.value &&
      html`<${Table}
        caption="Storage providers"
        columns=${["provider", "endpoint", "stake", "bonded", "status", "eligible", "jailedUntil", "availability", "reputation"]}
        rows=${data.value}
      />`
    }
  </section>`;
}

function MarketPage({ config, trust }: { config: Config; trust: Trust }): VNode {
  const data = useLoad(async () => {
    const [offers, leases] = await Promise.all([
      getJson(config.apis.marketplace, "/v1/marketplace/offers?pageSize=100") as Promise<{ offers?: Obj[] }>,
      getJson(config.apis.marketplace, "/v1/marketplace/leases?pageSize=100") as Promise<{ leases?: Obj[] }>,
    ]);
    const orderIds = [...new Set((leases.leases ?? []).map((l) => String(l.orderId)))].slice(0, 50);
    const orders = await Promise.all(
      orderIds.map(async (id) => {
        const o =
          ((await getJson(config.apis.marketplace, `/v1/marketplace/orders/${encodeURIComponent(id)}`)) as { order?: Obj }).order ?? {};
        const escrow = o.escrowAccountId
          ? ((
              (await getJson(
                config.apis.marketplace,
                `/v1/marketplace/escrow-accounts/${encodeURIComponent(String(o.escrowAccountId))}`,
              ).catch(() => ({}))) as { account?: Obj }
            ).account ?? {})
          : {};
        return {
          order: o.orderId,
          tenant: o.tenantId,
          state: o.state,
          leases: (o.leaseIds ?? []).length,
          escrow: o.escrowAccountId,
          ...escrow,
        };
      }),
    );
    return { offers: (offers.offers ?? []).map((o) => o.gpu ?? o.storage ?? o), leases: leases.leases ?? [], orders };
  }, []);
  return html`<section aria-labelledby="page-h">
    <h1 id="page-h">Orders, leases and escrow</h1>
    <${Status} state=${data} what="marketplace" />
    ${
      data.value &&
      html`<h2>Orders and escrow</h2>
        <${Table}
          caption="Orders"
          columns=${["order", "tenant", "state", "leases", "escrow", "balance", "held", "released"]}
          rows=${data.value.orders}
        />
        <h2>Leases</h2>
        <${Table}
          caption="Leases"
          columns=${["leaseId", "orderId", "group", "providerId", "gpuClass", "gpus", "state", "pricePerGpuHour", "settledThroughEpoch", "receipt"]}
          rows=${data.value.leases.map((l) => ({ ...l, receipt: receiptCell(l.receipt, trust) }))}
        />
        <h2>Offers</h2>
        <${Table}
          caption="Offers"
          columns=${["offerId", "providerId", "gpuClass", "gpus", "nodes", "pricePerGpuHour", "state"]}
          rows=${data.value.offers}
        />`
    }
  </section>`;
}

function SlashesPage({ config, trust }: { config: Config; trust: Trust }): VNode {
  const data = useLoad(
    async () => ((await getJson(config.apis.slashing, "/v1/slashing/slashes?pageSize=100")) as { slashes?: Obj[] }).slashes ?? [],
    [],
  );
  const [open, setOpen] = useState<string | undefined>();
  const evidence = useLoad(
    async () => (open ? getJson(config.apis.slashing, `/v1/slashing/evidence/${encodeURIComponent(open)}`) : undefined),
    [open],
  );
  return html`<section aria-labelledby="page-h">
    <h1 id="page-h">Slashes</h1>
    <${Status} state=${data} what="slashes" />
    ${
      data.value &&
      (data.value.length === 0
        ? html`<p>No slashes yet.</p>`
        : html`<div class="table-wrap" tabindex="0" role="region" aria-label="Slashes">
            <table>
              <caption>
                Slashes
              </caption>
              <thead>
                <tr>
                  ${["slash", "provider", "kind", "state", "amount", "consequence", "receipt", "evidence"].map((c) => html`<th scope="col">${c}</th>`)}
                </tr>
              </thead>
              <tbody>
                ${data.value.map(
                  (s) =>
                    html`<tr>
                      <td>${s.slashId}</td>
                      <td>${s.providerId}</td>
                      <td>${s.kind}</td>
                      <td>${s.state}</td>
                      <td>${cell(s.amount)}</td>
                      <td>${s.consequence}</td>
                      <td>
                        ${(() => {
                          const v = receiptCell(s.receipt, trust).verdict;
                          return html`<${Badge} verdict=${v} what="receipt" /> <small>${v.detail}</small>`;
                        })()}
                      </td>
                      <td>
                        <button type="button" onClick=${() => setOpen(String(s.evidenceId))} aria-expanded=${open === s.evidenceId}>
                          Evidence ${String(s.evidenceId).slice(0, 10)}…
                        </button>
                      </td>
                    </tr>`,
                )}
              </tbody>
            </table>
          </div>`)
    }
    ${
      open &&
      html`<section aria-labelledby="ev-h" class="detail">
        <h2 id="ev-h">Evidence ${open}</h2>
        <${Status} state=${evidence} what="evidence" />
        ${evidence.value !== undefined && html`<pre tabindex="0">${JSON.stringify(evidence.value, null, 2)}</pre>`}
        <p>
          The slash record's receipt is in the ledger: open it on the <a href="#/lineage">lineage</a> page (slash-record statements) to
          verify it.
        </p>
      </section>`
    }
  </section>`;
}

function TrainingPage({ config }: { config: Config }): VNode {
  const data = useLoad(async () => (config.apis.training ? getJson(config.apis.training, "/v1/training/jobs") : undefined), []);
  return html`<section aria-labelledby="page-h">
    <h1 id="page-h">Training runs</h1>
    <p>
      No data yet: the training operator's RPCs (jobs, loss and tokens per group, restarts) are not implemented, so there is nothing to show
      honestly. Checkpoints the trainer anchors appear as <code>slsaProvenance</code> statements on the
      <a href="#/lineage">lineage</a> page.
    </p>
    ${config.apis.training && html`<${Status} state=${data} what="training jobs" />`}
    ${data.value !== undefined && html`<pre tabindex="0">${JSON.stringify(data.value, null, 2)}</pre>`}
  </section>`;
}

// ---------- shell ----------

const PAGES: [string, string][] = [
  ["lineage", "Lineage"],
  ["datasets", "Datasets"],
  ["providers", "Providers"],
  ["market", "Orders & leases"],
  ["slashes", "Slashes"],
  ["training", "Training"],
];

function useRoute(): string {
  const read = (): string => location.hash.replace(/^#\/?/, "") || "lineage";
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const on = (): void => setRoute(read());
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return route;
}

function App({ config }: { config: Config }): VNode {
  const route = useRoute();
  const keyV = useMemo(() => {
    try {
      return config.logKey ? pinnedKey(config.logKey) : undefined;
    } catch {
      return undefined;
    }
  }, [config.logKey]);
  const scan = useLoad(async () => {
    if (!keyV) throw new Error("no pinned log key (DASHBOARD_LOG_KEY): nothing can be verified");
    if (!config.apis.ledger) throw new Error("no ledger URL (DASHBOARD_LEDGER_URL)");
    return scanLog(fetchFn, config.apis.ledger, config.ledgerTilesPrefix, keyV);
  }, []);
  const trust: Trust = { key: keyV, scan: scan.value };
  let page: ComponentChildren;
  if (route === "datasets") page = html`<${DatasetsPage} config=${config} trust=${trust} />`;
  else if (route === "providers") page = html`<${ProvidersPage} config=${config} />`;
  else if (route === "market") page = html`<${MarketPage} config=${config} trust=${trust} />`;
  else if (route === "slashes") page = html`<${SlashesPage} config=${config} trust=${trust} />`;
  else if (route === "training") page = html`<${TrainingPage} config=${config} />`;
  else if (keyV) page = html`<${LineagePage} config=${config} keyV=${keyV} scan=${scan} />`;
  else
    page = html`<p class="error" role="alert">
      No valid pinned log key is configured (DASHBOARD_LOG_KEY): the dashboard verifies nothing without it.
    </p>`;
  return html`<a class="skip" href="#main">Skip to content</a>
    <header>
      <span class="brand">DeAI OS</span>
      <nav aria-label="Pages">
        <ul>
          ${PAGES.map(
            ([id, label]) =>
              html`<li>
                <a
                  href=${`#/${id}`}
                  aria-current=${route === id || (id === "lineage" && !PAGES.some(([p]) => p === route)) ? "page" : undefined}
                  >${label}</a
                >
              </li>`,
          )}
        </ul>
      </nav>
    </header>
    <main id="main" tabindex="-1">${page}</main>
    <footer>
      <p>Verified in this browser with @deai/proofs; no service is trusted. Log key: <code>${config.logKey ?? "(none)"}</code></p>
    </footer>`;
}

async function boot(): Promise<void> {
  const root = document.getElementById("app")!;
  try {
    const res = await fetch("config.json");
    const config = (await res.json()) as Config;
    root.textContent = "";
    render(html`<${App} config=${config} />`, root);
  } catch (e) {
    root.textContent = `Could not load config.json: ${(e as Error).message}`;
  }
}

void boot();
