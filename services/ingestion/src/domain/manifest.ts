/**
 * The dataset manifest and the in-toto statement the owner signs (ARCHITECTURE.md,
 * "Manifest"). The predicate is the manifest's proto3 JSON form, so the ledger's lineage
 * index reads `parents` as `{algorithm, hex}` digests and any client can decode it with the
 * generated `Manifest` schema.
 */
import { verify, type KeyObject } from "node:crypto";

import { fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";

import type { DsseEnvelope } from "@deai/contracts/deai/common/v1/common_pb";
import { ManifestSchema, type Manifest } from "@deai/contracts/deai/ingestion/v1/ingestion_pb";
import { InvalidArgumentError, PermissionDeniedError } from "@deai/kit/errors";
import { DATASET_CODEC_ID, IN_TOTO_PAYLOAD_TYPE, manifestStatementBytes, pae, type ManifestJson } from "@deai/proofs";

export const CODEC_ID = DATASET_CODEC_ID;

/** The manifest's JSON form (proto3 JSON, camelCase). */
export function manifestJson(manifest: Manifest): JsonValue {
  return toJson(ManifestSchema, manifest);
}

export function manifestFromJson(json: unknown): Manifest {
  return fromJson(ManifestSchema, json as JsonValue);
}

/**
 * The exact statement bytes the owner signs: subjects are the contentDigest (named after the
 * dataset) and the shardRoot, both as sha256 digest sets.
 */
export function manifestStatement(manifest: Manifest): Uint8Array {
  return manifestStatementBytes(manifestJson(manifest) as ManifestJson);
}

/**
 * Checks the owner's envelope over the statement: in-toto payload type, the very statement
 * bytes, and a valid Ed25519 signature whose keyid is the owner. Extra signatures must verify too.
 */
export function checkManifestEnvelope(
  envelope: DsseEnvelope,
  statement: Uint8Array,
  owner: string,
  publicKeyOf: (id: string) => KeyObject,
): void {
  if (envelope.payloadType !== IN_TOTO_PAYLOAD_TYPE) {
    throw new InvalidArgumentError(
      `manifest envelope payloadType must be ${IN_TOTO_PAYLOAD_TYPE}, got ${JSON.stringify(envelope.payloadType)}`,
    );
  }
  if (!Buffer.from(envelope.payload).equals(Buffer.from(statement))) {
    throw new InvalidArgumentError(
      "manifest envelope payload is not the statement this upload produced (sign manifest_statement byte for byte)",
    );
  }
  if (envelope.signatures.length === 0) throw new InvalidArgumentError("manifest envelope has no signatures");
  const message = pae(envelope.payloadType, envelope.payload);
  let ownerSigned = false;
  for (const [i, s] of envelope.signatures.entries()) {
    let key;
    try {
      key = publicKeyOf(s.keyid);
    } catch {
      throw new InvalidArgumentError(`manifest envelope signature ${i}: keyid is not an actor id`);
    }
    if (s.sig.length !== 64 || !verify(null, message, key, Buffer.from(s.sig))) {
      throw new InvalidArgumentError(`manifest envelope signature ${i} (keyid ${s.keyid}) does not verify`);
    }
    if (s.keyid === owner) ownerSigned = true;
  }
  if (!ownerSigned) throw new PermissionDeniedError(`the manifest must be signed by its owner ${owner}`);
}
