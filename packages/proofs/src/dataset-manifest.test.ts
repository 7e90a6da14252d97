import { randomBytes } from "node:crypto";

import {
  checkEnvelopeSignatures,
  DATASET_CODEC_ID as CODEC_ID,
  DATASET_MANIFEST_PREDICATE,
  parseManifestStatement,
  verifyManifestEnvelope,
} from "./dataset-manifest.js";
import { dsseSign, dsseToJson, ed25519DsseSigner, type DsseEnvelopeJson, type DsseSigner } from "./dsse.js";
import { IN_TOTO_PAYLOAD_TYPE, STATEMENT_V1_TYPE } from "./in-toto.js";

function actor(): DsseSigner & { id: string } {
  const signer = ed25519DsseSigner(randomBytes(32));
  return Object.assign(signer, { id: signer.keyid });
}

const signStatement = (bytes: Uint8Array, by: DsseSigner): DsseEnvelopeJson => dsseToJson(dsseSign(IN_TOTO_PAYLOAD_TYPE, bytes, [by]));

/** A parsed JSON value (statements are edited field by field). */
type Json = ReturnType<typeof JSON.parse>;

const owner = actor();
const content = "ab".repeat(32);
const root = Buffer.alloc(32, 7);

/** A statement shaped as the ingestion service builds it; `edit` changes it first. */
function statement(edit: (s: Json) => void = () => undefined): Buffer {
  const s: Json = {
    _type: STATEMENT_V1_TYPE,
    subject: [
      { name: "corpus.jsonl", digest: { sha256: content } },
      { name: "shardRoot", digest: { sha256: root.toString("hex") } },
    ],
    predicateType: DATASET_MANIFEST_PREDICATE,
    predicate: {
      contentDigest: { algorithm: "sha256", hex: content },
      size: "300001",
      k: 4,
      m: 2,
      shardSize: 4096,
      stripes: "19",
      shardRoot: root.toString("base64"),
      owner: owner.id,
      codec: CODEC_ID,
    },
  };
  edit(s);
  return Buffer.from(JSON.stringify(s));
}

describe("parseManifestStatement", () => {
  it("reads the commitments of a well-formed statement", () => {
    expect(parseManifestStatement(statement())).toMatchObject({
      contentDigest: content,
      shardRoot: root.toString("hex"),
      size: 300001,
      k: 4,
      m: 2,
      shardSize: 4096,
      stripes: 19,
      owner: owner.id,
    });
  });

  it.each([
    ["another predicate type", (s: Json) => (s.predicateType = "https://slsa.dev/provenance/v1"), /predicateType/],
    ["a subject that is not the contentDigest", (s: Json) => (s.subject[0].digest.sha256 = "cd".repeat(32)), /subject 0/],
    ["a missing shardRoot subject", (s: Json) => s.subject.pop(), /two subjects/],
    ["a shardRoot subject that is not the predicate's", (s: Json) => (s.subject[1].digest.sha256 = "00".repeat(32)), /subject 1/],
    ["a stripe count that does not fit the size", (s: Json) => (s.predicate.stripes = "18"), /stripes 18 is not ceil/],
    ["an unknown codec", (s: Json) => (s.predicate.codec = "rs-gf256-systematic-v1"), /codec/],
  ])("refuses %s", (_, edit, why) => {
    expect(() => parseManifestStatement(statement(edit))).toThrow(why);
  });
});

describe("checkEnvelopeSignatures", () => {
  it("accepts the owner's signature and refuses other signers or changed bytes", () => {
    const bytes = statement();
    expect(() => checkEnvelopeSignatures(signStatement(bytes, owner), owner.id)).not.toThrow();
    expect(() => checkEnvelopeSignatures(signStatement(bytes, actor()), owner.id)).toThrow(/not by the manifest's owner/);
    const env = signStatement(bytes, owner);
    const changed = { ...env, payload: statement((s) => (s.predicate.size = "300002")).toString("base64") };
    expect(() => checkEnvelopeSignatures(changed, owner.id)).toThrow(/signatures\[0\] does not verify/);
    expect(() => checkEnvelopeSignatures({ ...env, signatures: [] }, owner.id)).toThrow(/no signatures/);
  });

  it("verifyManifestEnvelope checks the owner the statement names", () => {
    const bytes = statement();
    expect(verifyManifestEnvelope(signStatement(bytes, owner)).owner).toBe(owner.id);
    expect(() => verifyManifestEnvelope(signStatement(bytes, actor()))).toThrow(/not by the manifest's owner/);
    expect(() =>
      verifyManifestEnvelope(
        signStatement(
          statement((s) => (s.predicate.codec = "x")),
          owner,
        ),
      ),
    ).toThrow(/codec/);
  });
});
