import { createHash } from "node:crypto";

import { generateActorKey, signRequest } from "@deai/kit";

import { signDigestHeaders } from "./actor-key.js";

describe("signDigestHeaders", () => {
  it("signs a precomputed Content-Digest exactly as the kit signs the body", () => {
    const key = generateActorKey();
    const body = Buffer.from("a segment of a large file");
    const digest = `sha-256=:${createHash("sha256").update(body).digest("base64")}:`;
    const opts = { created: 1_700_000_000, nonce: "n0nce" };
    const path = "/v1/uploads/0d0c/data/65536";
    const authority = "ingest.example:8443";
    expect(signDigestHeaders(key, "put", authority, path, digest, opts)).toEqual({
      ...signRequest({ key, method: "PUT", authority, path, body, ...opts }),
    });
  });
});
