// Test helpers: signed DSSE envelopes over in-toto statements, in the REST JSON form.
import { createHash, sign } from "node:crypto";

import type { ActorKey } from "@deai/kit";

import { IN_TOTO_PAYLOAD_TYPE, pae, STATEMENT_V1_TYPE } from "@deai/proofs";

export const IN_TOTO = IN_TOTO_PAYLOAD_TYPE;

export function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** A statement about `subjects` (sha256 hex) with a predicate. */
export function statement(
  subjects: readonly string[],
  predicateType: string,
  predicate: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    _type: STATEMENT_V1_TYPE,
    subject: subjects.map((hex, i) => ({ name: `artifact-${i}`, digest: { sha256: hex } })),
    predicateType,
    predicate,
  };
}

/** A DSSE envelope in its JSON form, signed by each key. */
export function envelope(
  stmt: unknown,
  keys: readonly ActorKey[],
  payloadType = IN_TOTO,
): { payloadType: string; payload: string; signatures: { keyid: string; sig: string }[] } {
  const payload = Buffer.from(JSON.stringify(stmt));
  return {
    payloadType,
    payload: payload.toString("base64"),
    signatures: keys.map((k) => ({ keyid: k.id, sig: sign(null, pae(payloadType, payload), k.privateKey).toString("base64") })),
  };
}
