// @deai/proofs: pure verification code shared by the services, the CLI and third parties.
// No Node-only APIs: Uint8Array, @noble/hashes and @noble/curves only.

export { ProofError, type ProofErrorCode } from "./errors.js";
export {
  base64Decode,
  base64Encode,
  bytesEqual,
  concatBytes,
  hexDecode,
  hexEncode,
  parseDecimal,
  utf8Decode,
  utf8Encode,
} from "./encoding.js";
export {
  HASH_SIZE,
  compactRangeNodes,
  emptyRoot,
  compactRangeHash,
  leafHash,
  nodeHash,
  requireHash,
  rootFromLeafHashes,
  rootFromSubtreeHashes,
  subtreeHashAccessor,
  type HashAt,
  type NodeId,
} from "./rfc6962.js";
export { MerkleFrontier, type NodeVisitor } from "./merkle-frontier.js";
export { planNodes, resolvePlan, resolvePlanAsync, type ProofPlan } from "./proof-plan.js";
export {
  inclusionPlan,
  inclusionProof,
  inclusionProofFromLeaves,
  inclusionProofSize,
  rootFromInclusionProof,
  verifyInclusion,
} from "./inclusion.js";
export { consistencyPlan, consistencyProof, consistencyProofFromLeaves, consistencyProofSize, verifyConsistency } from "./consistency.js";
export {
  MAX_NOTE_SIGNATURES,
  formatNote,
  formatSignatureLine,
  isValidKeyName,
  keyIdHex,
  noteKeyId,
  openNote,
  parseNote,
  signNote,
  type Note,
  type NoteSignature,
  type NoteSigner,
  type NoteVerifier,
  type OpenedNote,
} from "./signed-note.js";
export {
  ED25519_TYPE,
  ed25519Signer,
  ed25519Verifier,
  formatSignerKey,
  formatVerifierKey,
  generateNoteKey,
  parseSignerKey,
  parseVerifierKey,
  type NoteKeyType,
} from "./note-keys.js";
export {
  COSIGNATURE_V1_TYPE,
  cosignatureMessage,
  cosignatureSigner,
  cosignatureTimestamp,
  cosignatureVerifier,
  ed25519Verify,
} from "./cosignature.js";
export {
  cosignCheckpoint,
  formatCheckpoint,
  openCheckpoint,
  parseCheckpoint,
  signCheckpoint,
  type Checkpoint,
  type CheckpointCosignature,
  type CheckpointPolicy,
  type VerifiedCheckpoint,
} from "./checkpoint.js";
export {
  TLOG_PROOF_HEADER,
  buildTlogProof,
  formatTlogProof,
  parseTlogProof,
  verifyTlogProof,
  type ReceiptLeaf,
  type TlogProof,
  type VerifiedTlogProof,
} from "./tlog-proof.js";
export {
  MAX_ENTRY_SIZE,
  TILE_HEIGHT,
  TILE_WIDTH,
  buildTile,
  decodeEntryBundle,
  encodeEntryBundle,
  encodeTileIndex,
  entryBundleFor,
  entryBundlePath,
  parseTilePath,
  tileAt,
  tileHashAccessor,
  tilePath,
  tileSpanOf,
  tilesForConsistencyProof,
  tilesForInclusionProof,
  tilesForPlan,
  type EntryBundle,
  type Tile,
  type TilePath,
} from "./tiles.js";
export * from "./dataset-layout.js";
export { ERASURE_MAX_K, ERASURE_MAX_M, ERASURE_SHARD_ALIGNMENT, ErasureCodec } from "./erasure.js";
export {
  ENVELOPE_SIGNATURE_JSON_SIZE,
  MAX_ENVELOPE_SIGNATURES,
  actorKeyid,
  actorPublicKey,
  distinctSignatures,
  dsseFromJson,
  dsseSign,
  dsseToJson,
  dsseVerify,
  ed25519DsseSigner,
  pae,
  type DsseEnvelope,
  type DsseEnvelopeJson,
  type DsseSignature,
  type DsseSigner,
  type VerifiedDsse,
} from "./dsse.js";
export {
  IN_TOTO_PAYLOAD_TYPE,
  STATEMENT_V1_TYPE,
  parseStatementFrame,
  statementBytes,
  statementOf,
  type DigestSet,
  type ResourceDescriptor,
  type Statement,
} from "./in-toto.js";
export { PredicateTypes, isPlatformPredicateType, type PredicateType } from "./predicates.js";
export {
  checkSamplingPolicy,
  challengeKey,
  challengeStripes,
  confidenceOf,
  logRoundMiss,
  missProbability,
  missingShards,
  planSlot,
  roundOf,
  samplesForTarget,
  type ChallengeInput,
  type ChallengeSeed,
  type SamplingPolicyParams,
  type SlotPlan,
} from "./sampling.js";
export {
  DEFAULT_REPUTATION,
  applyOutcomes,
  attestationId,
  computeReputation,
  parseSamplingAttestation,
  samplingAttestationPayload,
  samplingAttestationStatement,
  verifySamplingAttestation,
  type AttestedPolicy,
  type AttestedRound,
  type RecheckTrigger,
  type Reputation,
  type ReputationParams,
  type SampleOutcomeName,
  type SamplingAttestationPredicate,
  type SamplingAttestationStatement,
  type VerifiedSamplingAttestation,
} from "./sampling-attestation.js";
