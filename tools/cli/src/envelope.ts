// DSSE envelopes around in-toto Statement v1, as the ledger verifies them
// (services/ledger/src/domain/envelope.ts): PAE signature, keyid = actor id, and the leaf the
// log hashes (the RFC 8785 canonical JSON of the envelope's JSON form).
import { sign, type KeyObject } from "node:crypto";

export const IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json";
export const IN_TOTO_STATEMENT_V1 = "https://in-toto.io/Statement/v1";

/** The DSSE JSON form: base64 payload and signatures. */
export interface EnvelopeJson {
  readonly payloadType: string;
  readonly payload: string;
  readonly signatures: readonly { readonly keyid: string; readonly sig: string }[];
}

/** DSSE pre-authentication encoding: "DSSEv1 <len(type)> <type> <len(body)> <body>" (lengths in bytes). */
export function pae(payloadType: string, payload: Uint8Array): Uint8Array {
  const type = Buffer.from(payloadType, "utf8");
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} ${payloadType} ${payload.length} `, "utf8"), payload]);
}

/** Signs a statement (its exact bytes) into a DSSE envelope. */
export function signStatement(statement: Uint8Array, key: { id: string; privateKey: KeyObject }): EnvelopeJson {
  const sig = sign(null, pae(IN_TOTO_PAYLOAD_TYPE, statement), key.privateKey);
  return {
    payloadType: IN_TOTO_PAYLOAD_TYPE,
    payload: Buffer.from(statement).toString("base64"),
    signatures: [{ keyid: key.id, sig: sig.toString("base64") }],
  };
}

/** Checks that bytes are an in-toto Statement v1 JSON object; returns it parsed. */
export function parseStatementFile(bytes: Uint8Array, name: string): Record<string, unknown> {
  let s: unknown;
  try {
    s = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch (e) {
    throw new Error(`${name} is not JSON: ${(e as Error).message}`, { cause: e });
  }
  if (s === null || typeof s !== "object" || Array.isArray(s)) throw new Error(`${name} must hold a JSON object (an in-toto Statement v1)`);
  const st = s as Record<string, unknown>;
  if (st._type !== IN_TOTO_STATEMENT_V1) throw new Error(`${name}: _type must be ${JSON.stringify(IN_TOTO_STATEMENT_V1)}`);
  if (!Array.isArray(st.subject) || st.subject.length === 0) throw new Error(`${name}: subject must be a non-empty array`);
  if (typeof st.predicateType !== "string") throw new Error(`${name}: predicateType must be a string`);
  return st;
}

/**
 * The leaf bytes the log hashes: RFC 8785 canonical JSON of the envelope. Every value is an
 * ASCII string (type, base64, actor ids), so JCS is JSON.stringify with sorted keys.
 */
export function envelopeLeaf(e: EnvelopeJson): Uint8Array {
  const strings = [e.payloadType, e.payload, ...e.signatures.flatMap((s) => [s.keyid, s.sig])];
  if (strings.some((v) => typeof v !== "string" || !/^[\x20-\x7e]*$/.test(v))) {
    throw new Error("envelope fields must be printable ASCII strings");
  }
  const json = JSON.stringify({
    payload: e.payload,
    payloadType: e.payloadType,
    signatures: e.signatures.map((s) => ({ keyid: s.keyid, sig: s.sig })),
  });
  return Buffer.from(json, "utf8");
}

/** Whether a parsed JSON value looks like a DSSE envelope in JSON form. */
export function isEnvelopeJson(v: unknown): v is EnvelopeJson {
  const e = v as Partial<EnvelopeJson> | null;
  return (
    e !== null &&
    typeof e === "object" &&
    typeof e.payloadType === "string" &&
    typeof e.payload === "string" &&
    Array.isArray(e.signatures) &&
    e.signatures.every((s) => typeof s?.keyid === "string" && typeof s?.sig === "string")
  );
}
