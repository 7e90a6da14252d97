// The predicate types of every in-toto statement the platform signs, one place for all
// services, the CLI and third-party verifiers. Each statement is an in-toto Statement v1
// (in-toto.ts) in a DSSE envelope (dsse.ts) signed by its author, and is anchored in the
// ledger. Types are `https://deai.dev/<name>/v1`, plus SLSA Provenance v1 for checkpoints.
//
// Field lists below are the contract as it stands; a service that starts writing a predicate
// fills in its details here (and in proto/ where the predicate has a message). JSON field
// names are lowerCamelCase; digests are `{algorithm, hex}` (the contracts' Digest) or in-toto
// DigestSets; amounts are decimal strings of integer base units; times are RFC 3339.

/** Predicate type URIs by name. */
export const PredicateTypes = {
  /**
   * Dataset manifest (ingestion). Subjects: the contentDigest (named after the dataset) and
   * the shardRoot, both `sha256`. Predicate: the Manifest message's proto3 JSON form —
   * contentDigest, size, k, m, shardSize (S), stripes, shardRoot, codec, placements (slot →
   * provider), mediaType, name, license and usage terms (Data Provenance Standard), owner,
   * `parents` (digests of the datasets it derives from: the ledger indexes them as
   * materials, for lineage). Signed by the owner.
   */
  datasetManifest: "https://deai.dev/dataset-manifest/v1",
  /**
   * Placement (da-sampler repair; builder and verifier in placement.ts). A new version of where
   * a dataset's slots live; the dataset (contentDigest, shardRoot, geometry) never changes.
   * Subjects: the shardRoot and the contentDigest (sha256). Predicate: datasetId,
   * contentDigest, shardRoot (hex), k, m, stripes, version (the owner's manifest is 1; each
   * placement is one more than the one it supersedes), supersedes {version, ledgerIndex}
   * (decimal string), placements (every slot, slot order: slot, providerId, bucket, key,
   * endpoint; distinct providers), moved (slot, from, to, reason: unavailable | invalid |
   * jailed | tombstoned), cause ("repair"), placedAt (RFC 3339). Slots not in `moved` keep
   * their provider. Signed by the sampler process that rebuilt the shards; ingestion follows
   * the latest verified version for downloads.
   */
  placement: "https://deai.dev/placement/v1",
  /**
   * SLSA Provenance v1 (slsa.dev/provenance/v1) for training checkpoints (trainer). Subject:
   * the checkpoint object's digest. Predicate: `buildDefinition` (buildType, externalParameters
   * with the job's config, `resolvedDependencies` naming each dataset and the parent checkpoint
   * by digest: the ledger indexes them as materials) and `runDetails` (builder id = the
   * operator, metadata with the round and times). Signed by the trainer operator.
   */
  slsaProvenance: "https://slsa.dev/provenance/v1",
  /**
   * Lease (marketplace). Subject: the lease id's digest. Predicate: order id, provider, offer,
   * resource (GPU class and count, or storage GiB), price per unit, start, duration, escrow
   * account. Signed by the marketplace when the reservation is accepted.
   */
  lease: "https://deai.dev/lease/v1",
  /**
   * Usage report (provider → marketplace settlement; usage-report.ts). Subject: the lease id
   * (name) and its sha256 digest. Predicate: leaseId, epoch (from 0 at the lease start),
   * periodStart, periodEnd (RFC 3339), gpuSeconds (whole number), heartbeatsMissed, provider,
   * operator. Signed by the provider and countersigned by the job's operator (both required);
   * settlement pays per epoch from these; two different ones for one (lease, epoch) signed by
   * the provider are equivocation.
   */
  usageReport: "https://deai.dev/usage-report/v1",
  /**
   * Sampling attestation (da-sampler; fields, checks and the reputation computed from it in
   * sampling-attestation.ts). Subjects: the dataset's shardRoot and its contentDigest (sha256).
   * Predicate: kind (`rounds` | `recheck`), datasetId, contentDigest, shardRoot, provider, slot,
   * stripes, the policy (missingFraction, epsilon, windowMs, roundIntervalMs, samplers,
   * auditBudget, deadlineMs, quorumThreshold), verdict (available | unavailable), the confidence
   * reached, samplesOk, samplesFailed, issuedAt. `rounds` (one sampler's rounds, compact): the
   * sampler and per round its number, the checkpoint (size, root) the challenged stripes derive
   * from (sampling.ts: anyone recomputes them), the stripe count and the failures (stripe,
   * outcome: missing, invalid, timeout, late, error); signed by that sampler. `recheck`: the
   * trigger (sampler, round, checkpoint, stripe, outcome, time) and the stripes re-read; every
   * sampler that reached the verdict signs the same bytes, and an `unavailable` one with
   * quorumThreshold distinct known samplers' signatures is the evidence slashing takes.
   */
  samplingAttestation: "https://deai.dev/sampling-attestation/v1",
  /**
   * Evidence (slashing; verifiers in slashing-evidence.ts). Statements of this type are the
   * attestations some evidence kinds rest on, told apart by `kind`:
   * `lease-breach` — leaseId, provider, operator, missedFrom, missedUntil (RFC 3339),
   * heartbeatIntervalMs, missedHeartbeats; signed by a known operator and countersigned by
   * another key (tenant or monitor). `spot-check` — jobId, round, group, provider, checker,
   * contribution (sha256 hex of the contribution statement's payload), recomputedDigest,
   * issuedAt; signed by a known checker. Evidence as submitted (and as carried in a slash
   * record) is one of: unavailability {attestation}, equivocation {first, second}, lease-breach
   * {leaseId, attestations}, invalid-contribution {jobId, contribution, spotCheck}; its id is
   * SHA-256 over the kind and the payload hashes (signatures excluded), so copies are one.
   */
  evidence: "https://deai.dev/evidence/v1",
  /**
   * Slash record (slashing; slash-record.ts). Subject: the evidence id (sha256). Predicate:
   * event (applied, vetoed, jailed, released, tombstoned), slashId, evidenceId, kind, provider,
   * reporter, currency, infractionAt, proposedAt, vetoDeadline, at, the evidence itself (DSSE
   * JSON envelopes), the trust it was verified with (samplers, quorumThreshold, operators,
   * countersigners, checkers, minMissedHeartbeats), the penalty parameters, the inputs observed (stake at the
   * infraction, prior liveness faults, correlated slashes and stake, total stake, bonded and
   * faulting providers, sampler signatures and quorum size), the computed penalty (bps, amount,
   * consequence, jail, reporter reward, repair share, treasury; amounts as decimal strings),
   * `taken`, `jailedUntil`, `vetoes`. Signed by the slashing service; anyone recomputes it.
   */
  slashRecord: "https://deai.dev/slash-record/v1",
  /**
   * Veto (slashing council). Subject: the slash (digest: the evidence id). Predicate: slashId,
   * evidenceId, member (the council member's actor id), reason. Signed by that member; valid
   * only inside the slash's veto window and only for non-objective kinds (lease breach,
   * invalid contribution). k distinct members veto a slash.
   */
  veto: "https://deai.dev/veto/v1",
  /**
   * Training contribution (trainer worker). Subject: the update's digest. Predicate: jobId,
   * round, group, provider, updateDigest, issuedAt; signed by the provider's worker key. Two
   * different ones for one (job, round, group) are equivocation; a spot check that recomputes
   * another digest is invalid-contribution evidence.
   */
  trainingContribution: "https://deai.dev/training-contribution/v1",
} as const;

/** One of the platform's predicate type URIs. */
export type PredicateType = (typeof PredicateTypes)[keyof typeof PredicateTypes];

const KNOWN = new Set<string>(Object.values(PredicateTypes));

/** Whether `uri` is one of the platform's predicate types (the ledger accepts others too). */
export function isPlatformPredicateType(uri: string): uri is PredicateType {
  return KNOWN.has(uri);
}
