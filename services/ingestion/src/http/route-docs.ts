// OpenAPI operations of ingestion's plain HTTP routes (routes.ts); the kit serves them in
// /openapi.json, and the OpenAPI test refuses a route served here but missing below.
import { UploadChunksResponseSchema } from "@deai/contracts/deai/ingestion/v1/ingestion_pb";
import { errorResponses, type HttpRouteDoc } from "@deai/kit";

const datasetId = { name: "dataset_id", in: "path", required: true, schema: { type: "string" } };
const bytes = (description: string): Record<string, unknown> => ({
  description,
  content: { "application/octet-stream": { schema: { type: "string", contentMediaType: "application/octet-stream" } } },
});

export const ingestionRouteDocs: readonly HttpRouteDoc[] = [
  {
    method: "put",
    path: "/v1/uploads/{upload_id}/data/{offset}",
    messages: [UploadChunksResponseSchema],
    operation: {
      operationId: "ingestion_putUploadData",
      summary: "Stream upload bytes from an offset",
      description:
        "Streams the body into the upload at `offset` (constant memory). Signed (RFC 9421) by the upload's owner; the signed Content-Digest is checked against the body as it streams, and the bytes count only when it matches (otherwise progress rolls back to `offset`, rounded down to a part group).",
      tags: ["deai.ingestion.v1.IngestionService"],
      security: [{ httpMessageSignature: [] }],
      parameters: [
        { name: "upload_id", in: "path", required: true, schema: { type: "string" } },
        { name: "offset", in: "path", required: true, schema: { type: "string", pattern: "^[0-9]{1,16}$" } },
        { name: "Content-Digest", in: "header", required: true, schema: { type: "string", pattern: "^sha-256=:[A-Za-z0-9+/]{43}=:$" } },
      ],
      requestBody: {
        required: true,
        content: { "application/octet-stream": { schema: { type: "string", contentMediaType: "application/octet-stream" } } },
      },
      responses: {
        "200": {
          description: "the upload's progress (UploadChunksResponse JSON)",
          content: { "application/json": { schema: { $ref: "#/components/schemas/deai.ingestion.v1.UploadChunksResponse" } } },
        },
        ...errorResponses(true),
      },
    },
  },
  {
    method: "get",
    path: "/v1/datasets/{dataset_id}/content",
    operation: {
      operationId: "ingestion_getDatasetContent",
      summary: "Download a dataset's verified bytes",
      description:
        "Fastest-k shard reads, each checked against its leaf, decoded; a full read checks contentDigest at the end (on a mismatch the connection is cut). One `bytes=` Range gives 206; an unsatisfiable one 416.",
      tags: ["deai.ingestion.v1.IngestionService"],
      parameters: [datasetId, { name: "Range", in: "header", required: false, schema: { type: "string", example: "bytes=0-1023" } }],
      responses: {
        "200": bytes("the whole dataset"),
        "206": bytes("the requested range (Content-Range)"),
        "416": {
          description: "range not satisfiable (Content-Range: bytes */size)",
          content: { "text/plain": { schema: { type: "string" } } },
        },
        ...errorResponses(false),
      },
    },
  },
  {
    method: "get",
    path: "/v1/datasets/{dataset_id}/leaves",
    operation: {
      operationId: "ingestion_getDatasetLeaves",
      summary: "A dataset's leaf table",
      description: "32-byte leaves SHA-256(0x00 ‖ shard) in (stripe, slot) order; immutable.",
      tags: ["deai.ingestion.v1.IngestionService"],
      parameters: [datasetId],
      responses: { "200": bytes("the leaf table"), ...errorResponses(false) },
    },
  },
  {
    method: "get",
    path: "/v1/datasets/{dataset_id}/reader-manifest",
    operation: {
      operationId: "ingestion_getReaderManifest",
      summary: "The trainer's reader manifest",
      description: "What a verified reader needs (geometry, placements, shardRoot) as JSON.",
      tags: ["deai.ingestion.v1.IngestionService"],
      parameters: [datasetId],
      responses: {
        "200": { description: "the reader manifest", content: { "application/json": { schema: { type: "object" } } } },
        ...errorResponses(false),
      },
    },
  },
];
