/**
 * The abuse suite every service's integration tests run against its own contract: hostile
 * payloads and signatures for every RPC of every binding (grpc.health.v1 and
 * deai.system.v1 included), slow clients and connection exhaustion. For each group it
 * checks: no fault answers, the precise refusal, no state change, the process alive, and
 * (over the whole run) valid clients served throughout.
 */
import type { DescMethod, DescService, JsonObject } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";

import { Health } from "@deai/contracts/grpc/health/v1/health_pb";
import { SystemService } from "@deai/contracts/deai/system/v1/system_pb";
import { authorityOf, generateActorKey, type ActorKey } from "@deai/kit";

import { describeOutcome, judge, type AbuseCase, type CaseKind, type Wire } from "./abuse-case.js";
import { methodTargets, signerOf, type MethodTarget } from "./method-requests.js";
import { oversizedCases, payloadCases } from "./payload-cases.js";
import { replayCases, signingCases } from "./signing-variants.js";
import { runSlowClients, type SlowClientKind } from "./slow-clients.js";
import { ABUSE_SERVER_LIMITS } from "./server-limits.js";
import { changedTables, type StateSnapshot } from "./state-snapshot.js";
import { startValidTraffic, validGet, validGrpcHealth, type ValidRequest } from "./valid-traffic.js";

/** A running service under abuse. */
export interface AbuseTarget {
  /** e.g. http://127.0.0.1:PORT (gRPC, Connect and REST on one port). */
  readonly baseUrl: string;
  /** False once the process exited. */
  alive(): boolean;
  /** The service's durable state; compared before and after each group. See postgresSnapshot. */
  snapshot(): Promise<StateSnapshot>;
  /**
   * Error-level log lines so far, when the target can see its logs: bad input must not reach
   * the error log (a client could flood it), so each group checks that none were added.
   */
  errorLogs?(): readonly string[];
  stop(): Promise<void>;
}

export interface SlowClientLimits {
  /** Each stalled connection must be closed within this many ms. */
  readonly boundMs: number;
  /** The connection cap the service was started with; the idle-socket test opens this many plus 20. */
  readonly maxConnections: number;
  /** One byte every this many ms for the dripping clients. @default 200 */
  readonly dripMs?: number;
  /** Slow clients of each dripping kind held open at once. @default 20 */
  readonly count?: number;
}

export interface AbuseSuiteOptions {
  /** The service name, for the describe block. */
  readonly name: string;
  /** The service's own contracts; deai.system.v1 and grpc.health.v1 are added. */
  readonly services: readonly DescService[];
  /** Starts the service (with small server limits, see `slowClients`). */
  start(): Promise<AbuseTarget>;
  /** Known-good requests that must succeed throughout; /healthz, gRPC health and GetInfo are always included. */
  readonly validRequests?: readonly ValidRequest[];
  /**
   * Base messages (proto3 JSON) per method, keyed `package.Service/Method` or `Method`:
   * a hostile value is planted into a copy, so it is the only thing wrong. Default: empty.
   * A function is called after `start()`, for seeds that name what start created.
   */
  readonly seeds?: Readonly<Record<string, JsonObject>> | (() => Readonly<Record<string, JsonObject>>);
  /** Methods whose handler is not built yet: UNIMPLEMENTED is their answer to valid-looking input. */
  readonly unimplemented?: (method: DescMethod) => boolean;
  /** The service's body limit. @default 4 MiB */
  readonly maxBodyBytes?: number;
  /** What the slow-client tests expect; must match the limits the service was started with. @default ABUSE_SERVER_LIMITS.slowClients */
  readonly slowClients?: SlowClientLimits;
  /** Service-specific cases (e.g. a NUL inside a DSSE statement), judged like the generated ones. */
  readonly extraCases?: (key: ActorKey) => readonly AbuseCase[];
}

const CONCURRENCY = 6;

// The kit serves grpc.health.v1 Check only; Watch answers UNIMPLEMENTED in every service.
const kitUnimplemented = (m: DescMethod): boolean => m.parent.typeName === Health.typeName && m.name === "Watch";

async function pool<T, R>(items: readonly T[], n: number, f: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      for (let i = next++; i < items.length; i = next++) out[i] = await f(items[i]!);
    }),
  );
  return out;
}

/** Runs `cases`: one line per wrong answer, and the cases that were accepted (suspects when state changed). */
async function runCases(
  wire: Wire,
  cases: readonly AbuseCase[],
  unimplemented: (m: DescMethod) => boolean,
): Promise<{ wrong: string[]; accepted: string[] }> {
  const verdicts = await pool(cases, CONCURRENCY, async (c) => {
    const o = await c.send(wire);
    const why = judge(c, o, unimplemented(c.method));
    const ok = o.code === 0 || (o.code === undefined && o.status !== undefined && o.status < 300);
    return { wrong: why ? `${c.label} → ${describeOutcome(o)}: ${why}` : undefined, accepted: ok && !why ? c.label : undefined };
  });
  return {
    wrong: verdicts.flatMap((v) => (v.wrong ? [v.wrong] : [])),
    accepted: verdicts.flatMap((v) => (v.accepted ? [v.accepted] : [])),
  };
}

const stats: string[] = [];

function buildCases(
  services: readonly DescService[],
  seeds: Readonly<Record<string, JsonObject>>,
  key: ActorKey,
  authority: string,
  maxBodyBytes: number,
) {
  const targets = methodTargets(services, seeds);
  const payloadOpts = { sign: signerOf({ key, authority }), maxBodyBytes };
  const firstOfBinding = new Set(services.map((s) => targets.find((t) => t.service === s && t.kind === "unary")));
  return {
    payload: targets.flatMap((t) => payloadCases(t, payloadOpts)),
    oversized: targets.flatMap((t) => oversizedCases(t, payloadOpts, firstOfBinding.has(t))),
    signing: targets.flatMap((t) => signingCases(t, key, authority)),
    replays: targets.flatMap((t) => replayCases(t, key, authority)),
  };
}

/** Declares the abuse suite for one service (a jest describe block). */
export function runAbuseSuite(opts: AbuseSuiteOptions): void {
  const services = [...opts.services, SystemService, Health];
  const key = generateActorKey();
  const maxBodyBytes = opts.maxBodyBytes ?? 4 * 1024 * 1024;
  const unimplemented = (m: DescMethod): boolean => opts.unimplemented?.(m) === true || kitUnimplemented(m);
  describe(`${opts.name} abuse suite`, () => {
    let target: AbuseTarget;
    let wire: Wire;
    let traffic: ReturnType<typeof startValidTraffic>;
    // Built after start(): seeds may name what start created, and signatures name its authority.
    let built: ReturnType<typeof buildCases> | undefined;
    const all = (): ReturnType<typeof buildCases> =>
      (built ??= buildCases(
        services,
        typeof opts.seeds === "function" ? opts.seeds() : (opts.seeds ?? {}),
        key,
        authorityOf(target.baseUrl),
        maxBodyBytes,
      ));

    beforeAll(async () => {
      target = await opts.start();
      wire = { baseUrl: target.baseUrl, grpc: new grpc.Client(new URL(target.baseUrl).host, grpc.credentials.createInsecure()) };
      const valid = [validGet("/healthz"), validGrpcHealth(), validGet("/v1/system/info"), ...(opts.validRequests ?? [])];
      traffic = startValidTraffic(target.baseUrl, valid);
    }, 60_000);

    afterAll(async () => {
      await traffic?.stop();
      wire?.grpc.close();
      await target?.stop();
      process.stdout.write(`${opts.name} abuse suite:\n${stats.map((s) => `  ${s}\n`).join("")}`);
      stats.length = 0;
    }, 30_000);

    /** Runs a group and asserts: no wrong answer, no state change, still alive. */
    const group = (title: string, selected: () => readonly AbuseCase[], timeoutMs = 60_000): void => {
      it(
        title,
        async () => {
          const list = selected();
          // A contract can lack what a group abuses (no integer fields); say so, do not fail.
          if (list.length === 0) return void stats.push(`${title}: no cases for this contract`);
          const before = await target.snapshot();
          const t0 = Date.now();
          const logged = target.errorLogs?.().length ?? 0;
          const { wrong, accepted } = await runCases(wire, list, unimplemented);
          const errorLogs = target.errorLogs?.().slice(logged) ?? [];
          stats.push(`${title}: ${list.length} cases in ${Date.now() - t0} ms, ${wrong.length} wrong`);
          const changed = changedTables(before, await target.snapshot());
          // When state changed, the accepted cases are the ones that can have changed it.
          const suspects = changed.length > 0 ? accepted : [];
          expect({
            wrongAnswers: wrong,
            changedTables: changed,
            acceptedWhileStateChanged: suspects,
            errorLogs: errorLogs.slice(0, 10),
            alive: target.alive(),
          }).toEqual({ wrongAnswers: [], changedTables: [], acceptedWhileStateChanged: [], errorLogs: [], alive: true });
        },
        timeoutMs,
      );
    };
    const ofKind =
      (...kinds: CaseKind[]) =>
      () =>
        all().payload.filter((c) => kinds.includes(c.kind));

    group("undecodable protobuf over gRPC, Connect and gRPC-Web", ofKind("undecodable-protobuf"));
    group("malformed JSON and wrong JSON types over REST and Connect JSON", ofKind("malformed-json", "wrong-json-type"));
    group("NUL and lone surrogates in every string field, path and query parameter", ofKind("nul", "lone-surrogate"));
    group(
      "integers out of range, non-canonical integers in path and query, repeated query parameters",
      ofKind("int-out-of-range", "non-canonical-int", "repeated-query"),
    );
    group("1 MiB strings in every string field: no fault, no state change", ofKind("huge-string"));
    group("bodies above the limit: declared, chunked, gRPC and Connect messages", () => all().oversized);
    group("unsigned, badly signed, expired and misdirected requests to every signed method", () => all().signing);
    if (opts.extraCases) group("service-specific cases", () => opts.extraCases!(key));

    it("refuses a replayed signature (same nonce twice) on every signed method", async () => {
      const wrong: string[] = [];
      const replays = all().replays;
      for (const r of replays) {
        const first = await r.send(wire);
        const firstWhy = judge(
          { label: r.label, method: r.target.method, kind: "signature", expect: "no-fault", send: (w) => r.send(w) },
          first,
          unimplemented(r.target.method),
        );
        if (firstWhy) wrong.push(`${r.label} (first) → ${describeOutcome(first)}: ${firstWhy}`);
        const before = await target.snapshot();
        const second = await r.send(wire);
        const why = judge(
          { label: r.label, method: r.target.method, kind: "signature", expect: "unauthenticated", send: (w) => r.send(w) },
          second,
          false,
        );
        if (why) wrong.push(`${r.label} (replay) → ${describeOutcome(second)}: ${why}`);
        const changed = changedTables(before, await target.snapshot());
        if (changed.length > 0) wrong.push(`${r.label} (replay) changed ${changed.join(", ")}`);
      }
      stats.push(`replays: ${replays.length} pairs, ${wrong.length} wrong`);
      expect({ wrongAnswers: wrong, alive: target.alive() }).toEqual({ wrongAnswers: [], alive: true });
    }, 60_000);

    const limits = opts.slowClients ?? ABUSE_SERVER_LIMITS.slowClients;
    const slow = (kind: SlowClientKind, title: string, count: number): void => {
      it(
        title,
        async () => {
          const r = await runSlowClients(target.baseUrl, kind, {
            count,
            boundMs: limits.boundMs,
            dripMs: limits.dripMs ?? 200,
            freshWithinMs: 2_000,
          });
          const open = r.openMs.filter((ms) => ms > limits.boundMs).length;
          stats.push(
            `${kind}: ${r.opened} sockets, longest open ${Math.max(...r.openMs)} ms, ${open} past ${limits.boundMs} ms, fresh /healthz ${r.freshHealthz.ok ? `in ${r.freshHealthz.ms} ms` : `failed (${r.freshHealthz.detail})`}`,
          );
          expect({ openPastBound: open, freshHealthz: r.freshHealthz.ok, alive: target.alive() }).toEqual({
            openPastBound: 0,
            freshHealthz: true,
            alive: true,
          });
        },
        limits.boundMs + 15_000,
      );
    };
    const count = limits.count ?? 20;
    slow("h2-preface-then-silence", "closes HTTP/2 connections that send the preface then nothing", count);
    slow("h1-headers-byte-by-byte", "closes HTTP/1.1 connections whose headers arrive one byte at a time", count);
    slow("slow-post-body", "closes connections whose POST body arrives one byte at a time", count);
    slow("idle-socket", "closes idle sockets beyond the connection cap and still answers a fresh client", limits.maxConnections + 20);

    it("served valid clients throughout and is still alive", async () => {
      const report = await traffic.stop();
      stats.push(`valid traffic: ${report.ok} requests ok, ${report.failures.length} failed, slowest ${report.slowestMs} ms`);
      expect({ failures: report.failures, alive: target.alive() }).toEqual({ failures: [], alive: true });
      expect(report.ok).toBeGreaterThan(0);
    });
  });
}

export type { MethodTarget };
