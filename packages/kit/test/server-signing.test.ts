/**
 * Signatures bind what they say (issue 9, defect 9): a gRPC client stream is signed over
 * every message it carries, and every signature names the authority it was made for, so a
 * request signed for one service is refused by another that serves the same path.
 */
import { createHash } from "node:crypto";
import { request } from "node:http";

import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";

import { WhoAmIRequestSchema, WhoAmIResponseSchema } from "@deai/contracts/deai/system/v1/system_pb";
import { IngestionService, UploadChunksRequestSchema, type UploadChunksRequest } from "@deai/contracts/deai/ingestion/v1/ingestion_pb";
import { bind, generateActorKey, messageStreamDigest, requireActor, requestSigner, signRequest, StreamDigest } from "@deai/kit";
import { grpcSignature, grpcStreamSignature, grpcUnary, signedFetch } from "@deai/testkit";

import { startTestServer, type TestServer } from "./server-harness.js";

/** What the upload handler saw of each stream: its bytes, and whether the stream ended cleanly or broke. */
const seen: { actor: string; bytes: number; end: "complete" | "error" }[] = [];
const ingestion = bind(IngestionService, {
  uploadChunks: async (reqs, ctx) => {
    const actor = requireActor(ctx);
    let bytes = 0;
    try {
      for await (const r of reqs) bytes += r.data.length;
    } catch (e) {
      // A real handler rolls back here.
      seen.push({ actor, bytes, end: "error" });
      throw e;
    }
    seen.push({ actor, bytes, end: "complete" });
    return { durableOffset: BigInt(bytes) };
  },
});

let a: TestServer;
let b: TestServer;
beforeAll(async () => {
  a = await startTestServer({ bindings: [ingestion] });
  b = await startTestServer({ bindings: [ingestion] });
});
afterAll(async () => {
  await a?.close();
  await b?.close();
});
beforeEach(() => void (seen.length = 0));

const chunk = (offset: number, text: string): UploadChunksRequest =>
  create(UploadChunksRequestSchema, { uploadId: "u", offset: BigInt(offset), data: Buffer.from(text) });

async function* fromArray<T>(xs: T[]): AsyncGenerator<T> {
  yield* xs;
}

const codeOf = async (p: Promise<unknown>): Promise<{ code: Code; message: string }> => {
  try {
    await p;
  } catch (e) {
    const ce = ConnectError.from(e);
    return { code: ce.code, message: ce.rawMessage };
  }
  throw new Error("the call succeeded");
};

describe("client streams bound to their signature", () => {
  it("defines the digest: SHA-256 over each message's encoding prefixed by its 4-byte big-endian length", () => {
    const msgs = [chunk(0, "ab"), chunk(2, "c")];
    const h = createHash("sha256");
    for (const m of msgs) {
      const bin = toBinary(UploadChunksRequestSchema, m);
      const len = Buffer.alloc(4);
      len.writeUInt32BE(bin.length);
      h.update(len).update(bin);
    }
    expect(messageStreamDigest(UploadChunksRequestSchema, msgs)).toBe(`sha-256=:${h.digest("base64")}:`);
    expect(new StreamDigest().digest()).toBe(`sha-256=:${createHash("sha256").digest("base64")}:`);
  });

  it("accepts a stream signed by the kit's client (digest computed up front or from a first pass)", async () => {
    const key = generateActorKey();
    const client = createClient(IngestionService, createGrpcTransport({ baseUrl: a.base, interceptors: [requestSigner(key)] }));
    const r = await client.uploadChunks(fromArray([chunk(0, "hello "), chunk(6, "world")]));
    expect(r.durableOffset).toBe(11n);
    const msgs = [chunk(0, "one pass")];
    const r2 = await client.uploadChunks(fromArray(msgs), {
      headers: { "content-digest": messageStreamDigest(UploadChunksRequestSchema, msgs) },
    });
    expect(r2.durableOffset).toBe(8n);
    expect(seen).toEqual([
      { actor: key.id, bytes: 11, end: "complete" },
      { actor: key.id, bytes: 8, end: "complete" },
    ]);
  });

  it("refuses a stream that is not the signed one, from the iterator, before the handler takes it as complete", async () => {
    const key = generateActorKey();
    const plain = createClient(IngestionService, createGrpcTransport({ baseUrl: a.base }));
    const url = `${a.base}/deai.ingestion.v1.IngestionService/UploadChunks`;
    const signedFor = (msgs: UploadChunksRequest[]) => ({ headers: grpcStreamSignature(key, url, UploadChunksRequestSchema, msgs) });
    // A message appended, a message changed, and the same bytes cut at another boundary.
    const attempts: [UploadChunksRequest[], UploadChunksRequest[]][] = [
      [[chunk(0, "ab")], [chunk(0, "ab"), chunk(2, "c")]],
      [[chunk(0, "ab")], [chunk(0, "aB")]],
      [
        [chunk(0, "ab"), chunk(2, "c")],
        [chunk(0, "a"), chunk(1, "bc")],
      ],
      [[], [chunk(0, "x")]],
    ];
    for (const [signed, sent] of attempts) {
      expect(await codeOf(plain.uploadChunks(fromArray(sent), signedFor(signed)))).toEqual({
        code: Code.Unauthenticated,
        message: "stream does not match its signed content-digest",
      });
    }
    expect(seen.map((s) => s.end)).toEqual(["error", "error", "error", "error"]);
    // Unsigned streams never reach the handler.
    expect(await codeOf(plain.uploadChunks(fromArray([chunk(0, "x")])))).toMatchObject({ code: Code.Unauthenticated });
    expect(seen).toHaveLength(4);
  });
});

describe("signatures cover @authority", () => {
  it("refuses at service B a REST request signed for service A (and a forged Host naming A)", async () => {
    const key = generateActorKey();
    const body = new TextEncoder().encode('{"note":"for a"}');
    const forA = signRequest({ key, method: "POST", url: `${a.base}/v1/system/whoami`, body });
    const atB = await fetch(`${b.base}/v1/system/whoami`, { method: "POST", body, headers: { ...forA } });
    expect(atB.status).toBe(401);
    expect(((await atB.json()) as { message: string }).message).toMatch(/signature does not verify/);
    // Host rewritten to A's authority: B is not A.
    const forged = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(`${b.base}/v1/system/whoami`, { method: "POST", headers: { ...forA, host: `127.0.0.1:${a.port}` } }, (res) => {
        let text = "";
        res.on("data", (d: Buffer) => (text += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on("error", reject);
      req.end(body);
    });
    expect(forged.status).toBe(401);
    expect((JSON.parse(forged.text) as { message: string }).message).toBe(
      `request is addressed to "127.0.0.1:${a.port}", not to this service`,
    );
    // At A, the very same request is fine.
    const atA = await fetch(`${a.base}/v1/system/whoami`, { method: "POST", body, headers: { ...forA } });
    expect(atA.status).toBe(200);
  });

  it("refuses at service B a gRPC call signed for service A, and a signature that does not cover @authority", async () => {
    const key = generateActorKey();
    const path = "/deai.system.v1.SystemService/WhoAmI";
    const msg = create(WhoAmIRequestSchema, { note: "grpc" });
    const client = new grpc.Client(`127.0.0.1:${b.port}`, grpc.credentials.createInsecure());
    try {
      await expect(
        grpcUnary(
          client,
          path,
          WhoAmIRequestSchema,
          WhoAmIResponseSchema,
          msg,
          grpcSignature(key, a.base + path, WhoAmIRequestSchema, msg),
        ),
      ).rejects.toMatchObject({
        code: grpc.status.UNAUTHENTICATED,
        details: expect.stringMatching(/addressed to|does not verify/),
      });
      const ok = await grpcUnary(
        client,
        path,
        WhoAmIRequestSchema,
        WhoAmIResponseSchema,
        msg,
        grpcSignature(key, b.base + path, WhoAmIRequestSchema, msg),
      );
      expect(ok.actor).toBe(key.id);
    } finally {
      client.close();
    }
    // The signature scheme before @authority: refused.
    const { sign } = await import("node:crypto");
    const body = new TextEncoder().encode("{}");
    const digest = `sha-256=:${createHash("sha256").update(body).digest("base64")}:`;
    const params = `("@method" "@path" "content-digest");created=${Math.floor(Date.now() / 1000)};nonce="old-style-1";keyid="${key.id}";alg="ed25519"`;
    const base = [`"@method": POST`, `"@path": /v1/system/whoami`, `"content-digest": ${digest}`, `"@signature-params": ${params}`].join(
      "\n",
    );
    const sig = sign(null, Buffer.from(base), key.privateKey).toString("base64");
    const old = await fetch(`${b.base}/v1/system/whoami`, {
      method: "POST",
      body,
      headers: { "content-digest": digest, "signature-input": `sig1=${params}`, signature: `sig1=:${sig}:` },
    });
    expect(old.status).toBe(401);
    expect(((await old.json()) as { message: string }).message).toMatch(/must cover @authority/);
  });

  it("answers to its configured authorities only, on every route (the app's own HTTP routes too)", async () => {
    const own = await startTestServer({
      authorities: ["Ledger.Example:8443"],
      http: async (req, res) => {
        if (!req.url?.startsWith("/custom")) return false;
        res.writeHead(200).end("custom");
        return true;
      },
    });
    try {
      const key = generateActorKey();
      const send = (path: string, host: string, signedFor: string) =>
        new Promise<number>((resolve, reject) => {
          const body = Buffer.from('{"note":"x"}');
          const headers = { ...signRequest({ key, method: "POST", authority: signedFor, path, body }), host };
          const req = request(`${own.base}${path}`, { method: "POST", headers }, (res) => {
            res.resume();
            res.on("end", () => resolve(res.statusCode ?? 0));
          });
          req.on("error", reject);
          req.end(body);
        });
      expect(await send("/v1/system/whoami", "ledger.example:8443", "ledger.example:8443")).toBe(200);
      // Its loopback address is not one of its names once names are configured.
      expect(await send("/v1/system/whoami", `127.0.0.1:${own.port}`, `127.0.0.1:${own.port}`)).toBe(401);
      expect(await send("/custom", "ingest.example", "ingest.example")).toBe(401);
      expect(await send("/custom", "ledger.example:8443", "ledger.example:8443")).toBe(200);
      // signedFetch signs for the URL it calls: loopback, refused here.
      expect((await signedFetch(`${own.base}/v1/system/whoami`, key, { body: "{}" })).status).toBe(401);
    } finally {
      await own.close();
    }
  });
});
