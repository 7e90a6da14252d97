import { ed25519 } from "@noble/curves/ed25519.js";

import { base64Encode, utf8Encode } from "./encoding.js";
import { cosignCheckpoint, formatCheckpoint, openCheckpoint, parseCheckpoint, signCheckpoint, type Checkpoint } from "./checkpoint.js";
import { COSIGNATURE_V1_TYPE, cosignatureMessage, cosignatureSigner, cosignatureTimestamp, cosignatureVerifier } from "./cosignature.js";
import { ed25519Signer, ed25519Verifier, formatSignerKey, formatVerifierKey, parseSignerKey, parseVerifierKey } from "./note-keys.js";
import { noteKeyId, parseNote } from "./signed-note.js";
import { codeOf } from "../test/error-code.js";

const ROOT = new Uint8Array(32).map((_, i) => i);
const cp: Checkpoint = { origin: "example.com/log", size: 20852163, rootHash: ROOT, extensions: [] };

describe("checkpoint text", () => {
  test("formats and parses", () => {
    const text = formatCheckpoint(cp);
    expect(text).toBe(`example.com/log\n20852163\n${base64Encode(ROOT)}\n`);
    expect(parseCheckpoint(text)).toEqual(cp);
    const withExt = { ...cp, extensions: ["ext one", "ext two"] };
    expect(parseCheckpoint(formatCheckpoint(withExt))).toEqual(withExt);
    expect(parseCheckpoint(`o\n0\n${base64Encode(ROOT)}\n`).size).toBe(0);
  });

  const root = base64Encode(ROOT);
  test.each([
    ["no final newline", `o\n1\n${root}`],
    ["two lines", `o\n1\n`],
    ["empty origin", `\n1\n${root}\n`],
    ["leading zero", `o\n01\n${root}\n`],
    ["sign", `o\n+1\n${root}\n`],
    ["negative", `o\n-1\n${root}\n`],
    ["hex size", `o\n0x10\n${root}\n`],
    ["size with space", `o\n1 \n${root}\n`],
    ["size beyond 2^53", `o\n18446744073709551615\n${root}\n`],
    ["short root", `o\n1\n${base64Encode(ROOT.subarray(1))}\n`],
    ["unpadded root", `o\n1\n${root.replace(/=$/, "")}\n`],
    ["base64url root", `o\n1\n${base64Encode(new Uint8Array(32).fill(0xfb)).replaceAll("+", "-").replaceAll("/", "_")}\n`],
    ["empty extension line", `o\n1\n${root}\n\next\n`],
    ["trailing blank line", `o\n1\n${root}\n\n`],
    ["CRLF", `o\r\n1\r\n${root}\r\n`],
  ])("rejects %s", (_why, text) => {
    expect(codeOf(() => parseCheckpoint(text))).toBe("malformed-checkpoint");
  });

  test("format refuses what parse would reject", () => {
    expect(codeOf(() => formatCheckpoint({ ...cp, origin: "" }))).toBe("malformed-checkpoint");
    expect(codeOf(() => formatCheckpoint({ ...cp, size: -1 }))).toBe("malformed-checkpoint");
    expect(codeOf(() => formatCheckpoint({ ...cp, rootHash: ROOT.subarray(2) }))).toBe("malformed-checkpoint");
    expect(codeOf(() => formatCheckpoint({ ...cp, extensions: [""] }))).toBe("malformed-checkpoint");
  });
});

describe("signed checkpoints and cosignatures", () => {
  const logSeed = new Uint8Array(32).fill(11);
  const log = ed25519Signer("example.com/log", logSeed);
  const logV = ed25519Verifier("example.com/log", ed25519.getPublicKey(logSeed));
  const wSeeds = [21, 22, 23].map((b) => new Uint8Array(32).fill(b));
  const witnesses = wSeeds.map((s, i) => cosignatureSigner(`witness${i}.example`, s, () => 1679315147 + i));
  const witnessVs = wSeeds.map((s, i) => cosignatureVerifier(`witness${i}.example`, ed25519.getPublicKey(s)));

  const signed = signCheckpoint(cp, [log]);
  const cosigned = [witnesses[0]!, witnesses[1]!].reduce((note, w) => cosignCheckpoint(parseNote(note), w), signed);

  test("the log signature alone opens with no witness policy", () => {
    const v = openCheckpoint(signed, { log: logV });
    expect(v.checkpoint).toEqual(cp);
    expect(v.cosignatures).toEqual([]);
  });

  test("cosignatures verify, carry their timestamps, and count toward the quorum", () => {
    const v = openCheckpoint(cosigned, { log: logV, witnesses: witnessVs, witnessThreshold: 2 });
    expect(v.cosignatures).toEqual([
      { name: "witness0.example", keyId: witnessVs[0]!.keyId, timestamp: 1679315147 },
      { name: "witness1.example", keyId: witnessVs[1]!.keyId, timestamp: 1679315148 },
    ]);
    expect(codeOf(() => openCheckpoint(cosigned, { log: logV, witnesses: witnessVs }))).toBe("witness-quorum");
    expect(codeOf(() => openCheckpoint(cosigned, { log: logV, witnesses: witnessVs, witnessThreshold: 4 }))).toBe("invalid-argument");
  });

  test("a cosignature is over cosignature/v1 + time + the checkpoint body, with payload ts ‖ sig", () => {
    const sig = parseNote(cosigned).signatures.find((s) => s.name === "witness0.example")!;
    expect(sig.signature).toHaveLength(72);
    expect(cosignatureTimestamp(sig.signature)).toBe(1679315147);
    const message = utf8Encode(`cosignature/v1\ntime 1679315147\n${formatCheckpoint(cp)}`)!;
    expect(cosignatureMessage(1679315147, utf8Encode(formatCheckpoint(cp))!)).toEqual(message);
    expect(ed25519.verify(sig.signature.subarray(8), message, ed25519.getPublicKey(wSeeds[0]!))).toBe(true);
  });

  test("cosignature key IDs use type 0x04, so the same key signs as a distinct identity", () => {
    const pub = ed25519.getPublicKey(wSeeds[0]!);
    expect(witnessVs[0]!.keyId).toBe(noteKeyId("witness0.example", COSIGNATURE_V1_TYPE, pub));
    expect(witnessVs[0]!.keyId).not.toBe(ed25519Verifier("witness0.example", pub).keyId);
    const vkey = formatVerifierKey("witness0.example", COSIGNATURE_V1_TYPE, pub);
    expect(parseVerifierKey(vkey).type).toBe(COSIGNATURE_V1_TYPE);
    const skey = formatSignerKey("witness0.example", COSIGNATURE_V1_TYPE, wSeeds[0]!);
    const fromText = parseSignerKey(skey, { clock: () => 5 });
    const v = openCheckpoint(cosignCheckpoint(parseNote(signed), fromText), { log: logV, witnesses: [parseVerifierKey(vkey)] });
    expect(v.cosignatures[0]!.timestamp).toBe(5);
  });

  test("a tampered timestamp or checkpoint breaks the cosignature", () => {
    const note = parseNote(cosigned);
    const sigs = note.signatures.map((s) => {
      if (s.name !== "witness0.example") return s;
      const bad = s.signature.slice();
      bad[7]! ^= 1;
      return { ...s, signature: bad };
    });
    const tampered = parseNote(cosigned);
    expect(
      codeOf(() => openCheckpoint({ text: tampered.text, signatures: sigs }, { log: logV, witnesses: witnessVs, witnessThreshold: 1 })),
    ).toBe("invalid-signature");
    const otherBody = { text: formatCheckpoint({ ...cp, size: cp.size + 1 }), signatures: note.signatures };
    expect(codeOf(() => openCheckpoint(otherBody, { log: logV }))).toBe("invalid-signature");
  });

  test("the log key is required, and the origin must match", () => {
    const witnessOnly = cosignCheckpoint(
      { text: formatCheckpoint(cp), signatures: parseNote(cosigned).signatures.filter((s) => s.name !== "example.com/log") },
      witnesses[2]!,
    );
    expect(codeOf(() => openCheckpoint(witnessOnly, { log: logV, witnesses: witnessVs, witnessThreshold: 0 }))).toBe(
      "no-verified-signature",
    );
    expect(codeOf(() => openCheckpoint(signed, { log: logV, origin: "example.com/other" }))).toBe("origin-mismatch");
    const foreign = signCheckpoint({ ...cp, origin: "example.com/elsewhere" }, [log]);
    expect(codeOf(() => openCheckpoint(foreign, { log: logV }))).toBe("origin-mismatch");
    expect(openCheckpoint(foreign, { log: logV, origin: "example.com/elsewhere" }).checkpoint.origin).toBe("example.com/elsewhere");
  });

  test("a signed note that is not a checkpoint is rejected after its signature checks", () => {
    const text = "example.com/log\nnot a size\nxx\n";
    const junk = { text, signatures: [{ name: log.name, keyId: log.keyId, signature: log.sign(utf8Encode(text)!) }] };
    expect(codeOf(() => openCheckpoint(junk, { log: logV }))).toBe("malformed-checkpoint");
  });
});
