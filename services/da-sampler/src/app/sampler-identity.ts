import { sign } from "node:crypto";

import type { ActorKey } from "@deai/kit";
import { dsseSign, IN_TOTO_PAYLOAD_TYPE, type DsseEnvelope, type DsseSigner } from "@deai/proofs";

/** One sampler identity: an Ed25519 actor key, its index in this process (for loop names). */
export class SamplerIdentity {
  readonly signer: DsseSigner;

  constructor(
    readonly key: ActorKey,
    readonly index: number,
  ) {
    this.signer = { keyid: key.id, sign: (message) => sign(null, message, key.privateKey) };
  }

  get id(): string {
    return this.key.id;
  }

  /** A DSSE envelope over an in-toto statement's bytes, signed by this sampler alone. */
  signStatement(payload: Uint8Array): DsseEnvelope {
    return dsseSign(IN_TOTO_PAYLOAD_TYPE, payload, [this.signer]);
  }
}
