import { createPublicKey, generateKeyPairSync, sign, verify } from "node:crypto";

import {
  actorKeyid,
  actorPublicKey,
  distinctSignatures,
  dsseFromJson,
  dsseSign,
  dsseToJson,
  dsseVerify,
  ed25519DsseSigner,
  MAX_ENVELOPE_SIGNATURES,
  pae,
} from "./dsse.js";
import { ProofError } from "./errors.js";
import { IN_TOTO_PAYLOAD_TYPE } from "./in-toto.js";

const text = (b: Uint8Array): string => new TextDecoder().decode(b);
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const seed = (n: number): Uint8Array => new Uint8Array(32).fill(n);

function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof ProofError) return e.code;
    throw e;
  }
  return "no error";
}

describe("DSSE PAE", () => {
  it("matches the DSSE protocol spec's example (protocol.md, Test cases)", () => {
    expect(text(pae("http://example.com/HelloWorld", bytes("hello world")))).toBe("DSSEv1 29 http://example.com/HelloWorld 11 hello world");
  });

  it("counts lengths in UTF-8 bytes and passes the body through byte for byte", () => {
    const body = new Uint8Array([0, 0xff, 0x0a]);
    const out = pae("type é", body);
    expect(Array.from(out)).toEqual([...bytes("DSSEv1 7 type é 3 "), 0, 0xff, 0x0a]);
    expect(text(pae("", new Uint8Array()))).toBe("DSSEv1 0  0 ");
  });

  it("refuses a payload type with a lone surrogate (no UTF-8 form to sign)", () => {
    expect(code(() => pae("t\ud800", bytes("x")))).toBe("invalid-argument");
  });
});

describe("DSSE sign and verify (Ed25519)", () => {
  const payload = bytes('{"_type":"https://in-toto.io/Statement/v1"}');

  it("signs the PAE so that node:crypto verifies it, with the actor id as keyid", () => {
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    const jwk = privateKey.export({ format: "jwk" });
    const signer = ed25519DsseSigner(Buffer.from(jwk.d!, "base64url"));
    expect(signer.keyid).toBe(jwk.x);
    const e = dsseSign(IN_TOTO_PAYLOAD_TYPE, payload, [signer]);
    expect(verify(null, pae(IN_TOTO_PAYLOAD_TYPE, payload), publicKey, e.signatures[0]!.sig)).toBe(true);
    // And the other way round: a node:crypto signature verifies here.
    const sig = sign(null, pae(IN_TOTO_PAYLOAD_TYPE, payload), privateKey);
    expect(dsseVerify({ payloadType: IN_TOTO_PAYLOAD_TYPE, payload, signatures: [{ keyid: jwk.x!, sig }] }).signers).toEqual([jwk.x]);
  });

  it("maps actor ids to public keys and back", () => {
    const { publicKey } = generateKeyPairSync("ed25519");
    const x = publicKey.export({ format: "jwk" }).x!;
    const raw = actorPublicKey(x)!;
    expect(actorKeyid(raw)).toBe(x);
    expect(createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: actorKeyid(raw) }, format: "jwk" }).equals(publicKey)).toBe(true);
    expect(actorPublicKey("not-a-key")).toBeUndefined();
    expect(actorPublicKey(x.slice(0, 42) + "B")).toBeUndefined();
  });

  it("rejects a signature over a different payload type or body", () => {
    const e = dsseSign("a", payload, [ed25519DsseSigner(seed(1))]);
    expect(code(() => dsseVerify({ ...e, payloadType: "b" }))).toBe("invalid-signature");
    expect(code(() => dsseVerify({ ...e, payload: bytes("other") }))).toBe("invalid-signature");
    expect(code(() => dsseVerify(e, { expectedPayloadType: "b" }))).toBe("invalid-argument");
    expect(dsseVerify(e, { expectedPayloadType: "a" }).signers).toEqual([ed25519DsseSigner(seed(1)).keyid]);
  });

  it("ignores unknown keys, but needs one verified signature", () => {
    const a = ed25519DsseSigner(seed(1));
    const e = dsseSign("t", payload, [a, { keyid: "someone", sign: () => new Uint8Array(64) }]);
    expect(dsseVerify(e)).toEqual({ signers: [a.keyid], unknown: ["someone"] });
    expect(code(() => dsseVerify({ ...e, signatures: e.signatures.slice(1) }))).toBe("no-verified-signature");
    expect(code(() => dsseVerify({ ...e, signatures: [] }))).toBe("no-verified-signature");
  });

  it("checks repeated (keyid, sig) pairs once and refuses more than MAX_ENVELOPE_SIGNATURES", () => {
    const a = ed25519DsseSigner(seed(1));
    const e = dsseSign("t", payload, [a]);
    const repeated = Array.from({ length: MAX_ENVELOPE_SIGNATURES }, () => e.signatures[0]!);
    expect(distinctSignatures(repeated)).toEqual([{ index: 0, signature: e.signatures[0] }]);
    expect(dsseVerify({ ...e, signatures: repeated }).signers).toEqual([a.keyid]);
    expect(code(() => dsseVerify({ ...e, signatures: [...repeated, e.signatures[0]!] }))).toBe("invalid-argument");
    // Same keyid, different signature bytes: both are checked (and the bad one rejects).
    const bad = { keyid: a.keyid, sig: new Uint8Array(64) };
    expect(distinctSignatures([e.signatures[0]!, bad])).toHaveLength(2);
    expect(code(() => dsseVerify({ ...e, signatures: [e.signatures[0]!, bad] }))).toBe("invalid-signature");
  });

  it("round-trips the DSSE JSON form and refuses malformed JSON forms", () => {
    const e = dsseSign("t", payload, [ed25519DsseSigner(seed(2))]);
    const j = dsseToJson(e);
    expect(j.payload).toBe(Buffer.from(payload).toString("base64"));
    expect(dsseFromJson(JSON.parse(JSON.stringify(j)))).toEqual({ ...e, signatures: e.signatures.map((s) => ({ ...s })) });
    expect(code(() => dsseFromJson(null))).toBe("invalid-argument");
    expect(code(() => dsseFromJson({ ...j, payload: "not base64!" }))).toBe("invalid-argument");
    expect(code(() => dsseFromJson({ ...j, signatures: [{ keyid: 1, sig: "" }] }))).toBe("invalid-argument");
  });
});
