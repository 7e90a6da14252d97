import { randomBytes } from "node:crypto";

import { create, toJson } from "@bufbuild/protobuf";
import { ManifestSchema, type Manifest } from "@deai/contracts/deai/ingestion/v1/ingestion_pb";
import {
  DATASET_CODEC_ID,
  dsseSign,
  dsseToJson,
  ed25519DsseSigner,
  IN_TOTO_PAYLOAD_TYPE,
  manifestStatementBytes,
  type DsseEnvelopeJson,
  type ManifestJson,
} from "@deai/proofs";

import { checkSignedManifest } from "./catalog.js";

const owner = ed25519DsseSigner(randomBytes(32));

function manifest(edit: (m: Manifest) => void = () => undefined): Manifest {
  const m = create(ManifestSchema, {
    contentDigest: { algorithm: "sha256", hex: "ab".repeat(32) },
    size: 300_001n,
    k: 4,
    m: 2,
    shardSize: 4096,
    stripes: 19n,
    shardRoot: new Uint8Array(32).fill(7),
    owner: owner.keyid,
    codec: DATASET_CODEC_ID,
    name: "corpus.jsonl",
    placements: Array.from({ length: 6 }, (_, slot) => ({
      slot,
      providerId: `p${slot}`,
      bucket: "shards",
      key: `datasets/d/slot-00${slot}`,
      endpoint: `http://127.0.0.1:${9000 + slot}`,
    })),
  });
  edit(m);
  return m;
}

/** The owner's envelope over the statement ingestion builds for `m`. */
function signed(m: Manifest, by = owner): DsseEnvelopeJson {
  return dsseToJson(dsseSign(IN_TOTO_PAYLOAD_TYPE, manifestStatementBytes(toJson(ManifestSchema, m) as ManifestJson), [by]));
}

describe("checkSignedManifest", () => {
  it("accepts an event whose manifest is the one the owner signed", () => {
    expect(() => checkSignedManifest("d", manifest(), signed(manifest()))).not.toThrow();
  });

  it("refuses a manifest signed by someone other than its owner", () => {
    expect(() => checkSignedManifest("d", manifest(), signed(manifest(), ed25519DsseSigner(randomBytes(32))))).toThrow(
      /manifest envelope of d does not verify: .*not by the manifest's owner/,
    );
  });

  it("refuses an envelope whose bytes were changed after signing", () => {
    const env = signed(manifest());
    const other = signed(manifest((m) => (m.size = 300_002n)));
    expect(() => checkSignedManifest("d", manifest(), { ...env, payload: other.payload })).toThrow(/does not verify: signatures\[0\]/);
  });

  it.each<[string, (m: Manifest) => void, RegExp]>([
    ["another shardRoot", (m) => (m.shardRoot = new Uint8Array(32).fill(8)), /shardRoot/],
    ["another contentDigest", (m) => (m.contentDigest = { ...m.contentDigest!, hex: "cd".repeat(32) }), /contentDigest/],
    ["another geometry", (m) => (m.shardSize = 8192), /geometry/],
    ["a slot moved to another provider", (m) => (m.placements[2]!.providerId = "p9"), /placements/],
    ["a slot at another key", (m) => (m.placements[5]!.key = "elsewhere"), /placements/],
  ])("refuses an event with %s than the owner signed", (_, edit, why) => {
    expect(() => checkSignedManifest("d", manifest(edit), signed(manifest()))).toThrow(why);
  });
});
