/**
 * One server, one port: gRPC (HTTP/2, stock grpc-js clients), Connect and gRPC-Web, and
 * REST/JSON over HTTP/1.1 or HTTP/2 (curl) from the same contracts, with OpenAPI at
 * /openapi.json, liveness at /healthz, readiness at /readyz and grpc.health.v1 (one answer,
 * health.ts), and gRPC server reflection (reflection.ts).
 *
 * Cleartext HTTP/2 (h2c) and HTTP/1.1 share the port: the first bytes of a connection
 * tell them apart (an HTTP/2 client opens with the "PRI * HTTP/2.0" preface).
 */
import { createServer as createHttp1Server, type Server as Http1Server } from "node:http";
import { createServer as createHttp2Server, type Http2Server, type Http2Session } from "node:http2";
import { Duplex } from "node:stream";
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from "node:net";

import { ConnectError, createContextValues, type ConnectRouter } from "@connectrpc/connect";

import { Health } from "@deai/contracts/grpc/health/v1/health_pb";

import type { Logger } from "../logger.js";
import { authorityKey, requestAuthority, type SigningPolicy } from "./auth.js";
import { ConnectionGuard, resolveLimits, type Connection, type ConnectionLimits } from "./connections.js";
import { errorInterceptor, signingInterceptor, stringCheckInterceptor, tracingInterceptor } from "./interceptors.js";
import { HealthState, type Readiness } from "./health.js";
import { reflectionBindings } from "./reflection.js";
import { rpcHandler } from "./rpc-handler.js";
import { tracedHttpRoute } from "./http-routes.js";
import { prometheusText } from "../telemetry.js";
import { restRoutes } from "./http-rules.js";
import { documents, openApiDocument, type HttpRouteDoc } from "./openapi.js";
import { RestGateway, sendError, type NodeRequest, type NodeResponse } from "./rest-gateway.js";
import type { ServiceBinding } from "./service-binding.js";

/** A duplex over `socket` that first yields `head`: bytes already read while sniffing the protocol. */
function replaying(socket: Socket, head: Buffer): Duplex {
  const d = new Duplex({
    read: () => void socket.resume(),
    write: (chunk: Buffer, _enc, cb) => void socket.write(chunk, cb),
    final: (cb) => void socket.end(cb),
    destroy: (err, cb) => {
      socket.destroy(err ?? undefined);
      cb(err);
    },
  });
  d.push(head);
  socket.on("data", (c: Buffer) => {
    if (!d.push(c)) socket.pause();
  });
  socket.once("end", () => d.push(null));
  socket.once("close", () => d.destroy());
  socket.once("error", (e) => d.destroy(e));
  Object.defineProperties(d, {
    remoteAddress: { get: () => socket.remoteAddress },
    remotePort: { get: () => socket.remotePort },
    localAddress: { get: () => socket.localAddress },
    localPort: { get: () => socket.localPort },
    remoteFamily: { get: () => socket.remoteFamily },
  });
  Object.assign(d, {
    setTimeout: (ms: number, cb?: () => void) => (socket.setTimeout(ms, cb), d),
    setNoDelay: (v?: boolean) => (socket.setNoDelay(v), d),
    setKeepAlive: (e?: boolean, ms?: number) => (socket.setKeepAlive(e, ms), d),
  });
  return d;
}

export type { Readiness } from "./health.js";

export interface ServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  bindings: readonly ServiceBinding[];
  logger: Logger;
  signing: SigningPolicy;
  /** Dependency checks behind /readyz and grpc.health.v1. */
  readiness: () => Promise<Readiness>;
  title: string;
  version: string;
  /** Plain HTTP routes outside the contracts (e.g. C2SP tlog-tiles); return true when handled. */
  http?: (req: NodeRequest, res: NodeResponse) => Promise<boolean>;
  /**
   * OpenAPI operations of the `http` routes (every route it serves must be here; a test checks).
   * A request one covers is traced as `{method} {path}` with `http.route` = its path template,
   * and counted in `http.server.request.duration`.
   */
  httpDocs?: readonly HttpRouteDoc[];
  /** Serve `/metrics` (Prometheus text of this process's meter provider). @default true */
  metrics?: boolean;
  /**
   * Largest request body (REST) or message (gRPC) accepted.
   * @default 4 MiB
   */
  maxBodyBytes?: number;
  /** Timeouts and connection caps; see connections.ts for the rules and their defaults. */
  limits?: ConnectionLimits;
  /**
   * The authorities (host[:port], as clients put them in the URL) under which clients reach
   * this service; a signed request must have been signed for one of them.
   * @default the loopback names with the bound port
   */
  authorities?: readonly string[];
}

export class Server {
  private readonly net: NetServer;
  private readonly h1: Http1Server;
  private readonly h2: Http2Server;
  private readonly guard: ConnectionGuard;
  /** The connection being handed to the HTTP/2 server right now. */
  private connecting: Connection | undefined;
  private readonly rpcPaths = new Set<string>();
  private loopback: string[] | undefined;
  private readonly sessions = new Set<Http2Session>();
  private inflight = 0;
  private idleWaiters: (() => void)[] = [];
  private draining = false;
  readonly gateway: RestGateway;
  /** Readiness, grpc.health.v1 and its Watch streams. */
  readonly health: HealthState;
  /** The OpenAPI document served at /openapi.json. */
  readonly document: Record<string, unknown>;
  /** App HTTP requests answered (not 404/405) that no documented route covers; the OpenAPI tests require none. */
  readonly undocumented = new Set<string>();

  constructor(private readonly opts: ServerOptions) {
    const maxBodyBytes = opts.maxBodyBytes ?? 4 * 1024 * 1024;
    const reflection = reflectionBindings([...opts.bindings.map((b) => b.service), Health]);
    this.health = new HealthState({
      services: [...opts.bindings, ...reflection].map((b) => b.service.typeName),
      readiness: opts.readiness,
    });
    const bindings = [...opts.bindings, this.health.binding(), ...reflection];
    for (const b of opts.bindings) {
      for (const m of b.service.methods) {
        if (m.methodKind === "unary" && !this.hasRestRule(b, m.name)) {
          throw new Error(
            `${b.service.typeName}/${m.name} has no google.api.http rule: every unary RPC must declare one (it decides REST mapping and signing)`,
          );
        }
      }
    }
    const signing: SigningPolicy = { ...opts.signing, authorities: () => this.authorities };
    this.gateway = new RestGateway(bindings, { signing, logger: opts.logger, maxBodyBytes });
    this.document = openApiDocument({
      title: opts.title,
      version: opts.version,
      routes: this.gateway.allRoutes,
      http: opts.httpDocs ?? [],
    });
    const openapi = JSON.stringify(this.document);
    for (const b of bindings) for (const m of b.service.methods) this.rpcPaths.add(`/${b.service.typeName}/${m.name}`);
    const connect = rpcHandler({
      routes: (router: ConnectRouter) => {
        for (const b of bindings) router.service(b.service, b.impl);
      },
      interceptors: [tracingInterceptor(), errorInterceptor(opts.logger), stringCheckInterceptor(), signingInterceptor(signing)],
      readMaxBytes: maxBodyBytes,
      logger: opts.logger,
      contextValues: (req) => createContextValues().set(authorityKey, requestAuthority(req)),
      fallback: (_req, res) => sendError(res, new ConnectError("no such route", 5)),
    });
    const limits = resolveLimits(opts.limits);
    this.guard = new ConnectionGuard(limits, (c, why) =>
      opts.logger.debug({ remote: c.address, protocol: c.protocol, why }, "connection closed by limits"),
    );
    const handle = (req: NodeRequest, res: NodeResponse): void => {
      this.inflight++;
      const conn = this.guard.of("stream" in req ? req.stream.session : req.socket);
      const end = conn?.begin("stream" in req ? req.stream : req);
      res.once("close", () => {
        end?.();
        if (--this.inflight === 0) for (const w of this.idleWaiters.splice(0)) w();
      });
      if (this.draining && "shouldKeepAlive" in res) res.setHeader("connection", "close");
      void this.route(req, res, openapi, connect).catch((e: unknown) => {
        opts.logger.error({ err: e }, "request failed");
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    };
    // The HTTP/1.1 server is fed sockets through emit("connection") and never listens itself,
    // so its header-timeout checker has to be started by hand ("listening" starts it).
    this.h1 = createHttp1Server(
      {
        headersTimeout: limits.headersTimeoutMs,
        // The whole-request limit would cut long uploads; slow bodies are the guard's job.
        requestTimeout: 0,
        keepAliveTimeout: limits.idleTimeoutMs,
        connectionsCheckingInterval: Math.max(20, Math.min(1000, Math.floor(limits.headersTimeoutMs / 4))),
      },
      handle,
    );
    this.h1.emit("listening");
    this.h2 = createHttp2Server({ settings: { maxConcurrentStreams: limits.maxStreamsPerSession } }, handle);
    this.h2.on("session", (s: Http2Session) => {
      // http2 creates the session inside emit("connection"), synchronously.
      const conn = this.connecting;
      if (conn) {
        this.guard.alias(s, conn);
        conn.close = () => s.destroy();
      }
      this.sessions.add(s);
      s.once("close", () => this.sessions.delete(s));
      if (this.draining) s.close();
    });
    this.net = createNetServer((socket) => {
      // Until a protocol owns the socket, nobody else handles its errors: a reset here must
      // not crash the process. A connection that never speaks is closed by the guard.
      const onError = (): void => void socket.destroy();
      socket.on("error", onError);
      const conn = this.guard.admit(socket);
      if (!conn) {
        socket.destroy();
        return;
      }
      let head = Buffer.alloc(0);
      const onData = (chunk: Buffer): void => {
        head = Buffer.concat([head, chunk]);
        if (head.length < 3 && "PRI".startsWith(head.toString("latin1"))) return;
        socket.off("data", onData);
        socket.off("error", onError);
        socket.pause();
        if (head.subarray(0, 3).toString("latin1") === "PRI") {
          // http2 reads straight from the socket's native handle, which would skip the bytes
          // already read here; give it a stream that replays them first.
          conn.protocol = "h2";
          const d = replaying(socket, head);
          this.connecting = conn;
          try {
            this.h2.emit("connection", d);
          } finally {
            this.connecting = undefined;
          }
        } else {
          conn.protocol = "h1";
          socket.unshift(head);
          this.h1.emit("connection", socket);
          socket.resume();
        }
      };
      socket.on("data", onData);
    });
  }

  private async route(
    req: NodeRequest,
    res: NodeResponse,
    openapi: string,
    connect: (req: NodeRequest, res: NodeResponse) => void,
  ): Promise<void> {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    // A request signed for another service is refused here, before any route (the app's own
    // HTTP routes included) can verify it; RPCs get the same check, in their protocol, from
    // the signing interceptor.
    if (req.headers["signature-input"] !== undefined && !this.rpcPaths.has(path)) {
      const authority = requestAuthority(req);
      if (!this.authorities.includes(authority)) {
        sendError(res, new ConnectError(`request is addressed to ${JSON.stringify(authority)}, not to this service`, 16));
        return;
      }
    }
    if (req.method === "GET" && path === "/healthz") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ status: "ok" }));
      return;
    }
    if (req.method === "GET" && path === "/readyz") {
      const r = await this.health.readiness();
      res.writeHead(r.ready ? 200 : 503, { "content-type": "application/json" });
      res.end(JSON.stringify({ status: r.ready ? "ready" : "not ready", checks: r.checks }));
      return;
    }
    if (req.method === "GET" && path === "/openapi.json") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(openapi);
      return;
    }
    if (req.method === "GET" && path === "/metrics" && this.opts.metrics !== false) {
      const text = await prometheusText();
      if (text === undefined) sendError(res, new ConnectError("metrics are not enabled in this process", 5));
      else {
        res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
        res.end(text);
      }
      return;
    }
    if (this.opts.http) {
      // The documented route is also the span's http.route; one answered without documentation is a
      // defect the OpenAPI test reports.
      const doc = (this.opts.httpDocs ?? []).find((d) => documents(d, req.method ?? "", path));
      const handled = doc ? await tracedHttpRoute(req, res, path, doc.path, this.opts.http) : await this.opts.http(req, res);
      if (handled) {
        const answered = res.statusCode !== 404 && res.statusCode !== 405;
        // CORS preflights of contract routes are documented there.
        const preflight = req.method === "OPTIONS" && this.gateway.allRoutes.some((r) => r.pattern.test(path));
        if (answered && !doc && !preflight) {
          this.undocumented.add(`${req.method} ${path}`);
          this.opts.logger.warn({ method: req.method, path }, "served an HTTP route that /openapi.json does not document");
        }
        return;
      }
    }
    if (await this.gateway.handle(req, res)) return;
    connect(req, res);
  }

  private hasRestRule(b: ServiceBinding, method: string): boolean {
    return restRoutes(b.service).some((r) => r.method.name === method);
  }

  /**
   * The authorities this service answers to: the configured ones, or else the loopback names
   * with the bound port (enough for tests and local runs; a deployed service must configure
   * its public names, or no signed request reaches it).
   */
  get authorities(): readonly string[] {
    if (this.opts.authorities && this.opts.authorities.length > 0) return this.opts.authorities.map((a) => a.toLowerCase());
    this.loopback ??= [`127.0.0.1:${this.port}`, `localhost:${this.port}`, `[::1]:${this.port}`];
    return this.loopback;
  }

  /** Starts listening; resolves with the bound port. */
  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.net.once("error", reject);
      this.net.listen(this.opts.port, this.opts.host, () => resolve());
    });
    return (this.net.address() as AddressInfo).port;
  }

  get port(): number {
    return (this.net.address() as AddressInfo).port;
  }

  /** Requests being served right now. */
  get inFlight(): number {
    return this.inflight;
  }

  /**
   * First step of a graceful stop: not ready from now on (/readyz 503, grpc.health.v1
   * NOT_SERVING, sent to every Watch stream) while everything else is still served, so load
   * balancers take this replica out before its port closes.
   */
  beginDrain(): void {
    this.health.setDraining();
  }

  /**
   * Graceful stop: refuse new connections, let in-flight calls finish (HTTP/2 GOAWAY,
   * HTTP/1.1 `Connection: close`), then close. Resolves true when everything drained
   * before `deadline`; false when the remaining connections had to be destroyed. `deadline` is
   * wall time (Date.now() ms): the drain bounds a process's exit, not domain time, so it does
   * not follow a service's (possibly manual) Clock.
   */
  async drain(deadline: number): Promise<boolean> {
    this.health.setDraining();
    this.health.close();
    this.draining = true;
    const closed = new Promise<void>((resolve) => this.net.close(() => resolve()));
    for (const s of this.sessions) s.close();
    this.h1.closeIdleConnections();
    const idle = this.inflight === 0 ? Promise.resolve() : new Promise<void>((r) => this.idleWaiters.push(r));
    const timeout = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), Math.max(0, deadline - Date.now())).unref());
    const result = await Promise.race([idle.then(() => "idle" as const), timeout]);
    this.h1.closeIdleConnections();
    for (const s of this.sessions) s.close();
    if (result === "timeout") {
      for (const c of this.guard.connections) c.socket.destroy();
    } else {
      // Give closing sessions a moment to flush their final frames.
      const sockets = [...this.guard.connections].map((c) => c.socket);
      const flushed = Promise.all(sockets.map((s) => new Promise<void>((r) => (s.destroyed ? r() : s.once("close", () => r())))));
      await Promise.race([flushed, new Promise<void>((r) => setTimeout(r, Math.max(0, Math.min(1000, deadline - Date.now()))).unref())]);
      for (const c of this.guard.connections) c.socket.destroy();
    }
    await closed;
    this.guard.stop();
    // Stops the HTTP/1.1 header-timeout checker started by hand (it was never listening).
    this.h1.close(() => undefined);
    return result === "idle";
  }
}
