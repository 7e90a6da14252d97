import { create } from "@bufbuild/protobuf";
import { DsseEnvelopeSchema, type DsseEnvelope as DsseEnvelopeProto } from "@deai/contracts/deai/common/v1/common_pb";
import type { DsseEnvelope } from "@deai/proofs";

export function envelopeToProto(e: DsseEnvelope): DsseEnvelopeProto {
  return create(DsseEnvelopeSchema, {
    payloadType: e.payloadType,
    payload: e.payload,
    signatures: e.signatures.map((s) => ({ keyid: s.keyid, sig: s.sig })),
  });
}

export function envelopeFromProto(e: DsseEnvelopeProto | undefined): DsseEnvelope | undefined {
  if (!e) return undefined;
  return { payloadType: e.payloadType, payload: e.payload, signatures: e.signatures.map((s) => ({ keyid: s.keyid, sig: s.sig })) };
}
