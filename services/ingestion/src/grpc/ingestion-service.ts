import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";

import {
  CompleteUploadResponseSchema,
  DownloadDatasetResponseSchema,
  IngestionService,
  ListStorageProvidersResponseSchema,
  StorageProviderSchema,
  type DownloadDatasetRequest,
  type DownloadDatasetResponse,
  type UploadChunksRequest,
} from "@deai/contracts/deai/ingestion/v1/ingestion_pb";
import { bind, requireActor, toConnectError, type ServiceBinding } from "@deai/kit";
import { InvalidArgumentError } from "@deai/kit/errors";

import type { Datasets } from "../app/datasets.js";
import type { Uploads } from "../app/uploads.js";
import type { ProviderRegistry } from "@deai/kit";

/** Largest data field of one DownloadDataset message. */
const DOWNLOAD_MESSAGE_BYTES = 1024 * 1024;

/** The bytes of a client stream, checking that the messages name one upload and follow each other. */
async function* chunkBytes(first: UploadChunksRequest, rest: AsyncIterator<UploadChunksRequest>): AsyncGenerator<Uint8Array> {
  let expected = first.offset + BigInt(first.data.length);
  yield first.data;
  for (;;) {
    const r = await rest.next();
    if (r.done) return;
    const msg = r.value;
    if (msg.uploadId !== first.uploadId && msg.uploadId !== "") {
      throw new InvalidArgumentError(`every message of a stream must name upload ${first.uploadId}, got ${msg.uploadId}`);
    }
    if (msg.offset !== expected)
      throw new InvalidArgumentError(`chunk at offset ${msg.offset} does not follow the previous one (expected ${expected})`);
    expected += BigInt(msg.data.length);
    yield msg.data;
  }
}

export function ingestionService(uploads: Uploads, datasets: Datasets, registry: ProviderRegistry): ServiceBinding {
  async function* download(req: DownloadDatasetRequest): AsyncGenerator<DownloadDatasetResponse> {
    if (!req.datasetId) throw new InvalidArgumentError("dataset_id is required");
    const r = await datasets.read(req.datasetId, req.offset, req.length);
    const whole = r.start === 0 && r.end === r.size;
    let at = r.start;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const flush = (last: boolean): DownloadDatasetResponse => {
      const data = Buffer.concat(pending, pendingBytes);
      const msg = create(DownloadDatasetResponseSchema, { offset: BigInt(at), data, contentDigestVerified: last && whole });
      at += pendingBytes;
      pending = [];
      pendingBytes = 0;
      return msg;
    };
    for await (const piece of r.chunks) {
      let p = piece;
      while (p.length > 0) {
        const take = Math.min(p.length, DOWNLOAD_MESSAGE_BYTES - pendingBytes);
        pending.push(p.subarray(0, take));
        pendingBytes += take;
        p = p.subarray(take);
        if (pendingBytes === DOWNLOAD_MESSAGE_BYTES) yield flush(false);
      }
    }
    // The generator finished, so a full read's contentDigest matched.
    yield flush(true);
  }

  return bind(IngestionService, {
    createUpload: async (req, ctx) => ({ upload: await uploads.create(requireActor(ctx), req.spec) }),
    getUpload: async (req) => ({ upload: await uploads.get(req.uploadId) }),
    uploadChunks: async (reqs: AsyncIterable<UploadChunksRequest>, ctx: HandlerContext) => {
      const actor = requireActor(ctx);
      const it = reqs[Symbol.asyncIterator]();
      const first = await it.next();
      if (first.done) throw new InvalidArgumentError("empty stream: the first message must name the upload and its offset");
      // The kit throws from the iterator when the stream does not match its signed digest; until
      // the stream has ended intact none of its bytes count.
      return uploads.receive(actor, first.value.uploadId, first.value.offset, chunkBytes(first.value, it), { signedStream: true });
    },
    completeUpload: async (req, ctx) => {
      const r = await uploads.complete(requireActor(ctx), req.uploadId, req.manifestEnvelope);
      return create(CompleteUploadResponseSchema, {
        upload: r.upload,
        ...(r.manifest ? { manifest: r.manifest } : {}),
        ...(r.receipt ? { receipt: r.receipt } : {}),
        datasetId: r.datasetId ?? "",
      });
    },
    abortUpload: async (req, ctx) => ({ upload: await uploads.abort(requireActor(ctx), req.uploadId) }),
    getDataset: async (req) => {
      if (req.key.case === "datasetId") return { dataset: await datasets.get(req.key.value) };
      if (req.key.case === "contentDigestSha256") return { dataset: await datasets.getByDigest(req.key.value) };
      throw new InvalidArgumentError("name a dataset_id or a content_digest_sha256");
    },
    listDatasets: async (req) => {
      const r = await datasets.list({
        owner: req.owner,
        digest: req.contentDigestSha256,
        pageSize: req.pageSize,
        pageToken: req.pageToken,
      });
      return { datasets: r.datasets, nextPageToken: r.next };
    },
    downloadDataset: async function* (req): AsyncGenerator<DownloadDatasetResponse> {
      // A server stream's errors surface after the interceptors have returned: map them here,
      // so bad input is INVALID_ARGUMENT and unreadable data UNAVAILABLE, never INTERNAL.
      try {
        yield* download(req);
      } catch (e) {
        throw toConnectError(e);
      }
    },
    getShardProof: async (req) => datasets.shardProof(req.datasetId, req.stripe, req.slot),
    listStorageProviders: async (req) => {
      const all = await Promise.all(
        registry.all.map(async (p) =>
          create(StorageProviderSchema, {
            providerId: p.id,
            endpoint: p.config.endpoint,
            bucket: p.config.bucket,
            region: p.config.region,
            reliability: p.config.reliability,
            eligible: await p.ping(),
          }),
        ),
      );
      return create(ListStorageProvidersResponseSchema, { providers: req.eligibleOnly ? all.filter((p) => p.eligible) : all });
    },
  });
}
