// DSSE envelopes as stored in jsonb columns (base64 payload and signatures).
import { create } from "@bufbuild/protobuf";

import { DsseEnvelopeSchema, type DsseEnvelope } from "@deai/contracts/deai/common/v1/common_pb";

export interface StoredEnvelope {
  payloadType: string;
  payload: string;
  signatures: { keyid: string; sig: string }[];
}

/** An envelope's DSSE JSON form, as stored. */
export function envelopeJson(e: DsseEnvelope): StoredEnvelope {
  return {
    payloadType: e.payloadType,
    payload: Buffer.from(e.payload).toString("base64"),
    signatures: e.signatures.map((s) => ({ keyid: s.keyid, sig: Buffer.from(s.sig).toString("base64") })),
  };
}

export function envelopeFromJson(json: unknown): DsseEnvelope {
  const e = json as StoredEnvelope;
  return create(DsseEnvelopeSchema, {
    payloadType: e.payloadType,
    payload: Buffer.from(e.payload, "base64"),
    signatures: e.signatures.map((s) => ({ keyid: s.keyid, sig: Buffer.from(s.sig, "base64") })),
  });
}
