// Interop facts from transparency-dev/formats' cosignature tests (a Go implementation).

import { ed25519 } from "@noble/curves/ed25519.js";

import { base64Decode } from "./encoding.js";
import { ProofError } from "./errors.js";
import { COSIGNATURE_V1_TYPE, cosignatureSigner, cosignatureTimestamp, cosignatureVerifier } from "./cosignature.js";
import { ED25519_TYPE, formatVerifierKey, parseVerifierKey } from "./note-keys.js";
import { openNote, signNote } from "./signed-note.js";

test("a type 0x04 verifier key from the Go implementation parses with a matching key ID", () => {
  const v = parseVerifierKey("remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2");
  expect(v.type).toBe(COSIGNATURE_V1_TYPE);
  expect(v.keyId).toBe(0xda77ade7);
  const ed = parseVerifierKey("TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6");
  expect(ed.type).toBe(ED25519_TYPE);
});

test("the timestamp of a Go cosignature reads back", () => {
  const payload = base64Decode("ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA==")!;
  expect(cosignatureTimestamp(payload.subarray(4))).toBe(1727964367);
  const plainEd25519 = base64Decode("eQjRQm6eSKzFoiYalgwCPXu2y3ijtg68is9M46JKxuZB+dRfTmeQeDBoXnvxZx2ugnkyV+MUMLXpWs1hPb/W/4xkNQY=")!;
  expect(() => cosignatureTimestamp(plainEd25519.subarray(4))).toThrow(ProofError);
});

test("cosign and verify round trip; the signature covers extension lines", () => {
  const seed = new Uint8Array(32).fill(5);
  const signer = cosignatureSigner("witness.example/w1", seed, () => 1700000000);
  const body = "test\n123\nf+7CoKgXKE/tNys9TTXcr/ad6U/K3xvznmzew9y6SP0=\nExtendo\n";
  const note = signNote(body, [signer]);
  const verifier = cosignatureVerifier("witness.example/w1", ed25519.getPublicKey(seed));
  expect(openNote(note, [verifier]).verified).toHaveLength(1);
  expect(() => openNote(note.replace("Extendo", "Extend@"), [verifier])).toThrow(expect.objectContaining({ code: "invalid-signature" }));
  // A plain Ed25519 verifier for the same key and name is a different identity: it ignores the line.
  expect(() =>
    openNote(note, [parseVerifierKey(formatVerifierKey("witness.example/w1", ED25519_TYPE, ed25519.getPublicKey(seed)))]),
  ).toThrow(expect.objectContaining({ code: "no-verified-signature" }));
});
