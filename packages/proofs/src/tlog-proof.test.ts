import { ed25519 } from "@noble/curves/ed25519.js";

import { signCheckpoint, cosignCheckpoint } from "./checkpoint.js";
import { cosignatureSigner, cosignatureVerifier } from "./cosignature.js";
import { base64Encode, utf8Encode } from "./encoding.js";
import { inclusionProof } from "./inclusion.js";
import { MerkleFrontier } from "./merkle-frontier.js";
import { ed25519Signer, ed25519Verifier } from "./note-keys.js";
import { leafHash, subtreeHashAccessor } from "./rfc6962.js";
import { parseNote } from "./signed-note.js";
import { buildTlogProof, formatTlogProof, parseTlogProof, TLOG_PROOF_HEADER, verifyTlogProof, type TlogProof } from "./tlog-proof.js";
import { codeOf } from "../test/error-code.js";

const ORIGIN = "ledger.deai.example/log";
const logSeed = new Uint8Array(32).fill(1);
const log = ed25519Signer(ORIGIN, logSeed);
const logV = ed25519Verifier(ORIGIN, ed25519.getPublicKey(logSeed));
const wSeeds = [2, 3].map((b) => new Uint8Array(32).fill(b));
const witnesses = wSeeds.map((s, i) => cosignatureSigner(`w${i}.example`, s, () => 1750000000));
const witnessVs = wSeeds.map((s, i) => cosignatureVerifier(`w${i}.example`, ed25519.getPublicKey(s)));

const entries = Array.from({ length: 37 }, (_, i) => utf8Encode(`{"statement":${i}}`)!);
const leaves = entries.map(leafHash);
const size = entries.length;
const frontier = MerkleFrontier.of(leaves);
const signed = signCheckpoint({ origin: ORIGIN, size, rootHash: frontier.root(), extensions: [] }, [log]);
const cosigned = cosignCheckpoint(parseNote(signed), witnesses[0]!);
const at = subtreeHashAccessor(leaves);

function receipt(index: number, checkpoint = cosigned, extra?: Uint8Array): string {
  const p: TlogProof = { index, inclusionProof: inclusionProof(index, size, at), checkpoint, ...(extra ? { extra } : {}) };
  return formatTlogProof(p);
}

test("the text format: header, optional extra, index, proof lines, blank line, checkpoint verbatim", () => {
  const text = receipt(5, cosigned, utf8Encode("context"));
  const proof = inclusionProof(5, size, at);
  expect(text).toBe(
    [TLOG_PROOF_HEADER, `extra ${base64Encode(utf8Encode("context")!)}`, "index 5", ...proof.map(base64Encode), ""].join("\n") +
      "\n" +
      cosigned,
  );
  const parsed = parseTlogProof(text);
  expect(parsed.index).toBe(5);
  expect(parsed.extra).toEqual(utf8Encode("context"));
  expect(parsed.inclusionProof).toEqual(proof);
  expect(parsed.checkpoint).toBe(cosigned);
  expect(formatTlogProof(parsed)).toBe(text);
  expect(parseTlogProof(utf8Encode(text)!)).toEqual(parsed);
  expect(parseTlogProof(receipt(5)).extra).toBeUndefined();
});

test("every entry's receipt verifies offline, from the entry or its leaf hash", () => {
  for (let i = 0; i < size; i++) {
    const r = receipt(i);
    const v = verifyTlogProof(r, { entry: entries[i]! }, { log: logV });
    expect(v.index).toBe(i);
    expect(v.checkpoint.size).toBe(size);
    verifyTlogProof(r, { leafHash: leaves[i]! }, { log: logV, witnesses: witnessVs, witnessThreshold: 1 });
  }
});

test("buildTlogProof takes the tree size from the checkpoint", () => {
  const built = buildTlogProof(9, cosigned, at, utf8Encode("ctx"));
  expect(built).toBe(receipt(9, cosigned, utf8Encode("ctx")));
  expect(verifyTlogProof(built, { entry: entries[9]! }, { log: logV }).extra).toEqual(utf8Encode("ctx"));
  const smaller = signCheckpoint({ origin: ORIGIN, size: 10, rootHash: MerkleFrontier.of(leaves.slice(0, 10)).root(), extensions: [] }, [
    log,
  ]);
  verifyTlogProof(buildTlogProof(9, smaller, at), { entry: entries[9]! }, { log: logV });
});

test("a one-entry tree has an empty proof", () => {
  const one = signCheckpoint({ origin: ORIGIN, size: 1, rootHash: leaves[0]!, extensions: [] }, [log]);
  const r = formatTlogProof({ index: 0, inclusionProof: [], checkpoint: one });
  expect(r).toBe(`${TLOG_PROOF_HEADER}\nindex 0\n\n${one}`);
  expect(verifyTlogProof(r, { entry: entries[0]! }, { log: logV }).index).toBe(0);
});

describe("verification fails for the right reason", () => {
  const r = receipt(11);
  test.each([
    ["another entry", () => verifyTlogProof(r, { entry: entries[12]! }, { log: logV }), "root-mismatch"],
    [
      "another log key",
      () => verifyTlogProof(r, { entry: entries[11]! }, { log: ed25519Verifier(ORIGIN, ed25519.getPublicKey(wSeeds[1]!)) }),
      "no-verified-signature",
    ],
    ["another origin", () => verifyTlogProof(r, { entry: entries[11]! }, { log: logV, origin: "other.example/log" }), "origin-mismatch"],
    ["an unmet witness quorum", () => verifyTlogProof(r, { entry: entries[11]! }, { log: logV, witnesses: witnessVs }), "witness-quorum"],
    [
      "a tampered proof hash",
      () => {
        const p = parseTlogProof(r);
        const bad = p.inclusionProof.map((h) => h.slice());
        bad[2]![0]! ^= 1;
        return verifyTlogProof({ ...p, inclusionProof: bad }, { entry: entries[11]! }, { log: logV });
      },
      "root-mismatch",
    ],
    ["a shifted index", () => verifyTlogProof(r.replace("index 11", "index 10"), { entry: entries[11]! }, { log: logV }), "root-mismatch"],
    [
      "an index beyond the tree",
      () => verifyTlogProof(r.replace("index 11", "index 37"), { entry: entries[11]! }, { log: logV }),
      "index-out-of-range",
    ],
    [
      "a dropped proof line",
      () => verifyTlogProof(r.replace(/\nindex 11\n[^\n]+\n/, "\nindex 11\n"), { entry: entries[11]! }, { log: logV }),
      "wrong-proof-size",
    ],
    [
      "a tampered checkpoint",
      () => verifyTlogProof(r.replace(`\n${size}\n`, `\n${size + 1}\n`), { entry: entries[11]! }, { log: logV }),
      "invalid-signature",
    ],
    ["a bad leaf hash", () => verifyTlogProof(r, { leafHash: new Uint8Array(31) }, { log: logV }), "bad-hash-size"],
  ])("%s", (_why, run, code) => {
    expect(codeOf(run)).toBe(code);
  });
});

describe("malformed receipts are rejected", () => {
  const r = receipt(3);
  const hash = base64Encode(new Uint8Array(32));
  test.each([
    ["wrong header", r.replace(TLOG_PROOF_HEADER, "c2sp.org/tlog-proof@v2")],
    ["missing index", `${TLOG_PROOF_HEADER}\n${hash}\n\n${cosigned}`],
    ["index with leading zero", r.replace("index 3", "index 03")],
    ["negative index", r.replace("index 3", "index -3")],
    ["index too large", r.replace("index 3", "index 18446744073709551615")],
    ["extra after index", r.replace("index 3\n", "index 3\nextra AAAA\n")],
    ["invalid extra", r.replace("index 3\n", "extra !!\nindex 3\n")],
    ["hash of 31 bytes", r.replace("index 3\n", `index 3\n${base64Encode(new Uint8Array(31))}\n`)],
    ["hash not base64", r.replace("index 3\n", "index 3\nnot base64!\n")],
    ["no blank line", `${TLOG_PROOF_HEADER}\nindex 3\n${hash}`],
    ["no checkpoint", `${TLOG_PROOF_HEADER}\nindex 3\n${hash}\n\n`],
  ])("%s", (_why, text) => {
    expect(codeOf(() => parseTlogProof(text))).toBe("malformed-receipt");
  });

  test("invalid UTF-8", () => {
    expect(codeOf(() => parseTlogProof(new Uint8Array([0xff, 0x0a])))).toBe("malformed-receipt");
  });
});
