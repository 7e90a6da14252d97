// DSSE envelopes around in-toto Statement v1, as the ledger verifies them: PAE signature
// (@deai/proofs, the one DSSE implementation), keyid = actor id, and the leaf the log hashes
// (the RFC 8785 canonical JSON of the envelope's JSON form).
import { sign, type KeyObject } from "node:crypto";

import { IN_TOTO_PAYLOAD_TYPE, pae, parseStatementFrame, type DsseEnvelopeJson } from "@deai/proofs";

/** The DSSE JSON form: base64 payload and signatures. */
export type EnvelopeJson = DsseEnvelopeJson;

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
  try {
    return parseStatementFrame(bytes) as unknown as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${name}: ${(e as Error).message}`, { cause: e });
  }
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
