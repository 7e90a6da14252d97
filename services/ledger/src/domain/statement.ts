// What the ledger reads from an in-toto Statement v1 (the frame is @deai/proofs'
// parseStatementFrame): its predicate type, subjects, and the provenance edges it indexes
// from the predicates the platform uses (PredicateTypes, documented in @deai/proofs).
import { InvalidArgumentError } from "@deai/kit/errors";
import { parseStatementFrame, PredicateTypes, ProofError } from "@deai/proofs";

import { digestKey, parseDigest, type Digest } from "./digest.js";
import type { JsonValue } from "./jcs.js";

/** What the ledger keeps from a statement: its type, what it is about, and what it came from. */
export interface StatementSummary {
  readonly predicateType: string;
  readonly subjects: readonly Digest[];
  /** Inputs: dataset `parents`, SLSA `resolvedDependencies`, deduplicated, in statement order. */
  readonly materials: readonly Digest[];
}

type JsonObject = { [key: string]: JsonValue };

function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Digests of an in-toto DigestSet (`{"sha256": "..."}`), every entry validated. */
function digestSet(v: JsonValue | undefined, where: string): Digest[] {
  if (!isObject(v) || Object.keys(v).length === 0)
    throw new InvalidArgumentError(`${where}: digest must be a non-empty object of algorithm → hex`);
  return Object.entries(v).map(([alg, hex]) => {
    if (typeof hex !== "string") throw new InvalidArgumentError(`${where}: digest ${alg} must be a string`);
    return parseDigest(alg, hex, where);
  });
}

/** A material reference: an in-toto ResourceDescriptor (`{digest: {...}}`) or a DeAI Digest (`{algorithm, hex}`). */
function materialDigests(v: JsonValue, where: string): Digest[] {
  if (!isObject(v)) throw new InvalidArgumentError(`${where} must be an object`);
  if (typeof v.algorithm === "string" && typeof v.hex === "string") return [parseDigest(v.algorithm, v.hex, where)];
  // A ResourceDescriptor without a digest (a URI only) names nothing the ledger can link.
  if (v.digest === undefined) return [];
  return digestSet(v.digest, `${where}.digest`);
}

function listAt(obj: JsonObject | undefined, key: string, where: string): JsonValue[] {
  const v = obj?.[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new InvalidArgumentError(`${where}.${key} must be an array`);
  return v;
}

function dedupe(ds: Digest[]): Digest[] {
  const seen = new Set<string>();
  return ds.filter((d) => {
    const k = digestKey(d);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** The materials a predicate names, by predicate type; other predicates name none. */
function materialsOf(predicateType: string, predicate: JsonObject | undefined): Digest[] {
  const out: Digest[] = [];
  if (predicateType === PredicateTypes.slsaProvenance) {
    const build = predicate?.buildDefinition;
    if (build !== undefined && !isObject(build)) throw new InvalidArgumentError("predicate.buildDefinition must be an object");
    listAt(build, "resolvedDependencies", "predicate.buildDefinition").forEach((m, i) =>
      out.push(...materialDigests(m, `predicate.buildDefinition.resolvedDependencies[${i}]`)),
    );
  } else if (predicateType === PredicateTypes.datasetManifest) {
    listAt(predicate, "parents", "predicate").forEach((m, i) => out.push(...materialDigests(m, `predicate.parents[${i}]`)));
  }
  return dedupe(out);
}

// Control characters (NUL above all: Postgres text and jsonb cannot hold it) and lone
// surrogates (no UTF-8 form) in a predicate type; it is a URI, so neither belongs there.
const BAD_TEXT = /[\u0000-\u001f\u007f]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Checks a predicate type as the log stores and searches it: no control characters, no lone
 * surrogates. Throws InvalidArgumentError naming `field`. Used on append and on search, so a
 * value that cannot be stored never reaches Postgres (where it would fail the whole query).
 */
export function requirePredicateType(value: string, field: string): string {
  if (BAD_TEXT.test(value)) throw new InvalidArgumentError(`${field} holds a control character or a lone surrogate`, { field });
  return value;
}

/** Parses an in-toto Statement v1 payload; throws InvalidArgumentError naming the first problem. */
export function parseStatement(payload: Uint8Array): StatementSummary {
  let statement;
  try {
    statement = parseStatementFrame(payload);
  } catch (e) {
    if (e instanceof ProofError) throw new InvalidArgumentError(e.message);
    throw e;
  }
  const predicateType = requirePredicateType(statement.predicateType, "statement predicateType");
  const subjects = dedupe(statement.subject.flatMap((s, i) => digestSet(s.digest as JsonValue | undefined, `subject[${i}].digest`)));
  return { predicateType, subjects, materials: materialsOf(predicateType, statement.predicate as JsonObject | undefined) };
}
