import type { DatasetIngested } from "@deai/contracts/deai/events/v1/ingestion_pb";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, UnavailableError } from "@deai/kit/errors";
import { bytesEqual, hexEncode, rootFromLeafHashes } from "@deai/proofs";
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

/** Fetches a dataset's leaf table from ingestion (GET /v1/datasets/{id}/leaves). */
export type LeafTableSource = (datasetId: string) => Promise<Buffer>;

export function ingestionLeafTables(baseUrl: string, timeoutMs: number): LeafTableSource {
  return async (datasetId) => {
    let res: Response;
    try {
      res = await fetch(`${baseUrl.replace(/\/$/, "")}/v1/datasets/${encodeURIComponent(datasetId)}/leaves`, {
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (e) {
      throw new UnavailableError(`could not fetch the leaf table of ${datasetId} from ingestion: ${(e as Error).message}`);
    }
    if (!res.ok) throw new UnavailableError(`ingestion answered ${res.status} for the leaf table of ${datasetId}`);
    return Buffer.from(await res.arrayBuffer());
  };
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
 * The datasets under sampling, from `deai.dataset.ingested`: the manifest from the event, the
 * leaf table from ingestion, accepted only when its RFC 6962 root is the manifest's shardRoot
 * (the anchored commitment), so a wrong table can never turn good shards into "invalid".
 */
export class DatasetCatalog {
  private readonly cache = new Map<string, SampledDataset>();

  constructor(
    private readonly db: Kysely<DaSamplerDb>,
    private readonly leafTables: LeafTableSource | undefined,
  ) {}

  /** Checks an ingested event's manifest and leaf table, before any transaction. */
  async prepare(e: DatasetIngested): Promise<SampledDataset> {
    const m = e.manifest;
    if (!m) throw new InvalidArgumentError(`dataset.ingested ${e.datasetId} carries no manifest`);
    if (!this.leafTables) throw new FailedPreconditionError("DA_INGESTION_URL is not set: leaf tables cannot be fetched");
    const n = m.k + m.m;
    const stripes = Number(m.stripes);
    if (m.placements.length !== n)
      throw new InvalidArgumentError(`manifest of ${e.datasetId} has ${m.placements.length} placements for ${n} slots`);
    const leaves = await this.leafTables(e.datasetId);
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
