// in-toto Statement v1 (github.com/in-toto/attestation/blob/main/spec/v1/statement.md): what
// every signed statement on the platform is, inside a DSSE envelope of type
// IN_TOTO_PAYLOAD_TYPE. The predicate types are in predicates.ts.

import { utf8Decode, utf8Encode } from "./encoding.js";
import { ProofError } from "./errors.js";

/** DSSE payloadType of an in-toto statement. */
export const IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json";
/** `_type` of an in-toto Statement v1. */
export const STATEMENT_V1_TYPE = "https://in-toto.io/Statement/v1";

/** An in-toto DigestSet: algorithm → lowercase hex (e.g. `{ sha256: "…" }`). */
export type DigestSet = Readonly<Record<string, string>>;

/** An in-toto ResourceDescriptor, as statements here use it (subjects and materials). */
export interface ResourceDescriptor {
  readonly name?: string;
  readonly uri?: string;
  readonly digest?: DigestSet;
  readonly [field: string]: unknown;
}

/** An in-toto Statement v1 with predicate `P`. */
export interface Statement<P = Record<string, unknown>> {
  readonly _type: typeof STATEMENT_V1_TYPE;
  readonly subject: readonly ResourceDescriptor[];
  readonly predicateType: string;
  readonly predicate?: P;
}

/** A Statement v1 of `predicateType` about `subject`. */
export function statementOf<P>(predicateType: string, subject: readonly ResourceDescriptor[], predicate?: P): Statement<P> {
  return { _type: STATEMENT_V1_TYPE, subject, predicateType, ...(predicate !== undefined ? { predicate } : {}) };
}

/**
 * The UTF-8 JSON bytes of a statement: the exact payload to sign (a verifier reads these
 * bytes, never a re-serialization). JSON.stringify escapes lone surrogates (`\ud800`), so
 * the text always encodes.
 */
export function statementBytes(statement: Statement<unknown>): Uint8Array {
  return utf8Encode(JSON.stringify(statement))!;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Parses statement bytes and checks the Statement v1 frame: UTF-8 JSON object, `_type`,
 * a non-empty `predicateType` string, a non-empty `subject` array of objects, `predicate` an
 * object when present. Subjects' digests and the predicate are the caller's to interpret.
 * Throws ProofError (code invalid-argument) naming the first problem.
 */
export function parseStatementFrame(payload: Uint8Array): Statement<Record<string, unknown>> {
  const text = utf8Decode(payload);
  if (text === undefined) throw new ProofError("invalid-argument", "payload is not UTF-8");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ProofError("invalid-argument", `payload is not JSON: ${(e as Error).message}`);
  }
  if (!isObject(json)) throw new ProofError("invalid-argument", "statement must be a JSON object");
  if (json._type !== STATEMENT_V1_TYPE)
    throw new ProofError("invalid-argument", `statement _type must be ${STATEMENT_V1_TYPE}, got ${JSON.stringify(json._type)}`);
  if (typeof json.predicateType !== "string" || json.predicateType === "")
    throw new ProofError("invalid-argument", "statement predicateType must be a non-empty string");
  if (!Array.isArray(json.subject) || json.subject.length === 0)
    throw new ProofError("invalid-argument", "statement subject must be a non-empty array");
  json.subject.forEach((s, i) => {
    if (!isObject(s)) throw new ProofError("invalid-argument", `subject[${i}] must be an object`);
  });
  if (json.predicate !== undefined && !isObject(json.predicate))
    throw new ProofError("invalid-argument", "statement predicate must be an object");
  return json as unknown as Statement<Record<string, unknown>>;
}
