// Proof generation in two steps, so a server can fetch what a proof needs in one batch:
// a plan names the stored subtree hashes behind each proof element, then the hashes are read
// and folded. Every element is one perfect subtree, except the one covering the tree's right
// border, which is folded from the compact range of that border (≤ log2 n nodes).

import { compactRangeHash, readHash, requireHash, type HashAt, type NodeId } from "./rfc6962.js";
import { ProofError } from "./errors.js";

/** For each proof element, in proof order, the perfect subtrees whose fold is that element. */
export type ProofPlan = readonly (readonly NodeId[])[];

/** Every node a plan reads, deduplicated, in plan order: what to fetch in one batch. */
export function planNodes(plan: ProofPlan): NodeId[] {
  const seen = new Set<string>();
  const out: NodeId[] = [];
  for (const element of plan) {
    for (const node of element) {
      const key = `${node.level}/${node.index}`;
      if (!seen.has(key)) {
        seen.add(key);
        out.push(node);
      }
    }
  }
  return out;
}

/** Turns a plan into proof hashes with a synchronous accessor. */
export function resolvePlan(plan: ProofPlan, hashAt: HashAt): Uint8Array[] {
  return plan.map((element) => compactRangeHash(element.map((node) => readHash(hashAt, node))));
}

/** Turns a plan into proof hashes with one batched read: `fetch(nodes)` answers hashes in the same order. */
export async function resolvePlanAsync(
  plan: ProofPlan,
  fetch: (nodes: readonly NodeId[]) => Promise<readonly Uint8Array[]>,
): Promise<Uint8Array[]> {
  const nodes = planNodes(plan);
  const hashes = await fetch(nodes);
  if (hashes.length !== nodes.length) {
    throw new ProofError("invalid-argument", `asked for ${nodes.length} node hashes, got ${hashes.length}`);
  }
  const byKey = new Map<string, Uint8Array>();
  nodes.forEach((n, i) => {
    const h = hashes[i]!;
    requireHash(h, `hash of node (level ${n.level}, index ${n.index})`);
    byKey.set(`${n.level}/${n.index}`, h);
  });
  return resolvePlan(plan, (level, index) => byKey.get(`${level}/${index}`)!);
}
