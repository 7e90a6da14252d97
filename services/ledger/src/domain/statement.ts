// in-toto Statement v1 (https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md)
// and the provenance edges the ledger indexes from the predicates the platform uses.
import { InvalidArgumentError } from "@deai/kit/errors";

import { digestKey, parseDigest, type Digest } from "./digest.js";
import type { JsonValue } from "./jcs.js";

export const STATEMENT_V1_TYPE = "https://in-toto.io/Statement/v1";

/** Predicate types the platform writes (see the README for each one's materials). */
export const PredicateTypes = {
  datasetManifest: "https://deai.dev/dataset-manifest/v1",
  slsaProvenance: "https://slsa.dev/provenance/v1",
  lease: "https://deai.dev/lease/v1",
  slashRecord: "https://deai.dev/slash-record/v1",
} as const;

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

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Parses an in-toto Statement v1 payload; throws InvalidArgumentError naming the first problem. */
export function parseStatement(payload: Uint8Array): StatementSummary {
  let json: JsonValue;
  try {
    json = JSON.parse(utf8.decode(payload)) as JsonValue;
  } catch (e) {
    throw new InvalidArgumentError(`payload is not UTF-8 JSON: ${(e as Error).message}`);
  }
  if (!isObject(json)) throw new InvalidArgumentError("statement must be a JSON object");
  if (json._type !== STATEMENT_V1_TYPE)
    throw new InvalidArgumentError(`statement _type must be ${STATEMENT_V1_TYPE}, got ${JSON.stringify(json._type)}`);
  if (typeof json.predicateType !== "string" || json.predicateType === "")
    throw new InvalidArgumentError("statement predicateType must be a non-empty string");
  if (!Array.isArray(json.subject) || json.subject.length === 0)
    throw new InvalidArgumentError("statement subject must be a non-empty array");
  const subjects = dedupe(
    json.subject.flatMap((s, i) => {
      if (!isObject(s)) throw new InvalidArgumentError(`subject[${i}] must be an object`);
      return digestSet(s.digest, `subject[${i}].digest`);
    }),
  );
  if (json.predicate !== undefined && !isObject(json.predicate)) throw new InvalidArgumentError("statement predicate must be an object");
  return { predicateType: json.predicateType, subjects, materials: materialsOf(json.predicateType, json.predicate) };
}
