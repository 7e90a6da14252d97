// grpc.health.v1 per name with Watch following readiness and drains, and the OpenAPI route
// table: a plain HTTP route served without docs is caught.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";

import {
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as Status,
} from "@deai/contracts/grpc/health/v1/health_pb";
import { SystemService } from "@deai/contracts/deai/system/v1/system_pb";

import { bind, MemoryNonceStore, Server, type Readiness } from "../src/index.js";
import { quietLogger } from "./server-harness.js";

let ready = true;
let server: Server;
let client: grpc.Client;
let base: string;

beforeAll(async () => {
  server = new Server({
    host: "127.0.0.1",
    port: 0,
    bindings: [bind(SystemService, { getInfo: () => ({ service: "t" }) })],
    logger: quietLogger,
    signing: { nonces: new MemoryNonceStore(), maxAgeS: 300 },
    readiness: async (): Promise<Readiness> => ({ ready, checks: { dep: ready ? "ok" : "down" } }),
    title: "health test",
    version: "0",
    http: async (req, res) => {
      const path = (req.url ?? "").split("?")[0];
      if (path !== "/documented/x" && path !== "/undocumented") return false;
      res.writeHead(200).end("ok");
      return true;
    },
    httpDocs: [{ method: "get", path: "/documented/{id}", operation: { operationId: "doc", responses: { "200": { description: "ok" } } } }],
  });
  const port = await server.listen();
  base = `http://127.0.0.1:${port}`;
  client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
});
afterAll(async () => {
  client?.close();
  await server?.drain(Date.now() + 2000);
});

const check = (service: string): Promise<Status> =>
  new Promise((resolve, reject) =>
    client.makeUnaryRequest(
      "/grpc.health.v1.Health/Check",
      (m: ReturnType<typeof create<typeof HealthCheckRequestSchema>>) => Buffer.from(toBinary(HealthCheckRequestSchema, m)),
      (b: Buffer) => fromBinary(HealthCheckResponseSchema, b),
      create(HealthCheckRequestSchema, { service }),
      (err, r) => (err ? reject(err) : resolve(r!.status)),
    ),
  );

describe("grpc.health.v1", () => {
  it("answers per service name: SERVING for served ones, NOT_FOUND for others, and follows readiness", async () => {
    expect(await check("")).toBe(Status.SERVING);
    expect(await check("deai.system.v1.SystemService")).toBe(Status.SERVING);
    expect(await check("grpc.reflection.v1.ServerReflection")).toBe(Status.SERVING);
    await expect(check("deai.system.v1.Nope")).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    ready = false;
    expect(await check("deai.system.v1.SystemService")).toBe(Status.NOT_SERVING);
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    ready = true;
  });

  it("Watch sends the status at once, then each change: readiness lost, regained, then the drain", async () => {
    const seen: Status[] = [];
    const call = client.makeServerStreamRequest(
      "/grpc.health.v1.Health/Watch",
      (m: ReturnType<typeof create<typeof HealthCheckRequestSchema>>) => Buffer.from(toBinary(HealthCheckRequestSchema, m)),
      (b: Buffer) => fromBinary(HealthCheckResponseSchema, b),
      create(HealthCheckRequestSchema, { service: "deai.system.v1.SystemService" }),
    );
    call.on("data", (r: { status: Status }) => seen.push(r.status));
    call.on("error", () => undefined);
    const until = async (n: number): Promise<void> => {
      for (let i = 0; i < 100 && seen.length < n; i++) await new Promise((r) => setTimeout(r, 50));
    };
    await until(1);
    ready = false;
    await until(2);
    ready = true;
    await until(3);
    server.beginDrain();
    await until(4);
    expect(seen).toEqual([Status.SERVING, Status.NOT_SERVING, Status.SERVING, Status.NOT_SERVING]);
    expect(await (await fetch(`${base}/readyz`)).json()).toEqual({ status: "not ready", checks: { server: "draining" } });
    call.cancel();
  });
});

describe("OpenAPI route table", () => {
  it("records a plain HTTP route answered without docs, and not a documented one", async () => {
    expect((await fetch(`${base}/documented/x`)).status).toBe(200);
    expect(server.undocumented.size).toBe(0);
    expect((await fetch(`${base}/undocumented`)).status).toBe(200);
    expect([...server.undocumented]).toEqual(["GET /undocumented"]);
  });

  it("documents the kit routes and the app's, with unique operationIds and servers", async () => {
    const doc = (await (await fetch(`${base}/openapi.json`)).json()) as {
      servers: unknown[];
      paths: Record<string, Record<string, { operationId: string }>>;
    };
    expect(doc.servers.length).toBeGreaterThan(0);
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(["/healthz", "/readyz", "/openapi.json", "/documented/{id}", "/v1/system/info"]),
    );
    const ids = Object.values(doc.paths).flatMap((ops) => Object.values(ops).map((o) => o.operationId));
    expect(new Set(ids).size).toBe(ids.length);
  });
});
