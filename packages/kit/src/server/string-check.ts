/**
 * Strings at the contract boundary: a NUL (U+0000) or a lone surrogate in any string of a
 * request is refused before a handler sees it. Postgres text and jsonb cannot hold NUL, and
 * a lone surrogate has no UTF-8 encoding, so either would fail deep inside a write (and, in
 * a group commit, the writes of other clients). One generic walk over the message descriptor
 * covers every contract: nested messages, repeated fields, map keys and values, oneofs.
 * Bytes fields are never walked, and message types with no string anywhere are skipped.
 */
import { ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";

export interface BadString {
  /** Field path in proto names: `spec.provenance["x"]`, `owners[2]`, `predicate_type`. */
  readonly path: string;
  readonly problem: string;
}

/** What is wrong with a string, or undefined when it is fine. */
export function stringProblem(s: string): string | undefined {
  if (s.includes("\0")) return "contains a NUL character (U+0000)";
  // String.prototype.isWellFormed (ES2024, Node 20) is not in this project's lib types.
  if (!(s as unknown as { isWellFormed(): boolean }).isWellFormed()) return "contains a lone surrogate (not valid Unicode)";
  return undefined;
}

// Whether a message type can hold a string anywhere below it; descriptors are immutable.
const holdsStrings = new WeakMap<DescMessage, boolean>();

function canHoldStrings(desc: DescMessage, seen = new Set<DescMessage>()): boolean {
  const known = holdsStrings.get(desc);
  if (known !== undefined) return known;
  if (seen.has(desc)) return false;
  seen.add(desc);
  const r = desc.fields.some((f) => {
    switch (f.fieldKind) {
      case "scalar":
        return f.scalar === ScalarType.STRING;
      case "list":
        return f.listKind === "scalar" ? f.scalar === ScalarType.STRING : f.listKind === "message" && canHoldStrings(f.message, seen);
      case "map":
        return (
          f.mapKey === ScalarType.STRING ||
          (f.mapKind === "scalar" ? f.scalar === ScalarType.STRING : f.mapKind === "message" && canHoldStrings(f.message, seen))
        );
      case "message":
        return canHoldStrings(f.message, seen);
      default:
        return false;
    }
  });
  // Only a definite answer is cached: a cycle's "false" may be premature.
  if (r || seen.size === 1) holdsStrings.set(desc, r);
  return r;
}

type Obj = Record<string, unknown>;

/** The first bad string in `message` (a message of type `desc`), or undefined. */
export function badStringIn(desc: DescMessage, message: unknown): BadString | undefined {
  return walk(desc, message as Obj, "");
}

function walk(desc: DescMessage, m: Obj | undefined, prefix: string): BadString | undefined {
  if (m === undefined || m === null || !canHoldStrings(desc)) return undefined;
  for (const f of desc.fields) {
    let value: unknown;
    if (f.oneof) {
      const o = m[f.oneof.localName] as { case?: string; value?: unknown } | undefined;
      if (o?.case !== f.localName) continue;
      value = o.value;
    } else {
      value = m[f.localName];
    }
    if (value === undefined || value === null) continue;
    const bad = field(f, value, prefix === "" ? f.name : `${prefix}.${f.name}`);
    if (bad) return bad;
  }
  return undefined;
}

function field(f: DescField, value: unknown, path: string): BadString | undefined {
  switch (f.fieldKind) {
    case "scalar":
      return f.scalar === ScalarType.STRING ? str(value as string, path) : undefined;
    case "message":
      return walk(f.message, value as Obj, path);
    case "list": {
      const items = value as unknown[];
      if (f.listKind === "scalar") {
        if (f.scalar !== ScalarType.STRING) return undefined;
        for (let i = 0; i < items.length; i++) {
          const bad = str(items[i] as string, `${path}[${i}]`);
          if (bad) return bad;
        }
      } else if (f.listKind === "message") {
        for (let i = 0; i < items.length; i++) {
          const bad = walk(f.message, items[i] as Obj, `${path}[${i}]`);
          if (bad) return bad;
        }
      }
      return undefined;
    }
    case "map": {
      for (const [k, v] of Object.entries(value as Obj)) {
        const at = `${path}[${JSON.stringify(k)}]`;
        if (f.mapKey === ScalarType.STRING) {
          const p = stringProblem(k);
          if (p) return { path: `${path} key ${JSON.stringify(k)}`, problem: p };
        }
        const bad =
          f.mapKind === "scalar"
            ? f.scalar === ScalarType.STRING
              ? str(v as string, at)
              : undefined
            : f.mapKind === "message"
              ? walk(f.message, v as Obj, at)
              : undefined;
        if (bad) return bad;
      }
      return undefined;
    }
    default:
      return undefined;
  }
}

function str(s: string, path: string): BadString | undefined {
  const problem = stringProblem(s);
  return problem ? { path, problem } : undefined;
}
