// The log scan and the lineage graph, in node: the same code the browser runs, over an
// in-memory tlog-tiles log (a full entry bundle and a partial one).
import { randomBytes } from "node:crypto";

import {
  IN_TOTO_PAYLOAD_TYPE,
  PredicateTypes,
  TILE_WIDTH,
  dsseSign,
  dsseToJson,
  ed25519DsseSigner,
  encodeEntryBundle,
  entryBundlePath,
  formatTlogProof,
  inclusionProofFromLeaves,
  generateNoteKey,
  leafHash,
  parseSignerKey,
  parseVerifierKey,
  rootFromLeafHashes,
  signCheckpoint,
  statementBytes,
  statementOf,
  utf8Encode,
} from "@deai/proofs";

import { buildLineage } from "./lineage.js";
import { checkServiceReceipt, scanLog, type Fetch } from "./verify.js";

const ORIGIN = "ledger.test/lineage";
const key = generateNoteKey(ORIGIN);
const signer = ed25519DsseSigner(new Uint8Array(randomBytes(32)));
const hex = (n: number): string => n.toString(16).padStart(64, "0");

function leaf(predicateType: string, subjects: number[], predicate: Record<string, unknown>): Uint8Array {
  const payload = statementBytes(
    statementOf(
      predicateType,
      subjects.map((s) => ({ name: `a${s}`, digest: { sha256: hex(s) } })),
      predicate,
    ),
  );
  return utf8Encode(JSON.stringify(dsseToJson(dsseSign(IN_TOTO_PAYLOAD_TYPE, payload, [signer]))))!;
}

/** A log of `leaves` served the tlog-tiles way; `mutate` may change what is served. */
function serve(leaves: Uint8Array[], mutate: (path: string, body: Uint8Array) => Uint8Array = (_p, b) => b): Fetch {
  const note = signCheckpoint({ origin: ORIGIN, size: leaves.length, rootHash: rootFromLeafHashes(leaves.map(leafHash)), extensions: [] }, [
    parseSignerKey(key.signerKey),
  ]);
  const files = new Map<string, Uint8Array>([["/checkpoint", utf8Encode(note)!]]);
  for (let n = 0; n * TILE_WIDTH < leaves.length; n++) {
    const part = leaves.slice(n * TILE_WIDTH, (n + 1) * TILE_WIDTH);
    files.set(`/${entryBundlePath(n, part.length)}`, encodeEntryBundle(part));
  }
  return async (url) => {
    const path = new URL(url).pathname;
    const body = files.get(path);
    return body ? new Response(Buffer.from(mutate(path, body))) : new Response("not found", { status: 404 });
  };
}

const dataset = leaf(PredicateTypes.datasetManifest, [1, 2], { name: "base", parents: [] });
const derived = leaf(PredicateTypes.datasetManifest, [3, 4], { name: "derived", parents: [{ algorithm: "sha256", hex: hex(1) }] });
const attestation = leaf(PredicateTypes.samplingAttestation, [2, 1], { provider: "sp-1", verdict: "unavailable" });
const filler = Array.from({ length: 297 }, (_, i) => leaf(PredicateTypes.lease, [1000 + i], { i }));
const leaves = [dataset, derived, attestation, ...filler];

it("verifies every entry of a 300-entry log against the signed root and builds its graph", async () => {
  const scan = await scanLog(serve(leaves), "http://ledger", "", parseVerifierKey(key.verifierKey));
  expect(scan.checkpoint.ok).toBe(true);
  expect(scan.contents).toEqual({ ok: true, detail: "all 300 entries hash to the signed root" });
  expect(scan.entries).toHaveLength(300);
  expect(scan.entries.every((e) => e.signature.ok)).toBe(true);
  const g = buildLineage(scan.entries.slice(0, 3));
  const ids = g.nodes.map((n) => n.id).sort();
  expect(ids).toEqual(
    [
      "artifact:sha256:" + hex(1),
      "artifact:sha256:" + hex(2),
      "artifact:sha256:" + hex(3),
      "artifact:sha256:" + hex(4),
      "entry:0",
      "entry:1",
      "entry:2",
      "provider:sp-1",
    ].sort(),
  );
  expect(g.edges).toContainEqual({ from: `artifact:sha256:${hex(1)}`, to: "entry:1", label: "material" });
  expect(g.edges).toContainEqual({ from: "entry:2", to: "provider:sp-1", label: "provider" });
  expect(g.nodes.find((n) => n.id === `artifact:sha256:${hex(1)}`)?.label).toBe("a1");
});

it("fails the contents when one served entry differs, and the checkpoint under another key", async () => {
  const flip = (path: string, body: Uint8Array): Uint8Array => {
    if (!path.startsWith("/tile/entries/001")) return body;
    const out = body.slice();
    out[out.length - 5] = out[out.length - 5]! ^ 1;
    return out;
  };
  const scan = await scanLog(serve(leaves, flip), "http://ledger", "", parseVerifierKey(key.verifierKey));
  expect(scan.checkpoint.ok).toBe(true);
  expect(scan.contents.ok).toBe(false);
  expect(scan.contents.detail).toMatch(/do not hash to the checkpoint's root/);
  const other = generateNoteKey(ORIGIN);
  const wrong = await scanLog(serve(leaves), "http://ledger", "", parseVerifierKey(other.verifierKey));
  expect(wrong.checkpoint.ok).toBe(false);
  expect(wrong.entries).toEqual([]);
});

it("fails an entry whose signature does not verify", async () => {
  const bad = JSON.parse(new TextDecoder().decode(dataset)) as { signatures: { sig: string }[] };
  bad.signatures[0]!.sig = Buffer.from(randomBytes(64)).toString("base64");
  const scan = await scanLog(serve([utf8Encode(JSON.stringify(bad))!, derived]), "http://ledger", "", parseVerifierKey(key.verifierKey));
  expect(scan.contents.ok).toBe(true);
  expect(scan.entries[0]!.signature.ok).toBe(false);
  expect(scan.entries[1]!.signature.ok).toBe(true);
  expect(buildLineage(scan.entries).nodes.find((n) => n.id === "entry:0")?.ok).toBe(false);
});

it("checks a receipt a service hands out against the pinned key and the scanned log", async () => {
  const small = [dataset, derived, attestation];
  const hashes = small.map(leafHash);
  const root = rootFromLeafHashes(hashes);
  const note = signCheckpoint({ origin: ORIGIN, size: 3, rootHash: root, extensions: [] }, [parseSignerKey(key.signerKey)]);
  const tlogProof = formatTlogProof({ index: 1, inclusionProof: inclusionProofFromLeaves(1, hashes), checkpoint: note });
  const pinned = parseVerifierKey(key.verifierKey);
  const scan = await scanLog(serve(small), "http://ledger", "", pinned);
  const receipt = { index: "1", leafHash: Buffer.from(hashes[1]!).toString("base64"), tlogProof };
  expect(checkServiceReceipt(receipt, pinned, scan)).toEqual({ ok: true, detail: `entry #1, in the tree of size 3 signed by ${ORIGIN}` });
  // Another leaf hash: the proof no longer reaches the signed root.
  expect(checkServiceReceipt({ ...receipt, leafHash: Buffer.from(hashes[0]!).toString("base64") }, pinned, scan).ok).toBe(false);
  // The service names another index than the receipt proves.
  expect(checkServiceReceipt({ ...receipt, index: "2" }, pinned, scan).detail).toMatch(/proves index 1/);
  // Another log key.
  expect(checkServiceReceipt(receipt, parseVerifierKey(generateNoteKey(ORIGIN).verifierKey), scan).ok).toBe(false);
  expect(checkServiceReceipt(undefined, pinned, scan)).toEqual({ ok: false, detail: "no receipt" });
});
