/**
 * The wire forms an abuse case is sent in, each with a stock client or raw HTTP so the
 * bytes are exactly the hostile ones: REST/JSON and Connect/gRPC-Web over HTTP/1.1
 * (node:http with raw paths; a raw socket for chunked bodies), gRPC over HTTP/2 with a stock @grpc/grpc-js
 * client whose serializer passes the bytes through untouched.
 */
import { Agent, request } from "node:http";
import { connect } from "node:net";

import * as grpc from "@grpc/grpc-js";

export type Transport = "rest" | "grpc" | "connect" | "connect-json" | "grpc-web";

/** What came back: an HTTP status and/or a gRPC code, or a connection-level failure. */
export interface Outcome {
  readonly transport: Transport;
  /** HTTP status (REST, Connect, gRPC-Web). */
  readonly status?: number;
  /** gRPC status code (0 = OK), from gRPC, gRPC-Web trailers or a Connect error body. */
  readonly code?: number;
  /** Set when no answer came: reset, refused, timeout. */
  readonly broken?: string;
  /** A short excerpt of the answer, for the report. */
  readonly detail: string;
}

export interface HttpRequestSpec {
  readonly method: string;
  /** Raw request target (path and query, already percent-encoded as it must go on the wire). */
  readonly target: string;
  readonly headers?: Record<string, string | number>;
  readonly body?: Uint8Array;
  /** Send the headers, then wait for the answer without sending the body. */
  readonly headersOnly?: boolean;
  /** A new connection, not one of the keep-alive pool's. */
  readonly fresh?: boolean;
}

export interface RawHttpAnswer {
  readonly status?: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
  readonly broken?: string;
}

const CASE_TIMEOUT_MS = 10_000;
const agent = new Agent({ keepAlive: true, maxSockets: 8 });

/**
 * One HTTP/1.1 exchange; never rejects (a broken connection is an answer too). A request sent
 * on a reused keep-alive socket that the server closed as idle just then (ECONNRESET with
 * `reusedSocket`, before any answer) never reached the service: it is sent once more on a new
 * connection, as Node's documentation advises, so the race is not mistaken for the service's answer.
 */
export async function sendHttp(baseUrl: string, spec: HttpRequestSpec): Promise<RawHttpAnswer> {
  const first = await sendHttpOnce(baseUrl, spec);
  if (first.reusedSocketReset) return sendHttpOnce(baseUrl, { ...spec, fresh: true });
  return first;
}

function sendHttpOnce(baseUrl: string, spec: HttpRequestSpec): Promise<RawHttpAnswer & { reusedSocketReset?: boolean }> {
  const url = new URL(baseUrl);
  return new Promise((resolve) => {
    let done = false;
    const finish = (a: RawHttpAnswer & { reusedSocketReset?: boolean }): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(a);
    };
    const req = request({
      host: url.hostname,
      port: url.port,
      method: spec.method,
      path: spec.target,
      headers: spec.headers,
      agent: spec.headersOnly || spec.fresh ? false : agent,
    });
    const timer = setTimeout(() => {
      finish({ headers: {}, body: Buffer.alloc(0), broken: `no answer within ${CASE_TIMEOUT_MS} ms` });
      req.destroy();
    }, CASE_TIMEOUT_MS);
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => finish({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", (e) =>
        finish({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), broken: `answer cut: ${e.message}` }),
      );
    });
    req.on("error", (e: NodeJS.ErrnoException) =>
      finish({
        headers: {},
        body: Buffer.alloc(0),
        broken: `connection error: ${e.code ?? e.message}`,
        ...(e.code === "ECONNRESET" && req.reusedSocket ? { reusedSocketReset: true } : {}),
      }),
    );
    if (spec.headersOnly) {
      req.flushHeaders();
      return;
    }
    req.end(spec.body ? Buffer.from(spec.body) : undefined);
  });
}

/**
 * A chunked body of `total` bytes over a raw socket, reading while writing: a server that
 * answers 413 and closes before the body ends has answered, even if the rest of the body
 * then meets a closed socket (node:http would report only the EPIPE).
 */
export function sendChunked(
  baseUrl: string,
  spec: { method: string; target: string; headers: Record<string, string | number>; total: number },
): Promise<Outcome> {
  const url = new URL(baseUrl);
  return new Promise((resolve) => {
    let got = Buffer.alloc(0);
    let done = false;
    const socket = connect({ host: url.hostname, port: Number(url.port) });
    const finish = (broken?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const m = /^HTTP\/1\.1 (\d{3})/.exec(got.toString("latin1"));
      const body = got.subarray(got.indexOf("\r\n\r\n") + 4);
      if (m) resolve({ transport: "rest", status: Number(m[1]), detail: excerpt(body) });
      else resolve({ transport: "rest", broken: broken ?? "connection closed without an answer", detail: "" });
    };
    const timer = setTimeout(() => finish(`no answer within ${CASE_TIMEOUT_MS} ms`), CASE_TIMEOUT_MS);
    socket.on("data", (c: Buffer) => {
      got = Buffer.concat([got, c]);
      // A complete answer (headers and a short body) ends the exchange.
      if (got.includes("\r\n\r\n")) setTimeout(() => finish(), 50);
    });
    socket.on("error", (e: NodeJS.ErrnoException) => finish(`connection error: ${e.code ?? e.message}`));
    socket.on("close", () => finish());
    socket.on("connect", () => {
      const head = Object.entries({ host: url.host, ...spec.headers, "transfer-encoding": "chunked" })
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join("");
      socket.write(`${spec.method} ${spec.target} HTTP/1.1\r\n${head}\r\n`);
      const piece = Buffer.alloc(64 * 1024, 0x61);
      const frame = Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from("\r\n")]);
      let left = spec.total;
      const pump = (): void => {
        while (left > 0 && !done && got.length === 0) {
          left -= piece.length;
          if (!socket.write(frame)) return void socket.once("drain", pump);
        }
        if (!done && got.length === 0) socket.write("0\r\n\r\n");
      };
      pump();
    });
  });
}

const excerpt = (b: Buffer): string => b.subarray(0, 200).toString("utf8").replace(/\s+/g, " ");

/** REST: the HTTP status is the answer. */
export async function sendRest(baseUrl: string, spec: HttpRequestSpec): Promise<Outcome> {
  const a = await sendHttp(baseUrl, spec);
  return { transport: "rest", status: a.status, broken: a.broken, detail: excerpt(a.body) };
}

const connectCodes: Record<string, number> = {
  canceled: 1,
  unknown: 2,
  invalid_argument: 3,
  deadline_exceeded: 4,
  not_found: 5,
  already_exists: 6,
  permission_denied: 7,
  resource_exhausted: 8,
  failed_precondition: 9,
  aborted: 10,
  out_of_range: 11,
  unimplemented: 12,
  internal: 13,
  unavailable: 14,
  data_loss: 15,
  unauthenticated: 16,
};

/** A 5-byte length-prefixed frame (gRPC-Web and Connect streaming). */
export function envelope(body: Uint8Array, flags = 0): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(flags, 0);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

function frames(b: Buffer): { flags: number; data: Buffer }[] {
  const out: { flags: number; data: Buffer }[] = [];
  for (let at = 0; at + 5 <= b.length;) {
    const len = b.readUInt32BE(at + 1);
    out.push({ flags: b.readUInt8(at), data: b.subarray(at + 5, at + 5 + len) });
    at += 5 + len;
  }
  return out;
}

/**
 * Connect: unary calls carry the raw message (application/proto or application/json) and
 * answer errors as `{"code": "..."}`; streaming calls use enveloped frames and end with an
 * end-stream frame holding the error.
 */
export async function sendConnect(
  baseUrl: string,
  path: string,
  o: { streaming: boolean; json: boolean; body: Uint8Array; headers?: Record<string, string> },
): Promise<Outcome> {
  const transport = o.json ? "connect-json" : "connect";
  const type = o.streaming ? `application/connect+${o.json ? "json" : "proto"}` : `application/${o.json ? "json" : "proto"}`;
  const body = o.streaming ? envelope(o.body) : Buffer.from(o.body);
  const a = await sendHttp(baseUrl, {
    method: "POST",
    target: path,
    headers: { "content-type": type, "connect-protocol-version": "1", "content-length": body.length, ...o.headers },
    body,
  });
  if (a.broken && a.status === undefined) return { transport, broken: a.broken, detail: "" };
  let code: number | undefined;
  let detail = excerpt(a.body);
  if (!o.streaming) {
    if (a.status === 200) code = 0;
    else code = errorCode(a.body);
  } else {
    const end = frames(a.body).find((f) => (f.flags & 0x02) !== 0);
    if (end) {
      detail = excerpt(end.data);
      const parsed = safeJson(end.data) as { error?: { code?: string } } | undefined;
      code = parsed?.error?.code ? (connectCodes[parsed.error.code] ?? 2) : 0;
    } else if (a.status !== 200) code = errorCode(a.body);
  }
  return { transport, status: a.status, code, broken: a.broken, detail };
}

function safeJson(b: Buffer): unknown {
  try {
    return JSON.parse(b.toString("utf8"));
  } catch {
    return undefined;
  }
}

function errorCode(body: Buffer): number | undefined {
  const parsed = safeJson(body) as { code?: string } | undefined;
  return parsed?.code ? connectCodes[parsed.code] : undefined;
}

/** gRPC-Web over HTTP/1.1: one data frame in, the status from headers (trailers-only) or the trailer frame. */
export async function sendGrpcWeb(baseUrl: string, path: string, body: Uint8Array, headers: Record<string, string> = {}): Promise<Outcome> {
  const framed = envelope(body);
  const a = await sendHttp(baseUrl, {
    method: "POST",
    target: path,
    headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1", "content-length": framed.length, ...headers },
    body: framed,
  });
  if (a.broken && a.status === undefined) return { transport: "grpc-web", broken: a.broken, detail: "" };
  let status = a.headers["grpc-status"] as string | undefined;
  let message = (a.headers["grpc-message"] as string | undefined) ?? "";
  const trailer = frames(a.body).find((f) => (f.flags & 0x80) !== 0);
  if (status === undefined && trailer) {
    const text = trailer.data.toString("latin1");
    status = /grpc-status:\s*(\d+)/i.exec(text)?.[1];
    message = /grpc-message:\s*([^\r\n]*)/i.exec(text)?.[1] ?? "";
  }
  return {
    transport: "grpc-web",
    status: a.status,
    code: status === undefined ? undefined : Number(status),
    broken: a.broken,
    detail: decodeURIComponentSafe(message) || excerpt(a.body),
  };
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export type GrpcMethodKind = "unary" | "server_streaming" | "client_streaming" | "bidi_streaming";

const passThrough = (b: Buffer): Buffer => b;

/**
 * gRPC with a stock grpc-js client and a pass-through serializer, so undecodable or
 * non-UTF-8 bytes reach the server as they are. A server stream that yields a message
 * counts as answered OK (and is cancelled: some, like health Watch, never end).
 */
export function sendGrpc(
  client: grpc.Client,
  path: string,
  kind: GrpcMethodKind,
  body: Uint8Array,
  metadata: Record<string, string> = {},
): Promise<Outcome> {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  const deadline = new Date(Date.now() + CASE_TIMEOUT_MS);
  const bytes = Buffer.from(body);
  return new Promise((resolve) => {
    const done = (code: number, detail: string): void => resolve({ transport: "grpc", code, detail });
    const onError = (err: grpc.ServiceError | null): void => (err ? done(err.code, err.details) : done(0, ""));
    if (kind === "unary") {
      client.makeUnaryRequest(path, passThrough, passThrough, bytes, md, { deadline }, onError);
    } else if (kind === "client_streaming") {
      const call = client.makeClientStreamRequest(path, passThrough, passThrough, md, { deadline }, onError);
      call.write(bytes);
      call.end();
    } else {
      const call =
        kind === "server_streaming"
          ? client.makeServerStreamRequest(path, passThrough, passThrough, bytes, md, { deadline })
          : client.makeBidiStreamRequest(path, passThrough, passThrough, md, { deadline });
      if (kind === "bidi_streaming") {
        (call as grpc.ClientDuplexStream<Buffer, Buffer>).write(bytes);
        (call as grpc.ClientDuplexStream<Buffer, Buffer>).end();
      }
      let answered = false;
      call.on("data", () => {
        if (answered) return;
        answered = true;
        done(0, "streamed a message");
        call.cancel();
      });
      call.on("error", (e: grpc.ServiceError) => {
        if (!answered) done(e.code, e.details);
      });
      call.on("status", (s: grpc.StatusObject) => {
        if (!answered) done(s.code, s.details);
      });
    }
  });
}
