import type { DatasetIngested } from "@deai/contracts/deai/events/v1/ingestion_pb";
import type { Manifest } from "@deai/contracts/deai/ingestion/v1/ingestion_pb";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, UnavailableError } from "@deai/kit/errors";
import {
  bytesEqual,
  hexEncode,
  rootFromLeafHashes,
  verifyManifestEnvelope,
  type DsseEnvelopeJson,
  type ManifestStatement,
} from "@deai/proofs";
import type { Kysely, Transaction } from "kysely";

import type { DaSamplerDb, PlacementRow } from "../store/tables.js";

/** What sampling knows of a dataset. */
export interface SampledDataset {
  readonly datasetId: string;
  /** Hex. */
  readonly contentDigest: string;
  readonly shardRoot: Uint8Array;
  readonly k: number;
  readonly m: number;
  readonly shardSize: number;
  readonly stripes: number;
  readonly placements: readonly PlacementRow[];
  readonly leaves: Buffer;
}

/** The leaf of shard (stripe, slot) from the leaf table. */
export function leafOf(ds: SampledDataset, stripe: number, slot: number): Buffer {
  const i = (stripe * (ds.k + ds.m) + slot) * 32;
  return ds.leaves.subarray(i, i + 32);
}

/** What sampling reads of a dataset from ingestion: its leaf table and the owner-signed manifest envelope. */
export interface DatasetSource {
  /** GET /v1/datasets/{id}/leaves: the leaf table, stripes × n × 32 bytes. */
  leafTable(datasetId: string): Promise<Buffer>;
  /** GET /v1/datasets/{id}: the DSSE envelope over the manifest statement, as logged. */
  manifestEnvelope(datasetId: string): Promise<DsseEnvelopeJson>;
}

export function ingestionDatasets(baseUrl: string, timeoutMs: number): DatasetSource {
  const get = async (datasetId: string, path: string, what: string): Promise<Response> => {
    let res: Response;
    try {
      res = await fetch(`${baseUrl.replace(/\/$/, "")}/v1/datasets/${encodeURIComponent(datasetId)}${path}`, {
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (e) {
      throw new UnavailableError(`could not fetch ${what} of ${datasetId} from ingestion: ${(e as Error).message}`);
    }
    if (!res.ok) throw new UnavailableError(`ingestion answered ${res.status} for ${what} of ${datasetId}`);
    return res;
  };
  return {
    leafTable: async (datasetId) => Buffer.from(await (await get(datasetId, "/leaves", "the leaf table")).arrayBuffer()),
    manifestEnvelope: async (datasetId) => {
      const body = (await (await get(datasetId, "", "the manifest envelope")).json()) as {
        dataset?: { manifestEnvelope?: DsseEnvelopeJson };
      };
      const envelope = body.dataset?.manifestEnvelope;
      if (!envelope) throw new UnavailableError(`ingestion returned no manifest envelope for ${datasetId}`);
      return envelope;
    },
  };
}

/**
 * Checks that the owner-signed manifest statement says what the event's manifest says: the
 * owner's Ed25519 signature over the statement, then every commitment sampling relies on
 * (contentDigest, shardRoot, size, geometry, owner, and each slot's provider, bucket and key).
 * A `dataset.ingested` event is then trusted only as far as the owner signed it.
 */
export function checkSignedManifest(datasetId: string, m: Manifest, envelope: DsseEnvelopeJson): void {
  let st: ManifestStatement;
  try {
    st = verifyManifestEnvelope(envelope);
  } catch (e) {
    throw new InvalidArgumentError(`the manifest envelope of ${datasetId} does not verify: ${(e as Error).message}`);
  }
  const differs = (what: string, signed: unknown, event: unknown): never => {
    throw new InvalidArgumentError(
      `dataset.ingested ${datasetId}: ${what} ${JSON.stringify(event)} is not the owner-signed manifest's ${JSON.stringify(signed)}`,
    );
  };
  if (st.contentDigest !== m.contentDigest?.hex) differs("contentDigest", st.contentDigest, m.contentDigest?.hex);
  if (st.shardRoot !== hexEncode(m.shardRoot)) differs("shardRoot", st.shardRoot, hexEncode(m.shardRoot));
  if (st.owner !== m.owner) differs("owner", st.owner, m.owner);
  if (st.size !== Number(m.size)) differs("size", st.size, Number(m.size));
  if (st.k !== m.k || st.m !== m.m || st.shardSize !== m.shardSize || st.stripes !== Number(m.stripes))
    differs("geometry", [st.k, st.m, st.shardSize, st.stripes], [m.k, m.m, m.shardSize, Number(m.stripes)]);
  const slot = (p: { slot?: number; providerId: string; bucket: string; key: string }) =>
    `${p.slot ?? 0}:${p.providerId}:${p.bucket}:${p.key}`;
  const signed = (st.manifest.placements ?? []).map(slot);
  const event = m.placements.map(slot);
  if (signed.join("|") !== event.join("|")) differs("placements", signed, event);
}

function rowToDataset(r: {
  dataset_id: string;
  content_digest: string;
  shard_root: Buffer;
  k: number;
  m: number;
  shard_size: number;
  stripes: bigint;
  placements: PlacementRow[];
  leaves: Buffer;
}): SampledDataset {
  return {
    datasetId: r.dataset_id,
    contentDigest: r.content_digest,
    shardRoot: r.shard_root,
    k: r.k,
    m: r.m,
    shardSize: r.shard_size,
    stripes: Number(r.stripes),
    placements: r.placements,
    leaves: r.leaves,
  };
}

/**
 * The datasets under sampling, from `deai.dataset.ingested`: the manifest from the event, checked
 * against the owner-signed envelope ingestion serves, the leaf table from ingestion, accepted only when its RFC 6962 root is the manifest's shardRoot
 * (the anchored commitment), so a wrong table can never turn good shards into "invalid".
 */
export class DatasetCatalog {
  private readonly cache = new Map<string, SampledDataset>();

  constructor(
    private readonly db: Kysely<DaSamplerDb>,
    private readonly source: DatasetSource | undefined,
  ) {}

  /** Checks an ingested event's manifest and leaf table, before any transaction. */
  async prepare(e: DatasetIngested): Promise<SampledDataset> {
    const m = e.manifest;
    if (!m) throw new InvalidArgumentError(`dataset.ingested ${e.datasetId} carries no manifest`);
    if (!this.source) throw new FailedPreconditionError("DA_INGESTION_URL is not set: manifests and leaf tables cannot be fetched");
    const n = m.k + m.m;
    const stripes = Number(m.stripes);
    if (m.placements.length !== n)
      throw new InvalidArgumentError(`manifest of ${e.datasetId} has ${m.placements.length} placements for ${n} slots`);
    checkSignedManifest(e.datasetId, m, await this.source.manifestEnvelope(e.datasetId));
    const leaves = await this.source.leafTable(e.datasetId);
    if (leaves.length !== stripes * n * 32)
      throw new InvalidArgumentError(`leaf table of ${e.datasetId} is ${leaves.length} bytes, expected ${stripes * n * 32}`);
    const hashes = Array.from({ length: stripes * n }, (_, i) => leaves.subarray(i * 32, i * 32 + 32));
    if (!bytesEqual(rootFromLeafHashes(hashes), m.shardRoot))
      throw new InvalidArgumentError(`leaf table of ${e.datasetId} does not hash to the manifest's shardRoot`);
    return {
      datasetId: e.datasetId,
      contentDigest: m.contentDigest?.hex ?? "",
      shardRoot: m.shardRoot,
      k: m.k,
      m: m.m,
      shardSize: m.shardSize,
      stripes,
      placements: m.placements.map((p) => ({ slot: p.slot, providerId: p.providerId, bucket: p.bucket, key: p.key, endpoint: p.endpoint })),
      leaves,
    };
  }

  /** Records a prepared dataset and its slots (idempotent). */
  async add(trx: Transaction<DaSamplerDb>, ds: SampledDataset, ledgerIndex: bigint, at: Date): Promise<void> {
    await trx
      .insertInto("datasets")
      .values({
        dataset_id: ds.datasetId,
        content_digest: ds.contentDigest,
        shard_root: Buffer.from(ds.shardRoot),
        k: ds.k,
        m: ds.m,
        shard_size: ds.shardSize,
        stripes: ds.stripes,
        placements: JSON.stringify(ds.placements),
        leaves: ds.leaves,
        ledger_index: ledgerIndex,
        added_at: at,
      })
      .onConflict((oc) => oc.column("dataset_id").doNothing())
      .execute();
    for (const p of ds.placements)
      await trx
        .insertInto("slot_states")
        .values({ dataset_id: ds.datasetId, slot: p.slot, provider_id: p.providerId, state: "available", consecutive_failures: 0 })
        .onConflict((oc) => oc.columns(["dataset_id", "slot"]).doNothing())
        .execute();
  }

  async get(datasetId: string): Promise<SampledDataset> {
    const hit = this.cache.get(datasetId);
    if (hit) return hit;
    const r = await this.db.selectFrom("datasets").selectAll().where("dataset_id", "=", datasetId).executeTakeFirst();
    if (!r) throw new NotFoundError(`dataset ${datasetId} is not under sampling`);
    const ds = rowToDataset(r);
    this.cache.set(datasetId, ds);
    return ds;
  }

  /** Drops a cached dataset (its placements changed: repair). */
  forget(datasetId: string): void {
    this.cache.delete(datasetId);
  }

  async ids(): Promise<string[]> {
    return (await this.db.selectFrom("datasets").select("dataset_id").orderBy("added_at").execute()).map((r) => r.dataset_id);
  }
}

/** Hex of a shardRoot. */
export const shardRootHex = (ds: SampledDataset): string => hexEncode(ds.shardRoot);
