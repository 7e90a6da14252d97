/**
 * Bad input at the contract boundary (issue 9, defects 2, 6 and 7), on every protocol the
 * kit's server speaks: strings with NUL or lone surrogates, protobuf that does not decode,
 * errors thrown inside streams, oversized chunked bodies and lenient URL parameters. The
 * contract is ingestion's (nested messages, maps, repeated messages, oneofs, both stream
 * kinds) over a recording fake, so "nothing reached the handler" is observable.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";

import {
  DownloadDatasetResponseSchema,
  GetShardProofResponseSchema,
  IngestionService,
  type UploadSpecSchema,
  type DownloadDatasetResponse,
} from "@deai/contracts/deai/ingestion/v1/ingestion_pb";
import { InvalidArgumentError, NotFoundError, bind, generateActorKey, requestSigner } from "@deai/kit";
import { grpcStreamSignature, signedFetch } from "@deai/testkit";

import { badStringIn } from "../src/server/string-check.js";
import { recordingLogger, startTestServer, type TestServer } from "./server-harness.js";

const calls: { method: string; req: unknown }[] = [];
const ingestion = bind(IngestionService, {
  createUpload: (req) => (calls.push({ method: "createUpload", req }), {}),
  getUpload: (req) => (calls.push({ method: "getUpload", req }), {}),
  getDataset: (req) => (calls.push({ method: "getDataset", req }), {}),
  listDatasets: (req) => (calls.push({ method: "listDatasets", req }), {}),
  listStorageProviders: (req) => (calls.push({ method: "listStorageProviders", req }), {}),
  getShardProof: (req) => (calls.push({ method: "getShardProof", req }), create(GetShardProofResponseSchema, { leafIndex: req.stripe })),
  uploadChunks: async (reqs) => {
    let n = 0n;
    for await (const r of reqs) n += BigInt(r.data.length);
    return { durableOffset: n };
  },
  downloadDataset: async function* (req): AsyncGenerator<DownloadDatasetResponse> {
    if (req.datasetId === "") throw new InvalidArgumentError("name a dataset_id");
    yield create(DownloadDatasetResponseSchema, { offset: 0n, data: new Uint8Array(3) });
    if (req.datasetId === "missing-later") throw new NotFoundError("dataset missing-later has no shards left");
  },
});

let t: TestServer;
let log: ReturnType<typeof recordingLogger>;
let rawGrpc: grpc.Client;
const key = generateActorKey();

beforeAll(async () => {
  log = recordingLogger();
  t = await startTestServer({ bindings: [ingestion], logger: log.logger });
  rawGrpc = new grpc.Client(`127.0.0.1:${t.port}`, grpc.credentials.createInsecure());
});
afterAll(async () => {
  rawGrpc?.close();
  await t?.close();
});
beforeEach(() => void (calls.length = 0));

const clients = () => ({
  grpc: createClient(IngestionService, createGrpcTransport({ baseUrl: t.base, interceptors: [requestSigner(key)] })),
  connect: createClient(
    IngestionService,
    createConnectTransport({ baseUrl: t.base, httpVersion: "1.1", interceptors: [requestSigner(key)] }),
  ),
  grpcWeb: createClient(
    IngestionService,
    createGrpcWebTransport({ baseUrl: t.base, httpVersion: "1.1", interceptors: [requestSigner(key)] }),
  ),
});

const codeOf = async (p: Promise<unknown>): Promise<{ code: Code; message: string }> => {
  try {
    await p;
  } catch (e) {
    const ce = ConnectError.from(e);
    return { code: ce.code, message: ce.rawMessage };
  }
  throw new Error("the call succeeded");
};

const errorLines = () => log.lines.filter((l) => l.level >= 50);

describe("strings at the contract boundary", () => {
  it("refuses NUL and lone surrogates in any string of any request, on gRPC, Connect and gRPC-Web, naming the field", async () => {
    const c = clients();
    const cases: { client: ReturnType<typeof clients>["grpc"]; spec: MessageInitShape<typeof UploadSpecSchema>; path: string }[] = [
      { client: c.grpc, spec: { name: "a\u0000b" }, path: "spec.name" },
      { client: c.connect, spec: { provenance: { x: "ok", y: "bad\u0000" } }, path: 'spec.provenance["y"]' },
      { client: c.grpcWeb, spec: { provenance: { "k\u0000": "v" } }, path: 'spec.provenance key "k\\u0000"' },
      {
        client: c.grpc,
        spec: { parents: [{ algorithm: "sha256", hex: "ab" }, { algorithm: "sha\u0000" }] },
        path: "spec.parents[1].algorithm",
      },
      { client: c.connect, spec: { contentDigest: { algorithm: "sha256", hex: "\u0000" } }, path: "spec.content_digest.hex" },
    ];
    for (const k of cases) {
      const r = await codeOf(k.client.createUpload({ spec: k.spec }));
      expect(r.code).toBe(Code.InvalidArgument);
      expect(r.message.startsWith(`${k.path} contains`)).toBe(true);
    }
    // A oneof member, and a message of a client stream.
    expect(await codeOf(c.grpcWeb.getDataset({ key: { case: "contentDigestSha256", value: "\u0000" } }))).toMatchObject({
      code: Code.InvalidArgument,
      message: expect.stringMatching(/^content_digest_sha256 contains a NUL/),
    });
    const stream = async function* () {
      yield { uploadId: "u1", offset: 0n, data: new Uint8Array(1) };
      yield { uploadId: "u1\u0000", offset: 1n, data: new Uint8Array(1) };
    };
    expect(await codeOf(c.grpc.uploadChunks(stream()))).toMatchObject({
      code: Code.InvalidArgument,
      message: expect.stringMatching(/^upload_id/),
    });
    // A lone surrogate has no UTF-8 form: a JSON client can send one, and it is refused too.
    const json = createClient(
      IngestionService,
      createConnectTransport({ baseUrl: t.base, httpVersion: "1.1", useBinaryFormat: false, interceptors: [requestSigner(key)] }),
    );
    expect(await codeOf(json.createUpload({ spec: { name: "\ud800" } }))).toMatchObject({ code: Code.InvalidArgument });
    expect(calls).toEqual([]);
    // A good string with a surrogate pair and other control characters passes.
    await c.grpc.createUpload({ spec: { name: "emoji \ud83d\ude00\t" } });
    expect(calls).toHaveLength(1);
  });

  it("refuses them in REST bodies, path variables and query parameters", async () => {
    const body = await signedFetch(`${t.base}/v1/uploads`, key, { body: JSON.stringify({ spec: { provenance: { x: "\u0000" } } }) });
    expect(body.status).toBe(400);
    expect(await body.json()).toMatchObject({
      code: "invalid_argument",
      message: expect.stringMatching(/^spec\.provenance\["x"\] contains a NUL/),
    });
    const query = await fetch(`${t.base}/v1/datasets?owner=%00`);
    expect(query.status).toBe(400);
    expect(((await query.json()) as { message: string }).message).toMatch(/^owner contains a NUL/);
    const path = await fetch(`${t.base}/v1/uploads/a%00b`);
    expect(path.status).toBe(400);
    expect(((await path.json()) as { message: string }).message).toMatch(/^upload_id contains a NUL/);
    const lone = await signedFetch(`${t.base}/v1/uploads`, key, { body: '{"spec":{"name":"\\udfff"}}' });
    expect(lone.status).toBe(400);
    expect(((await lone.json()) as { message: string }).message).toMatch(/UploadSpec\.name .*invalid UTF8/);
    expect(calls).toEqual([]);
  });
});

describe("the string walk", () => {
  it("names the path of a lone surrogate or NUL in nested messages, repeated fields, map keys and values, and oneofs", () => {
    const schema = IngestionService.method.createUpload.input;
    const at = (spec: object) => badStringIn(schema, create(schema, { spec }));
    expect(at({ name: "x\udc00" })).toEqual({ path: "spec.name", problem: "contains a lone surrogate (not valid Unicode)" });
    expect(at({ provenance: { "\ud800": "v" } })?.path).toBe('spec.provenance key "\\ud800"');
    expect(at({ provenance: { a: "b", c: "\u0000" } })?.path).toBe('spec.provenance["c"]');
    expect(at({ parents: [{}, { hex: "\ud800x" }] })?.path).toBe("spec.parents[1].hex");
    expect(at({ name: "ok \ud83d\ude00", provenance: { a: "b" } })).toBeUndefined();
    const get = IngestionService.method.getDataset.input;
    expect(badStringIn(get, create(get, { key: { case: "datasetId", value: "\u0000" } }))?.path).toBe("dataset_id");
  });
});

describe("protobuf that does not decode, and errors inside streams", () => {
  // Field 1 (upload_id), length 5, one byte: premature end.
  const garbage = Buffer.from([0x0a, 0x05, 0x41]);
  const envelope = Buffer.concat([Buffer.from([0, 0, 0, 0, garbage.length]), garbage]);
  const raw = { serialize: () => garbage, deserialize: (b: Buffer) => b };

  it("answers INVALID_ARGUMENT on gRPC (unary, server stream, client stream), Connect (400) and gRPC-Web, logging no error", async () => {
    const unary = await new Promise<grpc.ServiceError>((resolve) =>
      rawGrpc.makeUnaryRequest("/deai.ingestion.v1.IngestionService/GetUpload", raw.serialize, raw.deserialize, Buffer.alloc(0), (e) =>
        resolve(e!),
      ),
    );
    expect(unary.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(unary.details).toMatch(/GetUploadRequest does not decode/);

    const server = rawGrpc.makeServerStreamRequest(
      "/deai.ingestion.v1.IngestionService/DownloadDataset",
      raw.serialize,
      raw.deserialize,
      Buffer.alloc(0),
    );
    server.on("data", () => undefined);
    expect((await new Promise<grpc.ServiceError>((r) => server.on("error", r))).code).toBe(grpc.status.INVALID_ARGUMENT);

    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(
      grpcStreamSignature(key, `${t.base}/deai.ingestion.v1.IngestionService/UploadChunks`, IngestionService.method.uploadChunks.input, []),
    ))
      md.set(k, v);
    const clientStream = await new Promise<grpc.ServiceError>((resolve) => {
      const call = rawGrpc.makeClientStreamRequest(
        "/deai.ingestion.v1.IngestionService/UploadChunks",
        raw.serialize,
        raw.deserialize,
        md,
        (e) => resolve(e!),
      );
      call.write(Buffer.alloc(0));
      call.end();
    });
    expect(clientStream.code).toBe(grpc.status.INVALID_ARGUMENT);

    const connect = await fetch(`${t.base}/deai.ingestion.v1.IngestionService/GetUpload`, {
      method: "POST",
      headers: { "content-type": "application/proto" },
      body: garbage,
    });
    expect(connect.status).toBe(400);
    expect(await connect.json()).toMatchObject({ code: "invalid_argument", message: expect.stringMatching(/does not decode/) });

    const web = await fetch(`${t.base}/deai.ingestion.v1.IngestionService/GetUpload`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto" },
      body: envelope,
    });
    expect(web.status).toBe(200);
    const trailer = Buffer.from(await web.arrayBuffer())
      .subarray(5)
      .toString("latin1");
    expect(trailer).toMatch(/grpc-status: 3\r\n/);

    expect(calls).toEqual([]);
    expect(errorLines()).toEqual([]);
  });

  it("maps a DomainError thrown inside a server stream like a unary error, before or after the first message", async () => {
    const c = clients();
    for (const client of [c.grpc, c.connect, c.grpcWeb]) {
      const before = await codeOf(
        (async () => {
          for await (const m of client.downloadDataset({ datasetId: "" })) void m;
        })(),
      );
      expect(before).toEqual({ code: Code.InvalidArgument, message: "name a dataset_id" });
      let got = 0;
      const after = await codeOf(
        (async () => {
          for await (const m of client.downloadDataset({ datasetId: "missing-later" })) got += m.data.length;
        })(),
      );
      expect(after).toEqual({ code: Code.NotFound, message: "dataset missing-later has no shards left" });
      expect(got).toBe(3);
    }
    expect(errorLines()).toEqual([]);
  });

  it("answers an oversized chunked REST body with 413 and a JSON error, not a reset", async () => {
    const big = Buffer.alloc(5 * 1024 * 1024, 0x20);
    const body = new ReadableStream<Uint8Array>({
      start(ctl) {
        for (let i = 0; i < big.length; i += 64 * 1024) ctl.enqueue(big.subarray(i, i + 64 * 1024));
        ctl.close();
      },
    });
    const res = await fetch(`${t.base}/v1/uploads`, { method: "POST", body, duplex: "half" });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ code: "resource_exhausted", message: expect.stringMatching(/exceeds the limit/) });
  });
});

describe("strict URL parameters", () => {
  const proof = (stripe: string, slot = "1") => fetch(`${t.base}/v1/datasets/d/shards/${stripe}/${slot}/proof`);

  it("accepts only canonical decimal integers in path variables", async () => {
    const ok = await proof("16");
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ leafIndex: "16" });
    for (const bad of ["%20", "0x10", "+1", "01", "1e3", "-0", "-1", "1.0", "18446744073709551616", "%201", "1%20"]) {
      const r = await proof(bad);
      expect([bad, r.status]).toEqual([bad, 400]);
      expect(((await r.json()) as { message: string }).message).toMatch(/^path variable \{stripe\} must be/);
    }
    expect((await proof("1", "4294967296")).status).toBe(400);
    expect((await proof("18446744073709551615", "4294967295")).status).toBe(200);
  });

  it("refuses lenient or repeated query parameters, and bools other than true/false", async () => {
    expect((await fetch(`${t.base}/v1/datasets?page_size=10`)).status).toBe(200);
    expect(calls.at(-1)?.req).toMatchObject({ pageSize: 10 });
    for (const q of [
      "page_size=010",
      "page_size=4294967296",
      "page_size=%2010",
      "pageSize=1e1",
      "page_size=10&page_size=20",
      "page_size=1&pageSize=2",
      "owner=a&owner=b",
    ]) {
      const r = await fetch(`${t.base}/v1/datasets?${q}`);
      expect([q, r.status]).toEqual([q, 400]);
      expect(((await r.json()) as { message: string }).message).toMatch(/^query parameter "/);
    }
    expect((await fetch(`${t.base}/v1/storage-providers?eligible_only=true`)).status).toBe(200);
    for (const q of ["eligible_only=1", "eligible_only=True", "eligible_only="]) {
      expect((await fetch(`${t.base}/v1/storage-providers?${q}`)).status).toBe(400);
    }
  });
});
