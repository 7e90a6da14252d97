/**
 * Dataset reads: lookup, listing, verified streaming downloads (with shard_invalid evidence),
 * shard proofs, the leaf table and the trainer's reader manifest.
 */
import { create } from "@bufbuild/protobuf";
import type { Kysely } from "kysely";

import {
  DatasetSchema,
  DatasetState,
  GetShardProofResponseSchema,
  type Dataset,
  type GetShardProofResponse,
  type Manifest,
} from "@deai/contracts/deai/ingestion/v1/ingestion_pb";
import { systemClock, type Clock, type Logger, type OutboxRelay, type ProviderRegistry } from "@deai/kit";
import { InvalidArgumentError, NotFoundError, UnavailableError } from "@deai/kit/errors";
import { inclusionProofFromLeaves, shardRoot } from "@deai/proofs";

import { datasetByDigest, datasetById, listDatasets, recordShardFinding, type DatasetRecord } from "../store/datasets.js";
import type { IngestionDb } from "../store/tables.js";
import { latestPlacement } from "../store/placements.js";
import { groupsOf } from "../store/uploads.js";
import { codecFor } from "./codecs.js";
import { ingestionMetrics } from "./metrics.js";
import { leafList, readVerified, slotLocations, type InvalidShard, type ReadLayout, type ReadOptions, type ReadStats } from "./reader.js";

export interface DatasetsOptions {
  readonly db: Kysely<IngestionDb>;
  readonly registry: ProviderRegistry;
  readonly outbox: OutboxRelay;
  readonly logger: Logger;
  readonly clock?: Clock;
  /** This service's actor id: the reporter of shard_invalid evidence. */
  readonly reporter: string;
  readonly readOptions: Omit<ReadOptions, "codec" | "onInvalid">;
}

interface Cached {
  readonly manifest: Manifest;
  readonly leaves: Buffer;
}

const ACTOR_ID = /^[A-Za-z0-9_-]{43}$/;
const DATASET_ID_LOOSE = /^[0-9a-f-]{36}$/;
const DATASET_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Latest instant a JavaScript Date (and a page token) can name. */
const MAX_DATE_MS = 8.64e15;

/** A listing position: the last dataset's creation time and id. */
export function encodePageToken(createdAt: Date, datasetId: string): string {
  return Buffer.from(`${createdAt.getTime()}|${datasetId}`).toString("base64url");
}

/** Decodes a page token this service issued; anything else is INVALID_ARGUMENT saying what is wrong. */
export function decodePageToken(token: string): { at: Date; id: string } {
  const bad = (why: string): InvalidArgumentError => new InvalidArgumentError(`page_token is not one this service issued: ${why}`);
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(token)) throw bad("not base64url");
  const text = Buffer.from(token, "base64url").toString("latin1");
  const m = /^(\d{1,16})\|([0-9a-f-]{36})$/.exec(text);
  if (!m) throw bad("not <time>|<dataset id>");
  const ms = Number(m[1]);
  if (ms > MAX_DATE_MS) throw bad("its time is out of range");
  if (!DATASET_ID.test(m[2]!)) throw bad("its dataset id is malformed");
  return { at: new Date(ms), id: m[2]! };
}

/** A dataset record as the API shows it. */
function toDataset(r: DatasetRecord): Dataset {
  return create(DatasetSchema, {
    datasetId: r.datasetId,
    manifest: r.manifest,
    manifestEnvelope: r.envelope,
    receipt: r.receipt,
    state: DatasetState.AVAILABLE,
  });
}

/** Counts the bytes of a read as they go out. */
async function* counted(chunks: AsyncGenerator<Buffer>): AsyncGenerator<Buffer> {
  const served = ingestionMetrics().served;
  for await (const c of chunks) {
    served.add(c.length);
    yield c;
  }
}

export class Datasets {
  /** Leaf tables checked against shardRoot, by dataset (a few MiB at most per TB of data). */
  private readonly cache = new Map<string, Cached>();
  private readonly clock: Clock;

  constructor(private readonly o: DatasetsOptions) {
    this.clock = o.clock ?? systemClock;
  }

  async get(datasetId: string): Promise<Dataset> {
    if (!DATASET_ID_LOOSE.test(datasetId)) throw new InvalidArgumentError(`dataset_id ${JSON.stringify(datasetId)} is not a dataset id`);
    const r = await datasetById(this.o.db, datasetId);
    if (!r) throw new NotFoundError(`dataset ${datasetId} not found`);
    return toDataset(r);
  }

  async getByDigest(hex: string): Promise<Dataset> {
    if (!/^[0-9a-f]{64}$/.test(hex)) throw new InvalidArgumentError("content_digest_sha256 must be 64 lowercase hex digits");
    const r = await datasetByDigest(this.o.db, hex);
    if (!r) throw new NotFoundError(`no dataset with contentDigest sha256:${hex}`);
    return toDataset(r);
  }

  async list(opts: { owner: string; digest: string; pageSize: number; pageToken: string }): Promise<{ datasets: Dataset[]; next: string }> {
    const size = Math.min(Math.max(opts.pageSize || 50, 1), 500);
    if (opts.owner && !ACTOR_ID.test(opts.owner)) throw new InvalidArgumentError("owner must be an actor id (43 base64url characters)");
    if (opts.digest && !/^[0-9a-f]{64}$/.test(opts.digest))
      throw new InvalidArgumentError("content_digest_sha256 must be 64 lowercase hex digits");
    const rows = await listDatasets(this.o.db, {
      ...(opts.owner ? { owner: opts.owner } : {}),
      ...(opts.digest ? { contentHex: opts.digest } : {}),
      ...(opts.pageToken ? { after: decodePageToken(opts.pageToken) } : {}),
      limit: size + 1,
    });
    const page = rows.slice(0, size);
    const last = page[page.length - 1];
    return {
      datasets: page.map(toDataset),
      next: rows.length > size && last ? encodePageToken(last.createdAt, last.datasetId) : "",
    };
  }

  private async load(datasetId: string): Promise<Cached> {
    const hit = this.cache.get(datasetId);
    if (hit) return hit;
    const manifest = (await this.get(datasetId)).manifest!;
    const leaves = Buffer.concat((await groupsOf(this.o.db, datasetId)).map((g) => g.leaves));
    if (!Buffer.from(shardRoot(leafList(leaves))).equals(Buffer.from(manifest.shardRoot))) {
      throw new UnavailableError(`dataset ${datasetId}: the stored leaf table does not hash to the manifest's shardRoot`);
    }
    const c = { manifest, leaves };
    if (this.cache.size > 256) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(datasetId, c);
    return c;
  }

  /**
   * The placements in force: the latest version recorded after a repair (placement/v1, verified
   * when it arrived), else the manifest's. Read on every request, so downloads follow a repair
   * at once.
   */
  async placements(datasetId: string, manifest: Manifest): Promise<Manifest["placements"]> {
    return (await latestPlacement(this.o.db, datasetId))?.placements ?? manifest.placements;
  }

  async layout(datasetId: string): Promise<{ manifest: Manifest; layout: ReadLayout }> {
    const { manifest, leaves } = await this.load(datasetId);
    const placements = await this.placements(datasetId, manifest);
    return {
      manifest,
      layout: {
        datasetId,
        k: manifest.k,
        m: manifest.m,
        shardSize: manifest.shardSize,
        size: Number(manifest.size),
        stripes: Number(manifest.stripes),
        leaves,
        slots: slotLocations(placements, this.o.registry),
      },
    };
  }

  /** Verified bytes [offset, offset + length) (length 0 = to the end); a full read also checks contentDigest. */
  async read(
    datasetId: string,
    offset: bigint,
    length: bigint,
    stats?: ReadStats,
  ): Promise<{ size: number; start: number; end: number; chunks: AsyncGenerator<Buffer> }> {
    const { manifest, layout } = await this.layout(datasetId);
    const size = Number(manifest.size);
    const start = Number(offset);
    if (start > size || (start === size && size > 0))
      throw new InvalidArgumentError(`offset ${start} is beyond the dataset's ${size} bytes`);
    const end = length === 0n ? size : Math.min(size, start + Number(length));
    const codec = codecFor(manifest.k, manifest.m, manifest.shardSize);
    const chunks = readVerified(layout, start, end - start, {
      ...this.o.readOptions,
      codec,
      onInvalid: (s) => this.reportInvalid(datasetId, s),
      expectDigestHex: manifest.contentDigest?.hex,
      ...(stats ? { stats } : {}),
    });
    return { size, start, end, chunks: counted(chunks) };
  }

  /**
   * Evidence: each shard that failed its leaf check is stored as a finding, with its
   * `deai.dataset.shard_invalid` event in the same transaction (the outbox relays it, so none
   * is lost while NATS is down).
   */
  reportInvalid(datasetId: string, s: InvalidShard): void {
    const foundAt = this.clock.now();
    const findingId = `${datasetId}/${s.stripe}/${s.slot}/${this.o.reporter}/${foundAt.getTime()}`;
    this.o.logger.warn({ datasetId, stripe: s.stripe, slot: s.slot, provider: s.providerId }, "shard failed its leaf check");
    void recordShardFinding(this.o.db, {
      findingId,
      datasetId,
      stripe: s.stripe,
      slot: s.slot,
      providerId: s.providerId,
      expected: s.expected,
      observed: s.observed,
      reporterId: this.o.reporter,
      foundAt,
    })
      .then(() => this.o.outbox.kick())
      .catch((e: unknown) => this.o.logger.error({ err: e, findingId }, "could not record a shard finding"));
  }

  async shardProof(datasetId: string, stripe: bigint, slot: number): Promise<GetShardProofResponse> {
    const { manifest, leaves } = await this.load(datasetId);
    const n = manifest.k + manifest.m;
    if (stripe >= manifest.stripes) throw new InvalidArgumentError(`stripe ${stripe} is beyond the dataset's ${manifest.stripes} stripes`);
    if (slot >= n) throw new InvalidArgumentError(`slot ${slot} is beyond the dataset's ${n} slots`);
    const size = leaves.length / 32;
    const index = Number(stripe) * n + slot;
    const at = (i: number): Uint8Array => leaves.subarray(i * 32, i * 32 + 32);
    const all = Array.from({ length: size }, (_, i) => at(i));
    return create(GetShardProofResponseSchema, {
      leafHash: at(index),
      leafIndex: BigInt(index),
      treeSize: BigInt(size),
      inclusionProof: inclusionProofFromLeaves(index, all),
      shardRoot: manifest.shardRoot,
      placement: (await this.placements(datasetId, manifest))[slot],
      objectOffset: stripe * BigInt(manifest.shardSize),
    });
  }

  /** The leaf table (stripes × n × 32 bytes), checked against shardRoot. */
  async leafTable(datasetId: string): Promise<Buffer> {
    return (await this.load(datasetId)).leaves;
  }

  /** The trainer's manifest JSON (services/trainer/deai_trainer/manifest.py). */
  async readerManifest(datasetId: string): Promise<Record<string, unknown>> {
    const { manifest, leaves } = await this.load(datasetId);
    return {
      name: manifest.name,
      datasetId,
      contentDigest: manifest.contentDigest?.hex,
      size: Number(manifest.size),
      k: manifest.k,
      m: manifest.m,
      shardSize: manifest.shardSize,
      stripes: Number(manifest.stripes),
      shardRoot: Buffer.from(manifest.shardRoot).toString("hex"),
      leaves: Array.from({ length: leaves.length / 32 }, (_, i) => leaves.subarray(i * 32, i * 32 + 32).toString("hex")),
      placements: (await this.placements(datasetId, manifest)).map((p) => ({
        slot: p.slot,
        provider: p.providerId,
        endpoint: p.endpoint,
        bucket: p.bucket,
        key: p.key,
      })),
    };
  }
}
