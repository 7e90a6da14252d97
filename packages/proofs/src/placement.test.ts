import { dsseSign, ed25519DsseSigner, type DsseEnvelope } from "./dsse.js";
import { ProofError } from "./errors.js";
import { IN_TOTO_PAYLOAD_TYPE } from "./in-toto.js";
import { parsePlacement, placementPayload, verifyPlacement, type PlacementContext, type PlacementPredicate } from "./placement.js";

const repairer = ed25519DsseSigner(new Uint8Array(32).fill(3));
const stranger = ed25519DsseSigner(new Uint8Array(32).fill(4));
const hex = (c: string) => c.repeat(64);
const slots = (providers: string[]) =>
  providers.map((p, slot) => ({ slot, providerId: p, bucket: "shards", key: `datasets/d/slot-${slot}`, endpoint: `http://${p}` }));

const predicate: PlacementPredicate = {
  datasetId: "d",
  contentDigest: hex("a"),
  shardRoot: hex("b"),
  k: 2,
  m: 1,
  stripes: 4,
  version: 2,
  supersedes: { version: 1, ledgerIndex: "7" },
  placements: slots(["p0", "p4", "p2"]),
  moved: [{ slot: 1, from: "p1", to: "p4", reason: "unavailable" }],
  cause: "repair",
  placedAt: "2026-12-03T14:00:00.000Z",
};
const ctx: PlacementContext = {
  datasetId: "d",
  contentDigest: hex("a"),
  shardRoot: hex("b"),
  k: 2,
  m: 1,
  stripes: 4,
  previous: { version: 1, placements: slots(["p0", "p1", "p2"]) },
  signers: [repairer.keyid],
};
const sign = (p: PlacementPredicate, s = repairer): DsseEnvelope => dsseSign(IN_TOTO_PAYLOAD_TYPE, placementPayload(p), [s]);

it("verifies a placement that moves one slot, keeping the dataset's digests", () => {
  const v = verifyPlacement(sign(predicate), ctx);
  expect(v.signers).toEqual([repairer.keyid]);
  expect(v.predicate).toEqual(predicate);
  expect(parsePlacement(placementPayload(predicate))).toEqual(predicate);
});

it.each<[string, Partial<PlacementPredicate>, RegExp]>([
  ["another shardRoot", { shardRoot: hex("c") }, /shardRoot/],
  ["another contentDigest", { contentDigest: hex("c") }, /contentDigest/],
  ["a version that skips one", { version: 3, supersedes: { version: 2, ledgerIndex: "7" } }, /does not follow/],
  ["a slot moved without saying so", { placements: slots(["p5", "p4", "p2"]) }, /without being listed as moved/],
  ["the wrong previous provider", { moved: [{ slot: 1, from: "p9", to: "p4", reason: "jailed" }] }, /previous provider/],
  [
    "a provider twice",
    { placements: slots(["p0", "p2", "p2"]), moved: [{ slot: 1, from: "p1", to: "p2", reason: "invalid" }] },
    /distinct/,
  ],
  ["other geometry", { stripes: 5 }, /geometry/],
  ["no moved slot", { moved: [] }, /at least one/],
])("refuses %s", (_, change, why) => {
  expect(() => verifyPlacement(sign({ ...predicate, ...change }), ctx)).toThrow(why);
});

it("refuses a signer that may not place shards, and a tampered payload", () => {
  expect(() => verifyPlacement(sign(predicate, stranger), ctx)).toThrow(/may not place shards/);
  const env = sign(predicate);
  const tampered = { ...env, payload: placementPayload({ ...predicate, placedAt: "2026-12-03T14:00:01.000Z" }) };
  expect(() => verifyPlacement(tampered, ctx)).toThrow(ProofError);
  // Without a signer list, any valid signature is accepted.
  expect(verifyPlacement(sign(predicate, stranger), { ...ctx, signers: [] }).signers).toEqual([stranger.keyid]);
});
