// The owner-signed dataset manifest as a verifier reads it, trusting nothing but the bytes: an
// in-toto Statement v1 whose predicate is the manifest (proto3 JSON) and whose subjects are its
// contentDigest and shardRoot, in a DSSE envelope signed by the manifest's owner.
import { actorPublicKey, ed25519Verify, IN_TOTO_PAYLOAD_TYPE, pae, PredicateTypes, STATEMENT_V1_TYPE } from "@deai/proofs";

import { CODEC_ID } from "./dataset-commitments.js";
import type { ManifestJson } from "./dataset-api.js";
import type { EnvelopeJson } from "./envelope.js";

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
 * Parses the exact statement bytes and checks them: Statement v1, the dataset-manifest
 * predicate, subjects = {contentDigest, shardRoot} and equal to the predicate's, the codec, and
 * stripes = ceil(size / (k × S)). Throws naming the first thing wrong.
 */
export function parseManifestStatement(bytes: Uint8Array): ManifestStatement {
  let st: Record<string, unknown>;
  try {
    st = JSON.parse(Buffer.from(bytes).toString("utf8")) as Record<string, unknown>;
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
  const root = Buffer.from(manifest.shardRoot ?? "", "base64");
  if (root.length !== 32 || root.toString("base64") !== manifest.shardRoot) throw new Error("manifest shardRoot must be 32 bytes (base64)");
  const shardRoot = root.toString("hex");
  if (manifest.codec !== CODEC_ID) throw new Error(`manifest codec is ${JSON.stringify(manifest.codec)}; this verifier knows ${CODEC_ID}`);
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

/** An actor id (base64url Ed25519 public key) as its 32 key bytes, or undefined. */
/**
 * Checks a DSSE envelope over a manifest statement: in-toto payload type, every signature
 * verifies (Ed25519 over PAE, keyid = actor id), and one is by `owner`. Throws naming the failure.
 */
export function checkEnvelopeSignatures(envelope: EnvelopeJson, owner: string): void {
  if (envelope.payloadType !== IN_TOTO_PAYLOAD_TYPE)
    throw new Error(`envelope payloadType is ${JSON.stringify(envelope.payloadType)}, not ${IN_TOTO_PAYLOAD_TYPE}`);
  if (envelope.signatures.length === 0) throw new Error("envelope has no signatures");
  const message = pae(envelope.payloadType, Buffer.from(envelope.payload, "base64"));
  for (const [i, s] of envelope.signatures.entries()) {
    const key = actorPublicKey(s.keyid);
    if (!key) throw new Error(`envelope signature ${i}: keyid ${JSON.stringify(s.keyid)} is not an actor id`);
    if (!ed25519Verify(key, message, Buffer.from(s.sig, "base64")))
      throw new Error(`envelope signature ${i} by ${s.keyid} does not verify`);
  }
  if (!envelope.signatures.some((s) => s.keyid === owner)) {
    throw new Error(`envelope is signed by ${envelope.signatures.map((s) => s.keyid).join(", ")}, not by the manifest's owner ${owner}`);
  }
}
