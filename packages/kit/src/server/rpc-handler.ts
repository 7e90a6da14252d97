/**
 * The gRPC, gRPC-Web and Connect handler: connect-node's adapter, plus one correction it
 * has no hook for. connect-es answers a unary request whose protobuf does not decode with
 * INTERNAL ("parse binary: ..."), before any interceptor runs; bad input is the caller's
 * fault, so this handler rewrites exactly that answer to INVALID_ARGUMENT (HTTP 400 for
 * Connect) in each protocol's framing. Streams are corrected in the error interceptor,
 * which sees their messages being decoded.
 */
import { Code, ConnectError, createConnectRouter, type ConnectRouter, type ContextValues, type Interceptor } from "@connectrpc/connect";
import type { UniversalServerResponse } from "@connectrpc/connect/protocol";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";

import type { Logger } from "../logger.js";
import type { NodeRequest, NodeResponse } from "./rest-gateway.js";

/** The message connect-es gives a request message that does not decode. */
const UNDECODABLE = /^parse binary: /;

/** Whether `e` is connect-es's decode failure of a request message. */
export function isUndecodable(e: unknown): e is ConnectError {
  return e instanceof ConnectError && e.code === Code.Internal && UNDECODABLE.test(e.rawMessage);
}

/** The same failure as the caller's: INVALID_ARGUMENT naming what did not decode. */
export function undecodableAsInvalid(e: ConnectError, what: string): ConnectError {
  return new ConnectError(`${what} does not decode: ${e.rawMessage.replace(UNDECODABLE, "")}`, Code.InvalidArgument);
}

export function rpcHandler(opts: {
  routes: (router: ConnectRouter) => void;
  interceptors: Interceptor[];
  readMaxBytes: number;
  logger: Logger;
  contextValues: (req: NodeRequest) => ContextValues;
  fallback: (req: NodeRequest, res: NodeResponse) => void;
}): (req: NodeRequest, res: NodeResponse) => void {
  const router = createConnectRouter({
    interceptors: opts.interceptors,
    readMaxBytes: opts.readMaxBytes,
    acceptCompression: [compressionGzip, compressionBrotli],
  });
  opts.routes(router);
  const handlers = new Map(router.handlers.map((h) => [h.requestPath, h]));
  return (req, res) => {
    const h = handlers.get((req.url ?? "").split("?", 2)[0] ?? "");
    if (!h) {
      opts.fallback(req, res);
      return;
    }
    const uReq = universalRequestFromNodeRequest(req, res, undefined, opts.contextValues(req));
    h(uReq)
      .then((uRes) => (h.method.methodKind === "unary" ? undecodableUnary(uRes, h.method.input.typeName) : uRes))
      .then((uRes) => universalResponseToNodeResponse(uRes, res))
      .catch((e: unknown) => {
        if (ConnectError.from(e).code === Code.Aborted) return;
        opts.logger.warn({ err: e, method: h.method.name }, "rpc response failed");
      });
  };
}

const undecodableMessage = (typeName: string, raw: string): string =>
  `request ${typeName} does not decode: ${raw.replace(UNDECODABLE, "")}`;

/** Rewrites a unary answer "INTERNAL: parse binary" to INVALID_ARGUMENT, in the protocol it was written in. */
async function undecodableUnary(uRes: UniversalServerResponse, typeName: string): Promise<UniversalServerResponse> {
  // gRPC: the status is in the trailers.
  const grpcMessage = uRes.trailer?.get("grpc-message");
  if (uRes.trailer?.get("grpc-status") === String(Code.Internal) && grpcMessage && UNDECODABLE.test(decodeURIComponent(grpcMessage))) {
    uRes.trailer.set("grpc-status", String(Code.InvalidArgument));
    uRes.trailer.set("grpc-message", encodeURIComponent(undecodableMessage(typeName, decodeURIComponent(grpcMessage))));
    return uRes;
  }
  const type = uRes.header?.get("content-type") ?? "";
  if (uRes.body === undefined || uRes.header === undefined || uRes.header.has("content-encoding")) return uRes;
  // Connect unary: HTTP 500 with a JSON error body.
  if (uRes.status === 500 && type.startsWith("application/json")) {
    const body = await collect(uRes.body);
    try {
      const err = JSON.parse(Buffer.from(body).toString("utf8")) as { code?: string; message?: string };
      if (err.code === "internal" && UNDECODABLE.test(err.message ?? "")) {
        const fixed = Buffer.from(JSON.stringify({ code: "invalid_argument", message: undecodableMessage(typeName, err.message ?? "") }));
        uRes.header.set("content-length", String(fixed.length));
        return { ...uRes, status: 400, body: once(fixed) };
      }
    } catch {
      // Not an error body after all: send it as it was.
    }
    return { ...uRes, body: once(body) };
  }
  // gRPC-Web: the trailers are the last frame of the body; a decode failure is the only frame.
  if (type.startsWith("application/grpc-web") && !type.includes("text")) {
    const it = uRes.body[Symbol.asyncIterator]();
    const first = await it.next();
    if (first.done) return { ...uRes, body: once(new Uint8Array()) };
    const chunk = first.value;
    const rest = { [Symbol.asyncIterator]: () => it };
    if (chunk[0] === 0x80 && chunk.length >= 5) {
      const text = Buffer.from(chunk.subarray(5)).toString("latin1");
      const m = /grpc-message: ([^\r\n]*)/.exec(text);
      if (/grpc-status: 13\r\n/.test(text) && m?.[1] && UNDECODABLE.test(decodeURIComponent(m[1]))) {
        const fixed = Buffer.from(
          `grpc-status: ${Code.InvalidArgument}\r\ngrpc-message: ${encodeURIComponent(undecodableMessage(typeName, decodeURIComponent(m[1])))}\r\n`,
          "latin1",
        );
        const frame = Buffer.alloc(5 + fixed.length);
        frame[0] = 0x80;
        frame.writeUInt32BE(fixed.length, 1);
        fixed.copy(frame, 5);
        return { ...uRes, body: once(frame) };
      }
    }
    return { ...uRes, body: prepend(chunk, rest) };
  }
  return uRes;
}

async function collect(body: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of body) parts.push(c);
  return Buffer.concat(parts);
}

async function* once(b: Uint8Array): AsyncIterable<Uint8Array> {
  yield b;
}

async function* prepend(first: Uint8Array, rest: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  yield first;
  yield* rest;
}
