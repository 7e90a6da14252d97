// The provenance graph: an entry states that each of its subjects was produced from each of
// its materials. Walking toward materials finds ancestors; toward subjects, descendants.
import { digestKey, type Digest } from "./digest.js";

export type LineageDirection = "ancestors" | "descendants" | "both";

/** One edge: entry `index` states that `subject` was produced from `material`. */
export interface LineageEdge {
  readonly subject: Digest;
  readonly material: Digest;
  readonly depth: number;
  readonly direction: "ancestors" | "descendants";
  readonly index: number;
}

/** An entry as the walk sees it. */
export interface LineageNode {
  readonly index: number;
  readonly subjects: readonly Digest[];
  readonly materials: readonly Digest[];
}

/** Entries naming any of `digests` as a subject (walking to ancestors) or a material (to descendants). */
export type NeighbourLookup = (digests: readonly Digest[], role: "subject" | "material") => Promise<readonly LineageNode[]>;

/** Breadth-first walk from `root`, at most `maxDepth` hops and `maxEdges` edges each way. */
export async function walkLineage(
  root: Digest,
  direction: LineageDirection,
  maxDepth: number,
  maxEdges: number,
  lookup: NeighbourLookup,
): Promise<{ edges: LineageEdge[]; truncated: boolean }> {
  const edges: LineageEdge[] = [];
  let truncated = false;
  const ways: ("ancestors" | "descendants")[] = direction === "both" ? ["ancestors", "descendants"] : [direction];
  for (const way of ways) {
    const seen = new Set<string>([digestKey(root)]);
    const seenEdges = new Set<string>();
    let frontier: Digest[] = [root];
    let count = 0;
    for (let depth = 1; frontier.length > 0; depth++) {
      const role = way === "ancestors" ? "subject" : "material";
      const nodes = await lookup(frontier, role);
      if (depth > maxDepth) {
        truncated ||= nodes.length > 0;
        break;
      }
      const inFrontier = new Set(frontier.map(digestKey));
      const next: Digest[] = [];
      for (const n of nodes) {
        const near = (way === "ancestors" ? n.subjects : n.materials).filter((d) => inFrontier.has(digestKey(d)));
        const far = way === "ancestors" ? n.materials : n.subjects;
        for (const a of near) {
          for (const b of far) {
            const [subject, material] = way === "ancestors" ? [a, b] : [b, a];
            const key = `${n.index}|${digestKey(subject)}|${digestKey(material)}`;
            if (seenEdges.has(key)) continue;
            if (count >= maxEdges) {
              truncated = true;
              continue;
            }
            seenEdges.add(key);
            edges.push({ subject, material, depth, direction: way, index: n.index });
            count++;
            if (!seen.has(digestKey(b))) {
              seen.add(digestKey(b));
              next.push(b);
            }
          }
        }
      }
      frontier = next;
    }
  }
  return { edges, truncated };
}
