/**
 * Placement statements (predicate `https://deai.dev/placement/v1`, documented in
 * predicates.ts): a new version of where a dataset's shard slots live, after repair moved some
 * of them. The dataset itself never changes: the statement names the same contentDigest and
 * shardRoot as the owner-signed manifest (version 1); each placement statement is version
 * n + 1 of the one it supersedes. Pure: services build them, ingestion, the CLI and third
 * parties verify them offline.
 */
import { dsseVerify, type DsseEnvelope } from "./dsse.js";
import { ProofError } from "./errors.js";
import { IN_TOTO_PAYLOAD_TYPE, parseStatementFrame, statementBytes, statementOf, type Statement } from "./in-toto.js";
import { PredicateTypes } from "./predicates.js";

/** Where one slot's object lives. */
export interface SlotPlacement {
  readonly slot: number;
  readonly providerId: string;
  readonly bucket: string;
  readonly key: string;
  readonly endpoint: string;
}

/** Why a slot moved. */
export type PlacementReason = "unavailable" | "invalid" | "jailed" | "tombstoned";

/** One slot that moved. */
export interface MovedSlot {
  readonly slot: number;
  readonly from: string;
  readonly to: string;
  readonly reason: PlacementReason;
}

/** The predicate of a placement statement. */
export interface PlacementPredicate {
  readonly datasetId: string;
  /** sha256 hex of the dataset's bytes: the manifest's, unchanged. */
  readonly contentDigest: string;
  /** Hex: the manifest's shardRoot, unchanged. */
  readonly shardRoot: string;
  readonly k: number;
  readonly m: number;
  readonly stripes: number;
  /** This placement's version: the manifest is 1, each placement statement one more than the one it supersedes. */
  readonly version: number;
  /** The version and ledger index of the placement it supersedes (the manifest's entry for version 1). */
  readonly supersedes: { readonly version: number; readonly ledgerIndex: string };
  /** Every slot, slot order: the full placement after this change. */
  readonly placements: readonly SlotPlacement[];
  readonly moved: readonly MovedSlot[];
  /** Always "repair" today (rebalancing would be another). */
  readonly cause: "repair";
  /** RFC 3339. */
  readonly placedAt: string;
}

const REASONS = new Set<string>(["unavailable", "invalid", "jailed", "tombstoned"]);
const HEX64 = /^[0-9a-f]{64}$/;

/** The in-toto statement of a placement: subjects shardRoot and contentDigest (sha256). */
export function placementStatement(p: PlacementPredicate): Statement<PlacementPredicate> {
  return statementOf(
    PredicateTypes.placement,
    [
      { name: `dataset:${p.datasetId}:shardRoot`, digest: { sha256: p.shardRoot } },
      { name: `dataset:${p.datasetId}`, digest: { sha256: p.contentDigest } },
    ],
    p,
  );
}

/** The exact bytes to sign. */
export function placementPayload(p: PlacementPredicate): Uint8Array {
  return statementBytes(placementStatement(p));
}

function fail(message: string): never {
  throw new ProofError("invalid-argument", `placement statement: ${message}`);
}

const int = (v: unknown, what: string, min = 0): number => {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min) fail(`${what} must be an integer ≥ ${min}`);
  return v;
};
const str = (v: unknown, what: string): string => {
  if (typeof v !== "string" || v === "") fail(`${what} must be a non-empty string`);
  return v;
};

/** Parses and checks the statement bytes of a placement (frame, subjects, predicate shape and self-consistency). */
export function parsePlacement(payload: Uint8Array): PlacementPredicate {
  const s = parseStatementFrame(payload);
  if (s.predicateType !== PredicateTypes.placement) fail(`predicateType is ${s.predicateType}, not ${PredicateTypes.placement}`);
  const p = s.predicate ?? fail("has no predicate");
  const datasetId = str(p.datasetId, "datasetId");
  const contentDigest = str(p.contentDigest, "contentDigest");
  const shardRoot = str(p.shardRoot, "shardRoot");
  if (!HEX64.test(contentDigest) || !HEX64.test(shardRoot)) fail("contentDigest and shardRoot must be 64 lowercase hex digits");
  const subjects = s.subject.map((d) => d.digest?.sha256);
  if (subjects.length !== 2 || subjects[0] !== shardRoot || subjects[1] !== contentDigest)
    fail("subjects must be the shardRoot and the contentDigest named in the predicate");
  const k = int(p.k, "k", 1);
  const m = int(p.m, "m", 1);
  const stripes = int(p.stripes, "stripes", 1);
  const version = int(p.version, "version", 2);
  const sup = (p.supersedes ?? fail("supersedes is missing")) as Record<string, unknown>;
  const supVersion = int(sup.version, "supersedes.version", 1);
  if (supVersion !== version - 1) fail(`version ${version} must supersede version ${version - 1}, not ${supVersion}`);
  const ledgerIndex = str(sup.ledgerIndex, "supersedes.ledgerIndex");
  if (!/^(0|[1-9][0-9]*)$/.test(ledgerIndex)) fail("supersedes.ledgerIndex must be a decimal integer");
  if (!Array.isArray(p.placements) || p.placements.length !== k + m) fail(`placements must list all ${k + m} slots`);
  const placements = (p.placements as Record<string, unknown>[]).map((x, i) => {
    const slot = int(x.slot, `placements[${i}].slot`);
    if (slot !== i) fail(`placements[${i}] is slot ${slot}: slots must be in order`);
    return {
      slot,
      providerId: str(x.providerId, `placements[${i}].providerId`),
      bucket: str(x.bucket, `placements[${i}].bucket`),
      key: str(x.key, `placements[${i}].key`),
      endpoint: str(x.endpoint, `placements[${i}].endpoint`),
    };
  });
  if (new Set(placements.map((x) => x.providerId)).size !== placements.length) fail("placements must name distinct providers");
  if (!Array.isArray(p.moved) || p.moved.length === 0) fail("moved must name at least one slot");
  const moved = (p.moved as Record<string, unknown>[]).map((x, i) => {
    const slot = int(x.slot, `moved[${i}].slot`);
    if (slot >= k + m) fail(`moved[${i}].slot ${slot} is beyond the ${k + m} slots`);
    const from = str(x.from, `moved[${i}].from`);
    const to = str(x.to, `moved[${i}].to`);
    const reason = str(x.reason, `moved[${i}].reason`);
    if (!REASONS.has(reason)) fail(`moved[${i}].reason ${reason} is not one of ${[...REASONS].join(", ")}`);
    if (from === to) fail(`moved[${i}] moves slot ${slot} to the provider it was at`);
    if (placements[slot]!.providerId !== to)
      fail(`moved[${i}] says slot ${slot} went to ${to}, placements say ${placements[slot]!.providerId}`);
    return { slot, from, to, reason: reason as PlacementReason };
  });
  if (new Set(moved.map((x) => x.slot)).size !== moved.length) fail("moved names a slot twice");
  if (p.cause !== "repair") fail(`cause must be "repair"`);
  const placedAt = str(p.placedAt, "placedAt");
  if (Number.isNaN(Date.parse(placedAt))) fail("placedAt must be an RFC 3339 time");
  return {
    datasetId,
    contentDigest,
    shardRoot,
    k,
    m,
    stripes,
    version,
    supersedes: { version: supVersion, ledgerIndex },
    placements,
    moved,
    cause: "repair",
    placedAt,
  };
}

/** What a verifier knows of the dataset and the placement in force before this statement. */
export interface PlacementContext {
  readonly datasetId: string;
  readonly contentDigest: string;
  readonly shardRoot: string;
  readonly k: number;
  readonly m: number;
  readonly stripes: number;
  /** The placement being superseded: its version and its slots (providers). */
  readonly previous: { readonly version: number; readonly placements: readonly { slot: number; providerId: string }[] };
  /** Actor ids allowed to sign placements; empty or unset: any valid signature. */
  readonly signers?: readonly string[];
}

/** A verified placement statement. */
export interface VerifiedPlacement {
  readonly predicate: PlacementPredicate;
  readonly signers: readonly string[];
}

/**
 * Verifies a placement envelope offline against the dataset it is about: the signature (by an
 * allowed signer), the statement, the same contentDigest, shardRoot and geometry as the
 * manifest, version = previous + 1, and every slot not listed as moved still at the provider
 * it was at (a slot that moved names its previous provider as `from`). Throws ProofError.
 */
export function verifyPlacement(envelope: DsseEnvelope, ctx: PlacementContext): VerifiedPlacement {
  const v = dsseVerify(envelope, { expectedPayloadType: IN_TOTO_PAYLOAD_TYPE });
  const allowed = ctx.signers ?? [];
  if (allowed.length > 0) {
    const stranger = [...v.unknown, ...v.signers].find((s) => !allowed.includes(s));
    if (stranger !== undefined) throw new ProofError("no-verified-signature", `placement signed by ${stranger}, who may not place shards`);
  }
  const p = parsePlacement(envelope.payload);
  const mismatch = (what: string, got: unknown, want: unknown): never =>
    fail(`${what} is ${JSON.stringify(got)}, the dataset's is ${JSON.stringify(want)}`);
  if (p.datasetId !== ctx.datasetId) mismatch("datasetId", p.datasetId, ctx.datasetId);
  if (p.contentDigest !== ctx.contentDigest) mismatch("contentDigest", p.contentDigest, ctx.contentDigest);
  if (p.shardRoot !== ctx.shardRoot) mismatch("shardRoot", p.shardRoot, ctx.shardRoot);
  if (p.k !== ctx.k || p.m !== ctx.m || p.stripes !== ctx.stripes)
    mismatch("geometry (k, m, stripes)", [p.k, p.m, p.stripes], [ctx.k, ctx.m, ctx.stripes]);
  if (p.version !== ctx.previous.version + 1)
    fail(`version ${p.version} does not follow the placement in force (version ${ctx.previous.version})`);
  const moved = new Map(p.moved.map((x) => [x.slot, x]));
  for (const prev of ctx.previous.placements) {
    const now = p.placements[prev.slot]!;
    const mv = moved.get(prev.slot);
    if (mv) {
      if (mv.from !== prev.providerId) fail(`moved slot ${prev.slot} names ${mv.from} as its previous provider, it was ${prev.providerId}`);
    } else if (now.providerId !== prev.providerId) {
      fail(`slot ${prev.slot} changed provider (${prev.providerId} → ${now.providerId}) without being listed as moved`);
    }
  }
  return { predicate: p, signers: v.signers };
}
