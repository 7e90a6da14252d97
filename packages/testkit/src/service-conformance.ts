/**
 * What every DeAI OS service process must do, checked against the built binary with real
 * Postgres, NATS and S3: start, migrate, answer curl and a stock grpc-js client, serve its
 * contract, and drain on SIGTERM.
 */
import { execFile, spawn } from "node:child_process";
import { request } from "node:http";
import { promisify } from "node:util";

import {
  create,
  createFileRegistry,
  fromBinary,
  toBinary,
  toJson,
  type DescMessage,
  type DescService,
  type FileRegistry,
  type MessageShape,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";

import {
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus,
} from "@deai/contracts/grpc/health/v1/health_pb";
import { GetInfoRequestSchema, GetInfoResponseSchema } from "@deai/contracts/deai/system/v1/system_pb";
import { ServerReflectionRequestSchema, ServerReflectionResponseSchema } from "@deai/contracts/grpc/reflection/v1/reflection_pb";
import { generateActorKey, restRoutes, signRequest } from "@deai/kit";

import { createTestEnv, type TestEnv } from "./env.js";
import { openApiProblems } from "./openapi-check.js";
import { spawnService, type ServiceProcess } from "./process.js";

const run = promisify(execFile);

/** A unary call with a stock grpc-js client (no generated stubs: the descriptors serialize). */
export function grpcUnary<I extends DescMessage, O extends DescMessage>(
  client: grpc.Client,
  path: string,
  i: I,
  o: O,
  msg: MessageShape<I>,
  meta: Record<string, string> = {},
): Promise<MessageShape<O>> {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(meta)) md.set(k, v);
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(
      path,
      (m: MessageShape<I>) => Buffer.from(toBinary(i, m)),
      (b: Buffer) => fromBinary(o, b),
      msg,
      md,
      (err, res) => (err ? reject(err) : resolve(res!)),
    ),
  );
}

/** The drain delay the conformance test runs with: long enough to observe, short enough for CI. */
const DRAIN_MS = 2000;

/** A grpc.health.v1 Watch stream read one status at a time. */
function watchHealth(
  client: grpc.Client,
  service: string,
): { next(): Promise<HealthCheckResponse_ServingStatus>; cancel(): void; ended: Promise<boolean> } {
  const call = client.makeServerStreamRequest(
    "/grpc.health.v1.Health/Watch",
    (m: MessageShape<typeof HealthCheckRequestSchema>) => Buffer.from(toBinary(HealthCheckRequestSchema, m)),
    (b: Buffer) => fromBinary(HealthCheckResponseSchema, b),
    create(HealthCheckRequestSchema, { service }),
  );
  const queue: HealthCheckResponse_ServingStatus[] = [];
  const waiting: ((s: HealthCheckResponse_ServingStatus) => void)[] = [];
  call.on("data", (r: MessageShape<typeof HealthCheckResponseSchema>) => {
    const w = waiting.shift();
    if (w) w(r.status);
    else queue.push(r.status);
  });
  const ended = new Promise<boolean>((resolve) => {
    call.on("error", () => resolve(false));
    call.on("end", () => resolve(true));
  });
  return {
    next: () => {
      const q = queue.shift();
      if (q !== undefined) return Promise.resolve(q);
      return new Promise((resolve, reject) => {
        waiting.push(resolve);
        setTimeout(() => reject(new Error("no health status within 5 s")), 5000).unref();
      });
    },
    cancel: () => call.cancel(),
    ended,
  };
}

/**
 * What grpcurl does without proto files: list the services over server reflection and fetch
 * the file declaring `symbol` with its dependencies, all on one ServerReflectionInfo stream.
 */
async function reflect(
  client: grpc.Client,
  api: "v1" | "v1alpha",
  symbol: string,
): Promise<{ services: string[]; registry: FileRegistry }> {
  const call = client.makeBidiStreamRequest(
    `/grpc.reflection.${api}.ServerReflection/ServerReflectionInfo`,
    (m: MessageShape<typeof ServerReflectionRequestSchema>) => Buffer.from(toBinary(ServerReflectionRequestSchema, m)),
    (b: Buffer) => fromBinary(ServerReflectionResponseSchema, b),
  );
  const answers: MessageShape<typeof ServerReflectionResponseSchema>[] = [];
  const done = new Promise<void>((resolve, reject) => {
    call.on("data", (r: MessageShape<typeof ServerReflectionResponseSchema>) => answers.push(r));
    call.on("end", resolve);
    call.on("error", reject);
  });
  call.write(create(ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } }));
  call.write(create(ServerReflectionRequestSchema, { messageRequest: { case: "fileContainingSymbol", value: symbol } }));
  call.write(
    create(ServerReflectionRequestSchema, { messageRequest: { case: "fileContainingSymbol", value: "deai.system.v1.SystemService" } }),
  );
  call.end();
  await done;
  const [list, ...files] = answers;
  if (list?.messageResponse.case !== "listServicesResponse") throw new Error(`list_services answered ${list?.messageResponse.case}`);
  const protos = files.flatMap((a) => {
    if (a.messageResponse.case !== "fileDescriptorResponse") throw new Error(`file_containing_symbol answered ${a.messageResponse.case}`);
    return a.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
  });
  // A FileDescriptorSet for createFileRegistry lists dependencies first; reflection sends the asked-for file first.
  const byName = new Map(protos.map((p) => [p.name, p]));
  const ordered: typeof protos = [];
  const visit = (name: string): void => {
    const p = byName.get(name);
    if (!p || ordered.includes(p)) return;
    p.dependency.forEach(visit);
    ordered.push(p);
  };
  protos.forEach((p) => visit(p.name));
  return {
    services: list.messageResponse.value.service.map((s) => s.name),
    registry: createFileRegistry(create(FileDescriptorSetSchema, { file: ordered })),
  };
}

export function describeServiceProcess(opts: {
  name: string;
  mainJs: string;
  service: DescService;
  /** What the service needs to be ready (keys, peers): extra variables, and their clean-up. */
  setup?: (env: TestEnv) => Promise<{ vars: Record<string, string>; close?: () => Promise<void> }>;
}): void {
  describe(`${opts.name} service process`, () => {
    let env: TestEnv;
    let svc: ServiceProcess;
    let base: string;
    let client: grpc.Client;
    let extra: { vars: Record<string, string>; close?: () => Promise<void> } | undefined;

    beforeAll(async () => {
      env = await createTestEnv(opts.name);
      extra = await opts.setup?.(env);
      svc = await spawnService(opts.mainJs, env.vars({ ...extra?.vars, SHUTDOWN_DRAIN_MS: String(DRAIN_MS) }), { timeoutMs: 60_000 });
      base = `http://127.0.0.1:${svc.port}`;
      client = new grpc.Client(`127.0.0.1:${svc.port}`, grpc.credentials.createInsecure());
    });
    afterAll(async () => {
      client?.close();
      if (svc && svc.proc.exitCode === null) {
        svc.kill("SIGKILL");
        await svc.exited;
      }
      await extra?.close?.();
      await env?.close();
    });

    it("answers curl on /healthz and /readyz", async () => {
      expect(JSON.parse((await run("curl", ["-sS", "-f", `${base}/healthz`])).stdout)).toEqual({ status: "ok" });
      const ready = JSON.parse((await run("curl", ["-sS", "-f", `${base}/readyz`])).stdout) as {
        status: string;
        checks: Record<string, string>;
      };
      expect(ready.status).toBe("ready");
      expect(ready.checks).toMatchObject({ postgres: "ok", nats: "ok" });
    });

    it("answers a stock grpc-js client: grpc.health.v1 per service name and SystemService/GetInfo", async () => {
      const check = (service: string): Promise<HealthCheckResponse_ServingStatus> =>
        grpcUnary(
          client,
          "/grpc.health.v1.Health/Check",
          HealthCheckRequestSchema,
          HealthCheckResponseSchema,
          create(HealthCheckRequestSchema, { service }),
        ).then((r) => r.status);
      expect(await check("")).toBe(HealthCheckResponse_ServingStatus.SERVING);
      expect(await check(opts.service.typeName)).toBe(HealthCheckResponse_ServingStatus.SERVING);
      expect(await check("deai.system.v1.SystemService")).toBe(HealthCheckResponse_ServingStatus.SERVING);
      await expect(check("no.such.v1.Service")).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
      const unknown = watchHealth(client, "no.such.v1.Service");
      expect(await unknown.next()).toBe(HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN);
      unknown.cancel();
      const info = await grpcUnary(
        client,
        "/deai.system.v1.SystemService/GetInfo",
        GetInfoRequestSchema,
        GetInfoResponseSchema,
        create(GetInfoRequestSchema),
      );
      expect(info.service).toBe(opts.name);
      expect(info.schema).toBe(opts.name.replace(/-/g, "_"));
      expect(info.migrations).toEqual(expect.arrayContaining(["0000_kit_001_nonces", "0000_kit_002_outbox", "0000_kit_003_inbox"]));
    });

    it("serves gRPC reflection: a generic client lists the services, fetches descriptors and calls GetInfo", async () => {
      for (const api of ["v1", "v1alpha"] as const) {
        const reflected = await reflect(client, api, opts.service.typeName);
        expect(reflected.services).toEqual(
          expect.arrayContaining([opts.service.typeName, "deai.system.v1.SystemService", "grpc.health.v1.Health"]),
        );
        const target = reflected.registry.getService(opts.service.typeName);
        expect(target?.methods.map((m) => m.name)).toEqual(opts.service.methods.map((m) => m.name));
        const system = reflected.registry.getService("deai.system.v1.SystemService")!;
        const getInfo = system.methods.find((m) => m.name === "GetInfo")!;
        // The request and the answer are built from the reflected descriptors only.
        const info = await grpcUnary(client, `/${system.typeName}/${getInfo.name}`, getInfo.input, getInfo.output, create(getInfo.input));
        expect(toJson(getInfo.output, info)).toMatchObject({ service: opts.name, schema: opts.name.replace(/-/g, "_") });
      }
    });

    it("answers curl on the REST form of GetInfo and serves its contract in /openapi.json", async () => {
      const info = JSON.parse((await run("curl", ["-sS", "-f", `${base}/v1/system/info`])).stdout) as { service: string };
      expect(info.service).toBe(opts.name);
      const doc = JSON.parse((await run("curl", ["-sS", "-f", `${base}/openapi.json`])).stdout) as { paths: Record<string, unknown> };
      const routes = restRoutes(opts.service);
      expect(routes.length).toBeGreaterThan(0);
      for (const r of routes) expect(doc.paths[r.template]).toBeDefined();
      // Valid under @readme/openapi-parser and Redocly's recommended rules (what `redocly lint` runs).
      expect(await openApiProblems(doc)).toEqual([]);
      for (const p of ["/healthz", "/readyz", "/openapi.json"]) expect(doc.paths[p]).toBeDefined();
    });

    it("ran its migrations into its own schema, and `migrate` is idempotent", async () => {
      const child = spawn(process.execPath, [opts.mainJs, "migrate"], {
        env: { PATH: process.env.PATH ?? "", ...env.vars({ LOG_LEVEL: "info" }) },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      const code = await new Promise<number | null>((r) => child.once("exit", r));
      expect(code).toBe(0);
      expect(out).toMatch(/migrations up to date/);
    });

    it("drains on SIGTERM: not ready but serving for SHUTDOWN_DRAIN_MS, then the port closes, an in-flight request completes, exit code 0", async () => {
      const key = generateActorKey();
      const body = Buffer.from(JSON.stringify({ note: "in flight during SIGTERM" }));
      const sig = signRequest({ key, method: "POST", url: `${base}/v1/system/whoami`, body });
      const watch = watchHealth(client, "");
      expect(await watch.next()).toBe(HealthCheckResponse_ServingStatus.SERVING);
      // Send the headers and half the body, so the request is in flight when the signal lands.
      const req = request(`${base}/v1/system/whoami`, {
        method: "POST",
        headers: { ...sig, "content-type": "application/json", "content-length": body.length },
      });
      const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
        req.on("response", (res) => {
          let text = "";
          res.on("data", (d: Buffer) => (text += d.toString()));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
        });
        req.on("error", reject);
      });
      req.write(body.subarray(0, 10));
      await new Promise((r) => setTimeout(r, 300));
      const signalled = Date.now();
      svc.kill("SIGTERM");
      // Watch tells at once; /readyz and Check agree; everything else is still served, on new connections too.
      expect(await watch.next()).toBe(HealthCheckResponse_ServingStatus.NOT_SERVING);
      expect(Date.now() - signalled).toBeLessThan(DRAIN_MS);
      const ready = await fetch(`${base}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toEqual({ status: "not ready", checks: { server: "draining" } });
      const fresh = new grpc.Client(`127.0.0.1:${svc.port}`, grpc.credentials.createInsecure());
      try {
        const h = await grpcUnary(
          fresh,
          "/grpc.health.v1.Health/Check",
          HealthCheckRequestSchema,
          HealthCheckResponseSchema,
          create(HealthCheckRequestSchema),
        );
        expect(h.status).toBe(HealthCheckResponse_ServingStatus.NOT_SERVING);
        const info = await grpcUnary(
          fresh,
          "/deai.system.v1.SystemService/GetInfo",
          GetInfoRequestSchema,
          GetInfoResponseSchema,
          create(GetInfoRequestSchema),
        );
        expect(info.service).toBe(opts.name);
      } finally {
        fresh.close();
      }
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      expect(Date.now() - signalled).toBeLessThan(DRAIN_MS);
      // After the drain delay the port closes, while the request in flight is still being served.
      let closedAt = 0;
      while (closedAt === 0 && Date.now() - signalled < DRAIN_MS + 5000) {
        await fetch(`${base}/healthz`).then(
          () => new Promise((r) => setTimeout(r, 50)),
          () => (closedAt = Date.now()),
        );
      }
      expect(closedAt - signalled).toBeGreaterThanOrEqual(DRAIN_MS);
      expect(svc.proc.exitCode).toBeNull();
      req.end(body.subarray(10));
      const res = await response;
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body)).toEqual({ actor: key.id, note: "in flight during SIGTERM" });
      expect(await watch.ended).toBe(true);
      expect(await svc.exited).toBe(0);
      expect(svc.logs).toEqual(expect.arrayContaining([expect.objectContaining({ msg: "stopped", drained: true })]));
      // Every plain HTTP route it answered during these tests is in /openapi.json (the server logs those that are not).
      expect(svc.logs.filter((l) => String((l as { msg?: unknown }).msg).includes("does not document"))).toEqual([]);
    });
  });
}
