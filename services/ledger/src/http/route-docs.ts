// OpenAPI operations of the C2SP tlog-tiles read paths (tiles.ts), under the configured prefix.
import type { HttpRouteDoc } from "@deai/kit";

const text = (description: string): Record<string, unknown> => ({ description, content: { "text/plain": { schema: { type: "string" } } } });
const bytes = (description: string): Record<string, unknown> => ({
  description,
  content: { "application/octet-stream": { schema: { type: "string", contentMediaType: "application/octet-stream" } } },
});
const etag = { name: "If-None-Match", in: "header", required: false, schema: { type: "string" } };
const notModified = { description: "the client's copy is current (If-None-Match)" };
const index = {
  name: "index",
  in: "path",
  required: true,
  description: "tile index in the C2SP form (x001/x234/067: may hold slashes), optionally with .p/<width> for a partial tile",
  schema: { type: "string" },
};
const tags = ["tlog-tiles"];

export function tilesRouteDocs(prefix: string): readonly HttpRouteDoc[] {
  const p = prefix.replace(/[.*+?^$()|[\]\\]/g, "\\$&");
  return [
    {
      method: "get",
      path: `${prefix}/checkpoint`,
      operation: {
        operationId: "tiles_checkpoint",
        summary: "The published checkpoint (C2SP tlog-checkpoint, signed note)",
        description: "With the witness quorum when one is configured. CORS; ETag (no-cache, revalidate).",
        tags,
        parameters: [etag],
        responses: { "200": text("the signed note"), "304": notModified, "404": text("no checkpoint yet") },
      },
    },
    {
      method: "get",
      path: `${prefix}/log-checkpoint`,
      operation: {
        operationId: "tiles_logCheckpoint",
        summary: "The newest checkpoint the log signed",
        description: "What witnesses follow and cosign.",
        tags,
        parameters: [etag],
        responses: { "200": text("the signed note"), "304": notModified, "404": text("no checkpoint yet") },
      },
    },
    {
      method: "get",
      path: `${prefix}/tile/{level}/{index}`,
      pattern: new RegExp(`^${p}/tile/[0-9]+/.+$`),
      operation: {
        operationId: "tiles_hashTile",
        summary: "A hash tile (C2SP tlog-tiles)",
        description: "Immutable once full (strong ETag, cached for a year); partial tiles for 60 s.",
        tags,
        parameters: [{ name: "level", in: "path", required: true, schema: { type: "integer", minimum: 0, maximum: 63 } }, index, etag],
        responses: { "200": bytes("width × 32-byte hashes"), "304": notModified, "404": text("no such tile in the tree") },
      },
    },
    {
      method: "get",
      path: `${prefix}/tile/entries/{index}`,
      pattern: new RegExp(`^${p}/tile/entries/.+$`),
      operation: {
        operationId: "tiles_entryBundle",
        summary: "An entry bundle (C2SP tlog-tiles)",
        description: "gzip when Accept-Encoding allows it (Content-Encoding, Vary: Accept-Encoding); ETag per coding.",
        tags,
        parameters: [index, etag],
        responses: {
          "200": bytes("big-endian uint16 length-prefixed entries"),
          "304": notModified,
          "404": text("no such bundle in the tree"),
        },
      },
    },
  ];
}
