// The ingestion service's REST JSON (proto3 JSON of deai.ingestion.v1: camelCase, 64-bit
// integers as decimal strings, bytes as base64, default values omitted).

import type { ManifestJson as ProofsManifestJson } from "@deai/proofs";

export interface DigestJson {
  algorithm: string;
  hex: string;
}

export interface PlacementJson {
  slot?: number;
  providerId: string;
  bucket: string;
  key: string;
  endpoint: string;
}

/** The manifest in proto3 JSON: the one shape, from proofs (its parser reads it). */
export type ManifestJson = ProofsManifestJson;

export interface EnvelopeJsonForm {
  payloadType: string;
  payload: string;
  signatures: { keyid: string; sig: string }[];
}

export interface ReceiptJson {
  logOrigin?: string;
  index?: string;
  leafHash?: string;
  inclusionProof?: string[];
  checkpoint?: string;
  treeSize?: string;
  tlogProof?: string;
}

export type UploadStateName =
  | "UPLOAD_STATE_OPEN"
  | "UPLOAD_STATE_AWAITING_SIGNATURE"
  | "UPLOAD_STATE_COMPLETED"
  | "UPLOAD_STATE_ABORTED"
  | "UPLOAD_STATE_EXPIRED"
  | "UPLOAD_STATE_FAILED";

export interface UploadJson {
  uploadId: string;
  spec?: { size?: string; contentDigest?: DigestJson; owner?: string; k?: number; m?: number; shardSize?: number; name?: string };
  state: UploadStateName;
  durableOffset?: string;
  stripesDone?: string;
  placements?: PlacementJson[];
  manifest?: ManifestJson;
  manifestStatement?: string;
  datasetId?: string;
  error?: string;
  expiresAt?: string;
}

export interface DatasetJson {
  datasetId: string;
  manifest?: ManifestJson;
  manifestEnvelope?: EnvelopeJsonForm;
  receipt?: ReceiptJson;
  state?: string;
}

export interface CompleteJson {
  upload: UploadJson;
  manifest?: ManifestJson;
  receipt?: ReceiptJson;
  datasetId?: string;
}

export interface ChunksJson {
  durableOffset?: string;
  receivedOffset?: string;
  stripesDone?: string;
}

/** A proto3 JSON uint64 (decimal string, absent = 0) as a number. */
export function u64(v: string | number | undefined): number {
  return v === undefined ? 0 : Number(v);
}

/** "UPLOAD_STATE_AWAITING_SIGNATURE" → "awaiting_signature". */
export function stateName(s: string): string {
  return s.replace(/^UPLOAD_STATE_/, "").toLowerCase();
}
