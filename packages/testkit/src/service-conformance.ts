/**
 * What every DeAI OS service process must do, checked against the built binary with real
 * Postgres, NATS and S3: start, migrate, answer curl and a stock grpc-js client, serve its
 * contract, and drain on SIGTERM.
 */
import { execFile, spawn } from "node:child_process";
import { request } from "node:http";
import { promisify } from "node:util";

import { create, fromBinary, toBinary, type DescMessage, type DescService, type MessageShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";

import {
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus,
} from "@deai/contracts/grpc/health/v1/health_pb";
import { GetInfoRequestSchema, GetInfoResponseSchema } from "@deai/contracts/deai/system/v1/system_pb";
import { generateActorKey, restRoutes, signRequest } from "@deai/kit";

import { createTestEnv, type TestEnv } from "./env.js";
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

export function describeServiceProcess(opts: { name: string; mainJs: string; service: DescService }): void {
  describe(`${opts.name} service process`, () => {
    let env: TestEnv;
    let svc: ServiceProcess;
    let base: string;
    let client: grpc.Client;

    beforeAll(async () => {
      env = await createTestEnv(opts.name);
      svc = await spawnService(opts.mainJs, env.vars());
      base = `http://127.0.0.1:${svc.port}`;
      client = new grpc.Client(`127.0.0.1:${svc.port}`, grpc.credentials.createInsecure());
    });
    afterAll(async () => {
      client?.close();
      if (svc && svc.proc.exitCode === null) {
        svc.kill("SIGKILL");
        await svc.exited;
      }
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

    it("answers a stock grpc-js client: grpc.health.v1 and SystemService/GetInfo", async () => {
      const h = await grpcUnary(
        client,
        "/grpc.health.v1.Health/Check",
        HealthCheckRequestSchema,
        HealthCheckResponseSchema,
        create(HealthCheckRequestSchema),
      );
      expect(h.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
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

    it("answers curl on the REST form of GetInfo and serves its contract in /openapi.json", async () => {
      const info = JSON.parse((await run("curl", ["-sS", "-f", `${base}/v1/system/info`])).stdout) as { service: string };
      expect(info.service).toBe(opts.name);
      const doc = JSON.parse((await run("curl", ["-sS", "-f", `${base}/openapi.json`])).stdout) as { paths: Record<string, unknown> };
      const routes = restRoutes(opts.service);
      expect(routes.length).toBeGreaterThan(0);
      for (const r of routes) expect(doc.paths[r.template]).toBeDefined();
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

    it("drains on SIGTERM: an in-flight request completes, new connections are refused, exit code 0", async () => {
      const key = generateActorKey();
      const body = Buffer.from(JSON.stringify({ note: "in flight during SIGTERM" }));
      const sig = signRequest({ key, method: "POST", url: `${base}/v1/system/whoami`, body });
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
      svc.kill("SIGTERM");
      await new Promise((r) => setTimeout(r, 500));
      expect(svc.proc.exitCode).toBeNull();
      await expect(fetch(`${base}/healthz`)).rejects.toThrow();
      req.end(body.subarray(10));
      const res = await response;
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body)).toEqual({ actor: key.id, note: "in flight during SIGTERM" });
      expect(await svc.exited).toBe(0);
      expect(svc.logs).toEqual(expect.arrayContaining([expect.objectContaining({ msg: "stopped", drained: true })]));
    });
  });
}
