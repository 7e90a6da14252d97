import { generateKeyPairSync, sign } from "node:crypto";

import { IN_TOTO_PAYLOAD_TYPE, leafHash, MAX_ENVELOPE_SIGNATURES, pae, PredicateTypes, STATEMENT_V1_TYPE } from "@deai/proofs";

import {
  completeEnvelope,
  entryLeafHash,
  envelopeFromLeaf,
  envelopeJson,
  envelopeLeaf,
  prepareEnvelope,
  verifyEnvelope,
  type Envelope,
} from "./envelope.js";
import { canonicalJson } from "./jcs.js";
import { walkLineage, type LineageNode } from "./lineage.js";
import { parseStatement } from "./statement.js";

const { privateKey, publicKey } = generateKeyPairSync("ed25519");
const keyid = publicKey.export({ format: "jwk" }).x!;
const hex = (c: string): string => c.repeat(64);

function signed(stmt: unknown): Envelope {
  const payload = new TextEncoder().encode(JSON.stringify(stmt));
  const type = IN_TOTO_PAYLOAD_TYPE;
  return { payloadType: type, payload, signatures: [{ keyid, sig: new Uint8Array(sign(null, pae(type, payload), privateKey)) }] };
}

describe("DSSE envelopes", () => {
  it("verifies, derives the JCS leaf and round-trips it", () => {
    const e = signed({ _type: STATEMENT_V1_TYPE, subject: [{ digest: { sha256: hex("a") } }], predicateType: "p" });
    const v = verifyEnvelope(e);
    expect(new TextDecoder().decode(v.leaf)).toMatch(
      /^\{"payload":"[^"]+","payloadType":"application\/vnd.in-toto\+json","signatures":\[\{"keyid":"[^"]+","sig":"[^"]+"\}\]\}$/,
    );
    expect(v.leafHash).toEqual(leafHash(envelopeLeaf(e)));
    expect(v.signers).toEqual([keyid]);
    expect(envelopeFromLeaf(v.leaf)).toEqual({
      ...e,
      payload: e.payload,
      signatures: e.signatures.map((s) => ({ keyid: s.keyid, sig: s.sig })),
    });
  });

  it("writes the leaf exactly as RFC 8785 canonical JSON of the DSSE JSON form, and hashes it as RFC 6962", () => {
    const odd = ["", "plain", 'quote " backslash \\ slash /', "control \u0001\n\t", "unicode é 𝄞 \u2028", "lone \ud800 surrogate"];
    for (const keyid of odd) {
      for (const payloadType of odd) {
        const e: Envelope = {
          payloadType,
          payload: new TextEncoder().encode(`payload ${keyid}`),
          signatures: [
            { keyid, sig: new Uint8Array([1, 2, 3, 250, 251, 252]) },
            { keyid: "second", sig: new Uint8Array(0) },
          ],
        };
        const leaf = envelopeLeaf(e);
        expect(Buffer.from(leaf).toString("utf8")).toBe(canonicalJson(envelopeJson(e)));
        expect(Buffer.from(leaf)).toEqual(Buffer.from(new TextEncoder().encode(canonicalJson(envelopeJson(e)))));
        expect(Buffer.from(entryLeafHash(leaf))).toEqual(Buffer.from(leafHash(leaf)));
      }
    }
  });

  it("reports the first failing signature in order, whether it fails its check or its keyid", () => {
    const e = signed({ _type: STATEMENT_V1_TYPE, subject: [{ digest: { sha256: hex("a") } }], predicateType: "p" });
    const forged = { keyid, sig: new Uint8Array(64) };
    const badKey = { keyid: "not-a-key", sig: e.signatures[0]!.sig };
    expect(() => verifyEnvelope({ ...e, signatures: [forged, badKey] })).toThrow(/^signatures\[0\] does not verify/);
    expect(() => verifyEnvelope({ ...e, signatures: [e.signatures[0]!, badKey] })).toThrow(/^signatures\[1\]\.keyid must be an actor id/);
    // A signature failure comes before a statement problem, as the checks run in that order.
    const p = prepareEnvelope({ ...e, payload: new TextEncoder().encode("{}") });
    expect(() => completeEnvelope(p, [false])).toThrow(/^signatures\[0\] does not verify/);
    expect(() => completeEnvelope(p, [true])).toThrow(/_type/);
  });

  it("checks a repeated (keyid, sig) pair once, keeps every copy in the leaf, and refuses more than MAX_ENVELOPE_SIGNATURES", () => {
    const e = signed({ _type: STATEMENT_V1_TYPE, subject: [{ digest: { sha256: hex("a") } }], predicateType: "p" });
    const repeated = { ...e, signatures: Array.from({ length: MAX_ENVELOPE_SIGNATURES }, () => e.signatures[0]!) };
    const p = prepareEnvelope(repeated);
    expect(p.checks).toHaveLength(1);
    expect(completeEnvelope(p, [true]).signers).toEqual([keyid]);
    expect(envelopeFromLeaf(p.leaf).signatures).toHaveLength(MAX_ENVELOPE_SIGNATURES);
    expect(() => prepareEnvelope({ ...e, signatures: [...repeated.signatures, e.signatures[0]!] })).toThrow(
      new RegExp(`has ${MAX_ENVELOPE_SIGNATURES + 1} signatures; the limit is ${MAX_ENVELOPE_SIGNATURES}`),
    );
    // A bad signature after a repeated good one is reported at its own position.
    const forged = { keyid, sig: new Uint8Array(64) };
    const q = prepareEnvelope({ ...e, signatures: [e.signatures[0]!, e.signatures[0]!, forged] });
    expect(q.checks).toHaveLength(2);
    expect(() => completeEnvelope(q, [true, false])).toThrow(/^signatures\[2\] does not verify/);
  });

  it("refuses a predicate type with a NUL, another control character or a lone surrogate", () => {
    for (const bad of ["p\u0000", "\u0001p", "p\ud800", "\udc00"]) {
      const e = signed({ _type: STATEMENT_V1_TYPE, subject: [{ digest: { sha256: hex("a") } }], predicateType: bad });
      expect(() => verifyEnvelope(e)).toThrow(/predicateType holds a control character or a lone surrogate/);
    }
    const ok = signed({ _type: STATEMENT_V1_TYPE, subject: [{ digest: { sha256: hex("a") } }], predicateType: "p 𝄞 é" });
    expect(verifyEnvelope(ok).statement.predicateType).toBe("p 𝄞 é");
  });

  it("rejects a tampered payload", () => {
    const e = signed({ _type: STATEMENT_V1_TYPE, subject: [{ digest: { sha256: hex("a") } }], predicateType: "p" });
    const tampered = { ...e, payload: new TextEncoder().encode(new TextDecoder().decode(e.payload).replace("aaaa", "bbbb")) };
    expect(() => verifyEnvelope(tampered)).toThrow(/does not verify/);
  });
});

describe("statements", () => {
  it("extracts SLSA resolvedDependencies and dataset parents as materials", () => {
    const slsa = parseStatement(
      new TextEncoder().encode(
        JSON.stringify({
          _type: STATEMENT_V1_TYPE,
          subject: [{ digest: { sha256: hex("A") } }],
          predicateType: PredicateTypes.slsaProvenance,
          predicate: {
            buildDefinition: { resolvedDependencies: [{ uri: "x" }, { digest: { sha256: hex("b"), sha512: hex("c").repeat(2) } }] },
          },
        }),
      ),
    );
    expect(slsa.subjects).toEqual([{ algorithm: "sha256", hex: hex("a") }]);
    expect(slsa.materials).toEqual([
      { algorithm: "sha256", hex: hex("b") },
      { algorithm: "sha512", hex: hex("c").repeat(2) },
    ]);
    const manifest = parseStatement(
      new TextEncoder().encode(
        JSON.stringify({
          _type: STATEMENT_V1_TYPE,
          subject: [{ digest: { sha256: hex("d") } }],
          predicateType: PredicateTypes.datasetManifest,
          predicate: {
            parents: [
              { algorithm: "sha256", hex: hex("e") },
              { algorithm: "sha256", hex: hex("e") },
            ],
          },
        }),
      ),
    );
    expect(manifest.materials).toEqual([{ algorithm: "sha256", hex: hex("e") }]);
  });
});

describe("walkLineage", () => {
  const d = (c: string): { algorithm: string; hex: string } => ({ algorithm: "sha256", hex: hex(c) });
  const graph: LineageNode[] = [
    { index: 0, subjects: [d("b")], materials: [d("a")] },
    { index: 1, subjects: [d("c")], materials: [d("b")] },
    { index: 2, subjects: [d("a")], materials: [d("c")] }, // a cycle must not loop forever
  ];
  const lookup = async (ds: readonly { hex: string }[], role: "subject" | "material"): Promise<LineageNode[]> =>
    graph.filter((n) => (role === "subject" ? n.subjects : n.materials).some((x) => ds.some((y) => y.hex === x.hex)));

  it("walks ancestors breadth-first, stops at cycles, and reports truncation", async () => {
    const all = await walkLineage(d("c"), "ancestors", 10, 100, lookup);
    expect(all.edges.map((e) => [e.depth, e.index])).toEqual([
      [1, 1],
      [2, 0],
      [3, 2],
    ]);
    expect(all.truncated).toBe(false);
    const cut = await walkLineage(d("c"), "ancestors", 1, 100, lookup);
    expect(cut.edges).toHaveLength(1);
    expect(cut.truncated).toBe(true);
  });
});
