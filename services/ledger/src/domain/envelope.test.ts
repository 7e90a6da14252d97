import { generateKeyPairSync, sign } from "node:crypto";

import { leafHash } from "@deai/proofs";

import { envelopeFromLeaf, envelopeLeaf, pae, verifyEnvelope, type Envelope } from "./envelope.js";
import { walkLineage, type LineageNode } from "./lineage.js";
import { parseStatement, PredicateTypes } from "./statement.js";

const { privateKey, publicKey } = generateKeyPairSync("ed25519");
const keyid = publicKey.export({ format: "jwk" }).x!;
const hex = (c: string): string => c.repeat(64);

function signed(stmt: unknown): Envelope {
  const payload = new TextEncoder().encode(JSON.stringify(stmt));
  const type = "application/vnd.in-toto+json";
  return { payloadType: type, payload, signatures: [{ keyid, sig: new Uint8Array(sign(null, pae(type, payload), privateKey)) }] };
}

describe("DSSE envelopes", () => {
  it("encodes PAE as the DSSE spec does", () => {
    expect(new TextDecoder().decode(pae("http://example.com/HelloWorld", new TextEncoder().encode("hello world")))).toBe(
      "DSSEv1 29 http://example.com/HelloWorld 11 hello world",
    );
  });

  it("verifies, derives the JCS leaf and round-trips it", () => {
    const e = signed({ _type: "https://in-toto.io/Statement/v1", subject: [{ digest: { sha256: hex("a") } }], predicateType: "p" });
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

  it("rejects a tampered payload", () => {
    const e = signed({ _type: "https://in-toto.io/Statement/v1", subject: [{ digest: { sha256: hex("a") } }], predicateType: "p" });
    const tampered = { ...e, payload: new TextEncoder().encode(new TextDecoder().decode(e.payload).replace("aaaa", "bbbb")) };
    expect(() => verifyEnvelope(tampered)).toThrow(/does not verify/);
  });
});

describe("statements", () => {
  it("extracts SLSA resolvedDependencies and dataset parents as materials", () => {
    const slsa = parseStatement(
      new TextEncoder().encode(
        JSON.stringify({
          _type: "https://in-toto.io/Statement/v1",
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
          _type: "https://in-toto.io/Statement/v1",
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
