// The owner-signed dataset manifest as a verifier reads it, trusting nothing but the bytes: an
// in-toto Statement v1 whose predicate is the manifest (proto3 JSON) and whose subjects are its
// contentDigest and shardRoot, in a DSSE envelope signed by the manifest's owner. One parser for
// every reader: the CLI (upload, download, verify) and the DA sampler (which checks the owner's
// signature before it samples a dataset).
import { dsseFromJson, dsseVerify, type DsseEnvelopeJson } from "./dsse.js";
import { base64Decode, base64Encode, hexEncode, utf8Decode, utf8Encode } from "./encoding.js";
import { IN_TOTO_PAYLOAD_TYPE, STATEMENT_V1_TYPE } from "./in-toto.js";
import { PredicateTypes } from "./predicates.js";

/** The erasure codec every manifest names (the one codec: Cauchy Reed-Solomon, ronomon layout). */
export const DATASET_CODEC_ID = "rs-cauchy-ronomon-v1";

/** A manifest in its proto3 JSON form (deai.ingestion.v1.Manifest: camelCase, 64-bit integers as strings, bytes as base64). */
export interface ManifestJson {
  contentDigest?: { algorithm: string; hex: string };
  size?: string;
  k?: number;
  m?: number;
  shardSize?: number;
  stripes?: string;
  shardRoot?: string;
  placements?: { slot?: number; providerId: string; bucket: string; key: string; endpoint: string }[];
  mediaType?: string;
  name?: string;
  license?: string;
  usageTerms?: string;
  owner?: string;
  parents?: { algorithm: string; hex: string }[];
  createdAt?: string;
  codec?: string;
  provenance?: Record<string, string>;
}

export const DATASET_MANIFEST_PREDICATE = PredicateTypes.datasetManifest;

/** What a manifest statement commits to, checked for internal consistency. */
export interface ManifestStatement {
  readonly manifest: ManifestJson;
  /** Lowercase hex SHA-256 of the dataset bytes. */
  readonly contentDigest: string;
  /** Lowercase hex shardRoot. */
  readonly shardRoot: string;
  readonly size: number;
  readonly k: number;
  readonly m: number;
  readonly shardSize: number;
  readonly stripes: number;
  readonly owner: string;
}

const HEX64 = /^[0-9a-f]{64}$/;

function positiveInt(v: unknown, what: string): number {
  const n = typeof v === "string" && /^[1-9][0-9]{0,15}$/.test(v) ? Number(v) : v;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 1)
    throw new Error(`${what} must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

/**
 * The exact statement bytes an owner signs for a manifest (its proto3 JSON form): subjects are
 * the contentDigest (named after the dataset) and the shardRoot, both as sha256 digest sets.
 * Ingestion builds the statement with this and nothing else, so any builder agrees byte for byte.
 */
export function manifestStatementBytes(manifest: ManifestJson): Uint8Array {
  const root = base64Decode(manifest.shardRoot ?? "") ?? new Uint8Array();
  const statement = {
    _type: STATEMENT_V1_TYPE,
    subject: [
      { name: manifest.name || "dataset", digest: { sha256: manifest.contentDigest?.hex ?? "" } },
      { name: "shardRoot", digest: { sha256: hexEncode(root) } },
    ],
    predicateType: PredicateTypes.datasetManifest,
    predicate: manifest,
  };
  return utf8Encode(JSON.stringify(statement))!;
}

/**
 * Parses the exact statement bytes and checks them: Statement v1, the dataset-manifest
 * predicate, subjects = {contentDigest, shardRoot} and equal to the predicate's, the codec, and
 * stripes = ceil(size / (k × S)). Throws naming the first thing wrong.
 */
export function parseManifestStatement(bytes: Uint8Array): ManifestStatement {
  let st: Record<string, unknown>;
  try {
    const text = utf8Decode(bytes);
    if (text === undefined) throw new Error("not UTF-8");
    st = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`the statement is not JSON: ${(e as Error).message}`, { cause: e });
  }
  if (st === null || typeof st !== "object" || Array.isArray(st)) throw new Error("the statement is not a JSON object");
  if (st._type !== STATEMENT_V1_TYPE) throw new Error(`statement _type is ${JSON.stringify(st._type)}, not ${STATEMENT_V1_TYPE}`);
  if (st.predicateType !== DATASET_MANIFEST_PREDICATE) {
    throw new Error(`statement predicateType is ${JSON.stringify(st.predicateType)}, not ${DATASET_MANIFEST_PREDICATE}`);
  }
  const manifest = st.predicate as ManifestJson | undefined;
  if (manifest === null || typeof manifest !== "object" || Array.isArray(manifest))
    throw new Error("statement predicate is not a manifest object");
  const cd = manifest.contentDigest;
  if (cd?.algorithm !== "sha256" || !HEX64.test(cd.hex))
    throw new Error("manifest contentDigest must be a sha256 digest (64 lowercase hex)");
  const root = base64Decode(manifest.shardRoot ?? "");
  if (root?.length !== 32 || base64Encode(root) !== manifest.shardRoot) throw new Error("manifest shardRoot must be 32 bytes (base64)");
  const shardRoot = hexEncode(root);
  if (manifest.codec !== DATASET_CODEC_ID)
    throw new Error(`manifest codec is ${JSON.stringify(manifest.codec)}; this verifier knows ${DATASET_CODEC_ID}`);
  const size = positiveInt(manifest.size, "manifest size");
  const k = positiveInt(manifest.k, "manifest k");
  const m = positiveInt(manifest.m, "manifest m");
  const shardSize = positiveInt(manifest.shardSize, "manifest shardSize");
  const stripes = positiveInt(manifest.stripes, "manifest stripes");
  if (stripes !== Math.ceil(size / (k * shardSize))) {
    throw new Error(`manifest stripes ${stripes} is not ceil(size ${size} / (k ${k} × S ${shardSize}))`);
  }
  if (typeof manifest.owner !== "string" || manifest.owner === "") throw new Error("manifest names no owner");
  const subjects = st.subject;
  if (!Array.isArray(subjects) || subjects.length !== 2)
    throw new Error("statement must have two subjects: the contentDigest and the shardRoot");
  const digests = subjects.map((s: { digest?: Record<string, unknown> } | null) => s?.digest ?? {});
  const [content, rootSubject] = digests;
  if (Object.keys(content!).join() !== "sha256" || content!.sha256 !== cd.hex) {
    throw new Error(`statement subject 0 must be {sha256: ${cd.hex}} (the contentDigest)`);
  }
  if (
    (subjects[1] as { name?: string }).name !== "shardRoot" ||
    Object.keys(rootSubject!).join() !== "sha256" ||
    rootSubject!.sha256 !== shardRoot
  ) {
    throw new Error(`statement subject 1 must be shardRoot {sha256: ${shardRoot}}`);
  }
  return { manifest, contentDigest: cd.hex, shardRoot, size, k, m, shardSize, stripes, owner: manifest.owner };
}

/**
 * Checks a DSSE envelope over a manifest statement: in-toto payload type, every signature by a
 * known key verifies (Ed25519 over PAE, keyid = actor id; `dsseVerify`), and one is by `owner`.
 * Throws naming the failure.
 */
export function checkEnvelopeSignatures(envelope: DsseEnvelopeJson, owner: string): void {
  if (envelope.payloadType !== IN_TOTO_PAYLOAD_TYPE)
    throw new Error(`envelope payloadType is ${JSON.stringify(envelope.payloadType)}, not ${IN_TOTO_PAYLOAD_TYPE}`);
  const { signers } = dsseVerify(dsseFromJson(envelope));
  if (!signers.includes(owner)) {
    throw new Error(`envelope is signed by ${envelope.signatures.map((s) => s.keyid).join(", ")}, not by the manifest's owner ${owner}`);
  }
}

/**
 * The manifest statement of an owner-signed envelope: the owner's signature checked, then the
 * statement parsed and checked (`parseManifestStatement`). Throws naming the first failure.
 */
export function verifyManifestEnvelope(envelope: DsseEnvelopeJson): ManifestStatement {
  const st = parseManifestStatement(dsseFromJson(envelope).payload);
  checkEnvelopeSignatures(envelope, st.owner);
  return st;
}
