// The lineage graph, built from the log's own entries (no service's summary): artifacts
// (subjects and materials by digest), the statements about them, and the providers they name.
import { PredicateTypes, type Statement } from "@deai/proofs";

import type { LogEntry } from "./verify.js";

export type NodeKind = "artifact" | "provider" | "statement";

export interface GraphNode {
  readonly id: string;
  readonly kind: NodeKind;
  readonly label: string;
  /** Statement nodes: the log index and short predicate name. */
  readonly index?: number;
  readonly predicate?: string;
  /** Statement nodes: the signature check from the scan. */
  readonly ok?: boolean;
  readonly column: number;
  row: number;
}

export interface GraphEdge {
  readonly from: string;
  readonly to: string;
  readonly label: "subject" | "material" | "provider";
}

export interface Lineage {
  readonly nodes: GraphNode[];
  readonly edges: GraphEdge[];
}

const SHORT: Record<string, string> = Object.fromEntries(Object.entries(PredicateTypes).map(([name, uri]) => [uri, name]));

/** Column of each statement kind, left to right: what the data is, where it lives, what was seen, what followed. */
const COLUMN: Record<string, number> = {
  datasetManifest: 1,
  slsaProvenance: 1,
  placement: 2,
  lease: 2,
  usageReport: 2,
  trainingContribution: 2,
  samplingAttestation: 3,
  evidence: 3,
  slashRecord: 4,
  veto: 4,
};
const PROVIDER_COLUMN = 5;

export function predicateName(uri: string): string {
  return SHORT[uri] ?? uri;
}

function digestKeys(digest: unknown): string[] {
  if (digest === null || typeof digest !== "object") return [];
  return Object.entries(digest as Record<string, unknown>)
    .filter(([, v]) => typeof v === "string")
    .map(([alg, hex]) => `${alg}:${String(hex).toLowerCase()}`);
}

/** Materials as the ledger indexes them (its README): manifest parents, SLSA resolved dependencies. */
export function materialsOf(statement: Statement): string[] {
  const p = statement.predicate ?? {};
  const out: string[] = [];
  if (statement.predicateType === PredicateTypes.datasetManifest && Array.isArray(p.parents)) {
    for (const parent of p.parents as unknown[]) {
      const q = parent as { algorithm?: unknown; hex?: unknown; digest?: unknown } | null;
      if (typeof q?.algorithm === "string" && typeof q.hex === "string") out.push(`${q.algorithm}:${q.hex.toLowerCase()}`);
      else out.push(...digestKeys(q?.digest));
    }
  }
  if (statement.predicateType === PredicateTypes.slsaProvenance) {
    const deps = (p.buildDefinition as { resolvedDependencies?: unknown } | undefined)?.resolvedDependencies;
    if (Array.isArray(deps)) for (const d of deps as { digest?: unknown }[]) out.push(...digestKeys(d?.digest));
  }
  return out;
}

function providersOf(statement: Statement): string[] {
  const p = statement.predicate ?? {};
  const out = new Set<string>();
  if (typeof p.provider === "string" && p.provider !== "") out.add(p.provider);
  if (Array.isArray(p.moved)) for (const m of p.moved as { to?: unknown }[]) if (typeof m?.to === "string") out.add(m.to);
  return [...out];
}

export function buildLineage(entries: readonly LogEntry[]): Lineage {
  const nodes = new Map<string, GraphNode>();
  const edges: GraphEdge[] = [];
  const add = (n: Omit<GraphNode, "row">): GraphNode => {
    let node = nodes.get(n.id);
    if (!node) nodes.set(n.id, (node = { ...n, row: 0 }));
    return node;
  };
  for (const e of entries) {
    const s = e.statement;
    if (!s) continue;
    const name = predicateName(s.predicateType);
    const id = `entry:${e.index}`;
    add({
      id,
      kind: "statement",
      label: `#${e.index} ${name}`,
      index: e.index,
      predicate: name,
      ok: e.signature.ok,
      column: COLUMN[name] ?? 2,
    });
    for (const subject of s.subject) {
      for (const key of digestKeys(subject.digest)) {
        const label = typeof subject.name === "string" && subject.name !== "" ? subject.name : key.slice(0, 19);
        add({ id: `artifact:${key}`, kind: "artifact", label, column: 0 });
        edges.push({ from: `artifact:${key}`, to: id, label: "subject" });
      }
    }
    for (const key of materialsOf(s)) {
      add({ id: `artifact:${key}`, kind: "artifact", label: key.slice(0, 19), column: 0 });
      edges.push({ from: `artifact:${key}`, to: id, label: "material" });
    }
    for (const provider of providersOf(s)) {
      add({
        id: `provider:${provider}`,
        kind: "provider",
        label: provider.length > 18 ? `${provider.slice(0, 16)}…` : provider,
        column: PROVIDER_COLUMN,
      });
      edges.push({ from: id, to: `provider:${provider}`, label: "provider" });
    }
  }
  // Rows: in order of first appearance within each column.
  const rows = new Map<number, number>();
  for (const n of nodes.values()) {
    n.row = rows.get(n.column) ?? 0;
    rows.set(n.column, n.row + 1);
  }
  return { nodes: [...nodes.values()], edges };
}
