/**
 * Valid clients served throughout: a background loop of known-good requests (liveness,
 * gRPC health, the system contract and the service's own reads) that must keep succeeding,
 * each within a deadline, while the abuse runs.
 */
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";

import { HealthCheckRequestSchema, HealthCheckResponseSchema } from "@deai/contracts/grpc/health/v1/health_pb";

import { grpcUnary } from "../service-conformance.js";
import { sendHttp } from "./transports.js";

/** One known-good request; throws when the answer is wrong. */
export interface ValidRequest {
  readonly name: string;
  run(baseUrl: string): Promise<void>;
}

/** A GET that must answer `status` (default 200), on a new connection each time (a fresh client). */
export function validGet(path: string, status = 200): ValidRequest {
  return {
    name: `GET ${path}`,
    run: async (baseUrl) => {
      const a = await sendHttp(baseUrl, { method: "GET", target: path, headersOnly: false, fresh: true });
      if (a.broken) throw new Error(a.broken);
      if (a.status !== status) throw new Error(`HTTP ${a.status}`);
    },
  };
}

/** gRPC health over its own HTTP/2 connection. */
export function validGrpcHealth(): ValidRequest {
  return {
    name: "grpc.health.v1.Health/Check",
    run: async (baseUrl) => {
      const client = new grpc.Client(new URL(baseUrl).host, grpc.credentials.createInsecure());
      try {
        await Promise.race([
          grpcUnary(
            client,
            "/grpc.health.v1.Health/Check",
            HealthCheckRequestSchema,
            HealthCheckResponseSchema,
            create(HealthCheckRequestSchema),
          ),
          new Promise((_, reject) => setTimeout(() => reject(new Error("no answer within 5 s")), 5000).unref()),
        ]);
      } finally {
        client.close();
      }
    },
  };
}

export interface TrafficReport {
  readonly ok: number;
  readonly failures: readonly string[];
  readonly slowestMs: number;
}

/** Runs `requests` round-robin until stopped; every failure is kept with its time. */
export function startValidTraffic(baseUrl: string, requests: readonly ValidRequest[], pauseMs = 20): { stop(): Promise<TrafficReport> } {
  let running = true;
  let ok = 0;
  let slowestMs = 0;
  const failures: string[] = [];
  const started = Date.now();
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const r = requests[i % requests.length]!;
      const t0 = Date.now();
      try {
        await r.run(baseUrl);
        ok++;
      } catch (e) {
        failures.push(`${r.name} at +${t0 - started} ms: ${(e as Error).message}`);
      }
      slowestMs = Math.max(slowestMs, Date.now() - t0);
      await new Promise((res) => setTimeout(res, pauseMs));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return { ok, failures, slowestMs };
    },
  };
}
