import { readFileSync } from "node:fs";
import { join } from "node:path";

import { sharedTestdata } from "../test/shared-testdata.js";
import { base64Decode, base64Encode, utf8Encode } from "./encoding.js";
import {
  ED25519_TYPE,
  ed25519Signer,
  formatSignerKey,
  formatVerifierKey,
  generateNoteKey,
  parseSignerKey,
  parseVerifierKey,
} from "./note-keys.js";
import { formatNote, MAX_NOTE_SIGNATURES, noteKeyId, openNote, parseNote, signNote, type NoteSignature } from "./signed-note.js";
import { codeOf } from "../test/error-code.js";

interface Example {
  vkey: string;
  skey: string;
  text: string;
  note: string;
}
const example = JSON.parse(readFileSync(join(sharedTestdata("signed-note"), "example.json"), "utf8")) as Example;

describe("the C2SP / sumdb example", () => {
  const verifier = parseVerifierKey(example.vkey);
  const signer = parseSignerKey(example.skey);

  test("keys parse, and their IDs are SHA-256(name ‖ \\n ‖ 0x01 ‖ key)[:4]", () => {
    expect(verifier.name).toBe("PeterNeumann");
    expect(verifier.keyId).toBe(0xc74f20a3);
    expect(signer.keyId).toBe(0xc74f20a3);
    const pub = base64Decode(example.vkey.split("+").slice(2).join("+"))!.subarray(1);
    expect(noteKeyId("PeterNeumann", ED25519_TYPE, pub)).toBe(0xc74f20a3);
    expect(formatVerifierKey("PeterNeumann", ED25519_TYPE, pub)).toBe(example.vkey);
    const seed = base64Decode(example.skey.split("+").slice(4).join("+"))!.subarray(1);
    expect(formatSignerKey("PeterNeumann", ED25519_TYPE, seed)).toBe(example.skey);
  });

  test("the note verifies", () => {
    const opened = openNote(example.note, [verifier]);
    expect(opened.text).toBe(example.text);
    expect(opened.verified.map((s) => s.name)).toEqual(["PeterNeumann"]);
    expect(opened.unverified).toEqual([]);
    expect(openNote(utf8Encode(example.note)!, [verifier]).text).toBe(example.text);
  });

  test("signing the text reproduces the note byte for byte (Ed25519 is deterministic)", () => {
    expect(signNote(example.text, [signer])).toBe(example.note);
  });

  test("a tampered body fails", () => {
    const tampered = example.note.replace("cryptography", "Cryptography");
    expect(codeOf(() => openNote(tampered, [verifier]))).toBe("invalid-signature");
  });

  test("a tampered signature fails", () => {
    const note = parseNote(example.note);
    const sig = note.signatures[0]!;
    for (const byte of [0, 31, 63]) {
      const bad = sig.signature.slice();
      bad[byte]! ^= 1;
      const tampered = formatNote({ text: note.text, signatures: [{ ...sig, signature: bad }] });
      expect(codeOf(() => openNote(tampered, [verifier]))).toBe("invalid-signature");
    }
  });

  test("signatures from unknown keys are ignored, but one known key must verify", () => {
    const other = ed25519Signer("example.com/other", new Uint8Array(32).fill(7));
    // Same name, different key: still unknown (name and ID must both match).
    const impostor = ed25519Signer("PeterNeumann", new Uint8Array(32).fill(9));
    const both = signNote(parseNote(example.note), [other, impostor]);
    const opened = openNote(both, [verifier]);
    expect(opened.verified.map((s) => s.keyId)).toEqual([0xc74f20a3]);
    expect(opened.unverified.map((s) => s.name)).toEqual(["example.com/other", "PeterNeumann"]);
    const onlyUnknown = signNote(example.text, [other, impostor]);
    expect(codeOf(() => openNote(onlyUnknown, [verifier]))).toBe("no-verified-signature");
    expect(codeOf(() => openNote(example.note, []))).toBe("no-verified-signature");
  });

  test("re-signing replaces a key's old signature instead of duplicating it", () => {
    const resigned = signNote(parseNote(example.note), [signer]);
    expect(resigned).toBe(example.note);
  });
});

describe("malformed notes are rejected", () => {
  const { signerKey, verifierKey } = generateNoteKey("example.com/log", { seed: new Uint8Array(32).fill(1) });
  const signer = parseSignerKey(signerKey);
  const verifier = parseVerifierKey(verifierKey);
  const good = signNote("hello\nworld\n", [signer]);
  const sigLine = good.slice(good.indexOf("\u2014"));

  test("the good note opens", () => {
    expect(openNote(good, [verifier]).text).toBe("hello\nworld\n");
  });

  test.each([
    ["no blank line", `hello\n${sigLine}`],
    ["no signature lines", "hello\n\n"],
    ["trailing blank line", `${good}\n`],
    ["missing final newline", good.slice(0, -1)],
    ["ASCII hyphen instead of em dash", good.replace("\u2014", "-")],
    ["en dash instead of em dash", good.replace("\u2014", "\u2013")],
    ["two spaces after the dash", good.replace("\u2014 ", "\u2014  ")],
    ["name with +", good.replace("example.com/log", "example.com/lo+g")],
    ["name with a no-break space", good.replace("example.com/log", "example.com/\u00a0log")],
    ["non-canonical base64", good.replace(/=\n$/, "\n")],
    ["signature shorter than 5 bytes", "hello\n\n\u2014 example.com/log AAAAAA==\n"],
    ["carriage return", good.replace("hello\n", "hello\r\n")],
    ["tab", good.replace("hello", "hel\tlo")],
    ["NUL", good.replace("hello", "hel\u0000lo")],
    ["lone surrogate", good.replace("hello", "hel\ud800lo")],
  ])("%s", (_why, text) => {
    expect(codeOf(() => openNote(text, [verifier]))).toBe("malformed-note");
  });

  test("invalid UTF-8 bytes", () => {
    const bytes = utf8Encode(good)!;
    const bad = new Uint8Array([...bytes.subarray(0, 2), 0xff, ...bytes.subarray(2)]);
    expect(codeOf(() => openNote(bad, [verifier]))).toBe("malformed-note");
  });

  test(`more than ${MAX_NOTE_SIGNATURES} signatures`, () => {
    const line = sigLine;
    expect(codeOf(() => parseNote(`hello\nworld\n\n${line.repeat(MAX_NOTE_SIGNATURES)}`))).toBe("ok");
    expect(codeOf(() => parseNote(`hello\nworld\n\n${line.repeat(MAX_NOTE_SIGNATURES + 1)}`))).toBe("malformed-note");
  });

  test("text may hold blank lines: it ends at the last one (as in the C2SP example)", () => {
    const poem = "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n";
    const signed = signNote(poem, [signer]);
    expect(openNote(signed, [verifier]).text).toBe(poem);
    const c2sp = parseNote(
      poem +
        "\n\u2014 quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n",
    );
    expect(c2sp.text).toBe(poem);
    expect(c2sp.signatures[0]!.name).toBe("quasimodo.example/salvatore");
    expect(c2sp.signatures[0]!.signature).toHaveLength(64);
  });

  test("signing refuses text without a final newline or with control characters", () => {
    expect(codeOf(() => signNote("hello", [signer]))).toBe("malformed-note");
    expect(codeOf(() => signNote("he\u0007llo\n", [signer]))).toBe("malformed-note");
    expect(codeOf(() => signNote("hello\n", []))).toBe("invalid-argument");
  });

  test("a known key signing twice counts once", () => {
    const dup: NoteSignature = parseNote(good).signatures[0]!;
    const twice = formatNote({ text: "hello\nworld\n", signatures: [dup, dup] });
    expect(openNote(twice, [verifier]).verified).toHaveLength(1);
  });
});

describe("key text", () => {
  const { signerKey, verifierKey } = generateNoteKey("example.com/k", { seed: new Uint8Array(32).fill(3) });

  test("random keys differ and work", () => {
    const a = generateNoteKey("example.com/r");
    const b = generateNoteKey("example.com/r");
    expect(a.signerKey).not.toBe(b.signerKey);
    expect(openNote(signNote("x\n", [parseSignerKey(a.signerKey)]), [parseVerifierKey(a.verifierKey)]).verified).toHaveLength(1);
  });
  // Name, key ID, and the rest (base64 may itself hold "+").
  const cut = (vkey: string): [string, string, string] => {
    const a = vkey.indexOf("+");
    const b = vkey.indexOf("+", a + 1);
    return [vkey.slice(0, a), vkey.slice(a + 1, b), vkey.slice(b + 1)];
  };
  const [vName, vId, vKey] = cut(verifierKey);

  test("generated keys round-trip", () => {
    expect(signerKey.startsWith("PRIVATE+KEY+example.com/k+")).toBe(true);
    const s = parseSignerKey(signerKey);
    const v = parseVerifierKey(verifierKey);
    expect(s.keyId).toBe(v.keyId);
    expect(openNote(signNote("x\n", [s]), [v]).verified).toHaveLength(1);
  });

  test.each([
    ["wrong key ID", `${vName}+${((parseInt(vId, 16) ^ 1) >>> 0).toString(16).padStart(8, "0")}+${vKey}`, "key-id-mismatch"],
    ["short key ID", `${vName}+abc+${vKey}`, "malformed-key"],
    ["missing name", `${vId}+${vKey}`, "malformed-key"],
    ["name with a space", `example.com/ k+${vId}+${vKey}`, "malformed-key"],
    [
      "unknown type",
      (() => {
        const raw = base64Decode(vKey)!;
        raw[0] = 0x02;
        return `${vName}+${vId}+${base64Encode(raw)}`;
      })(),
      "malformed-key",
    ],
    ["short key", `${vName}+${vId}+AQID`, "malformed-key"],
  ])("verifier key with %s is rejected", (_why, vkey, code) => {
    expect(codeOf(() => parseVerifierKey(vkey))).toBe(code);
  });

  test("signer key text must start PRIVATE+KEY and match its key ID", () => {
    expect(codeOf(() => parseSignerKey(signerKey.replace("PRIVATE+KEY", "PUBLIC+KEY")))).toBe("malformed-key");
    expect(codeOf(() => parseSignerKey(signerKey.replace(`+${vId}+`, vId === "00000000" ? "+00000001+" : "+00000000+")))).toBe(
      "key-id-mismatch",
    );
    expect(codeOf(() => parseSignerKey(verifierKey))).toBe("malformed-key");
  });
});
