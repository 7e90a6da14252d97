import { generateKeyPairSync, sign } from "node:crypto";

import { IN_TOTO_PAYLOAD_TYPE as IN_TOTO, pae } from "@deai/proofs";

import { prepareEnvelope, type SignatureCheck } from "../domain/envelope.js";
import { SignatureVerifier } from "./signature-verifier.js";

function checks(n: number): { checks: SignatureCheck[]; valid: boolean[] } {
  const keys = Array.from({ length: 3 }, () => generateKeyPairSync("ed25519"));
  const out: SignatureCheck[] = [];
  const valid: boolean[] = [];
  for (let i = 0; i < n; i++) {
    const k = keys[i % keys.length]!;
    const payload = new TextEncoder().encode(`{"n":${i}}`);
    let sig = new Uint8Array(sign(null, pae(IN_TOTO, payload), k.privateKey));
    const ok = i % 7 !== 3;
    if (!ok) sig = sig.map((b, j) => (j === 0 ? b ^ 1 : b));
    const keyid = k.publicKey.export({ format: "jwk" }).x!;
    out.push(...prepareEnvelope({ payloadType: IN_TOTO, payload, signatures: [{ keyid, sig }] }).checks);
    valid.push(ok);
  }
  return { checks: out, valid };
}

describe("SignatureVerifier", () => {
  it("answers each check in order, on worker threads and inline alike", async () => {
    const { checks: all, valid } = checks(120);
    for (const threads of [0, 1, 2]) {
      const v = new SignatureVerifier({ threads, minOffload: 8 });
      try {
        // Several callers in one turn share the workers; each gets its own answers.
        const parts = [all.slice(0, 5), all.slice(5, 64), all.slice(64)];
        const answers = await Promise.all(parts.map((p) => v.verify(p)));
        expect(answers.flat()).toEqual(valid);
        expect(await v.verify([])).toEqual([]);
      } finally {
        await v.close();
      }
    }
  });
});
