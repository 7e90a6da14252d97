/**
 * gRPC transcoding: REST/JSON requests mapped onto the same service implementations the
 * gRPC and Connect handlers use (path variables, query parameters and JSON body per
 * google.api.http), with the same signing, tracing and error mapping.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";

import { create, fromJson, isMessage, toJson, type DescField, type DescMethod, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { ScalarType } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, createHandlerContext, type HandlerContext } from "@connectrpc/connect";
import { INVALID_SPAN_CONTEXT, SpanKind, SpanStatusCode, context, trace } from "@opentelemetry/api";

import { DomainError, InvalidArgumentError } from "../errors.js";
import { codeName, httpStatus, isServerFault, toConnectError } from "./error-mapping.js";
import { secondsSince, serverMetrics, UNTRACED_SERVICES } from "./rpc-telemetry.js";
import type { Logger } from "../logger.js";
import { extractContext, tracer } from "../telemetry.js";
import { actorKey, authenticate, requestAuthority, type SigningPolicy } from "./auth.js";
import { badStringIn } from "./string-check.js";
import { restRoutes, type RestRoute } from "./http-rules.js";
import type { ServiceBinding } from "./service-binding.js";

export type NodeRequest = IncomingMessage | Http2ServerRequest;
export type NodeResponse = ServerResponse | Http2ServerResponse;

type UnaryFn = (req: unknown, ctx: HandlerContext) => unknown;

export class RestGateway {
  private readonly routes: { route: RestRoute; impl: UnaryFn | undefined }[] = [];

  constructor(
    bindings: readonly ServiceBinding[],
    private readonly opts: { signing: SigningPolicy; logger: Logger; maxBodyBytes: number },
  ) {
    for (const b of bindings) {
      for (const route of restRoutes(b.service)) {
        const impl = (b.impl as Record<string, UnaryFn | undefined>)[route.method.localName];
        this.routes.push({ route, impl: impl?.bind(b.impl) });
      }
    }
  }

  /** All compiled routes (for OpenAPI). */
  get allRoutes(): readonly RestRoute[] {
    return this.routes.map((r) => r.route);
  }

  /** Handles the request if a REST route matches; returns false otherwise. */
  async handle(req: NodeRequest, res: NodeResponse): Promise<boolean> {
    const url = new URL(req.url ?? "/", "http://localhost");
    let match: { route: RestRoute; impl: UnaryFn | undefined; groups: string[] } | undefined;
    let pathMatched = false;
    for (const r of this.routes) {
      const m = r.route.pattern.exec(url.pathname);
      if (!m) continue;
      pathMatched = true;
      if (r.route.verb === req.method) {
        match = { ...r, groups: m.slice(1) };
        break;
      }
    }
    if (!match) {
      if (!pathMatched) return false;
      sendError(res, new ConnectError(`method ${req.method} not allowed on ${url.pathname}`, 12), 405);
      return true;
    }
    const { route, impl, groups } = match;
    const traced = !UNTRACED_SERVICES.has(route.method.parent.typeName);
    const started = performance.now();
    const parent = extractContext(headersOf(req));
    const rpc = { "rpc.system": "http_json", "rpc.service": route.method.parent.typeName, "rpc.method": route.method.name };
    const span = traced
      ? tracer().startSpan(
          `${route.verb} ${route.template}`,
          {
            kind: SpanKind.SERVER,
            attributes: {
              "http.request.method": route.verb,
              "http.route": route.template,
              "url.path": url.pathname,
              "url.scheme": "http",
              ...rpc,
            },
          },
          parent,
        )
      : trace.wrapSpanContext(INVALID_SPAN_CONTEXT);
    const finish = (status: number, code: Code): void => {
      span.setAttribute("http.response.status_code", status);
      span.setAttribute("rpc.grpc.status_code", code);
      span.end();
      if (traced) serverMetrics().rpc.record(secondsSince(started), { ...rpc, "rpc.grpc.status_code": code });
    };
    await context.with(trace.setSpan(parent, span), async () => {
      try {
        const body = route.verb === "GET" || route.verb === "DELETE" ? new Uint8Array() : await readBody(req, this.opts.maxBodyBytes);
        const headers = headersOf(req);
        const signedLike = route.verb !== "GET";
        if (signedLike && url.search !== "")
          throw new InvalidArgumentError("mutating requests carry their parameters in the path and body, not the query");
        const actor = await authenticate(this.opts.signing, route.method, {
          httpMethod: route.verb,
          authority: requestAuthority(req),
          path: url.pathname,
          body,
          header: (n) => headers.get(n),
        });
        const message = buildRequest(route, groups, strictQuery(url.search), body);
        if (!impl) throw new ConnectError(`${route.method.parent.typeName}/${route.method.name} is not available in this version`, 12);
        const abort = new AbortController();
        res.on("close", () => abort.abort());
        const ctx = createHandlerContext({
          service: route.method.parent,
          method: route.method,
          protocolName: "rest",
          requestMethod: route.verb,
          url: url.toString(),
          requestHeader: headers,
          requestSignal: abort.signal,
          contextValues: createContextValues().set(actorKey, actor),
        });
        const out = await impl(message, ctx);
        const response = isMessage(out, route.method.output) ? out : create(route.method.output, out as never);
        const json = JSON.stringify(toJson(route.method.output, response, { alwaysEmitImplicit: true }));
        res.writeHead(200, { "content-type": "application/json" });
        res.end(json);
        finish(200, 0 as Code);
      } catch (e) {
        const ce = toConnectError(e);
        if (isServerFault(ce.code)) this.opts.logger.error({ err: ce.cause ?? e, method: route.method.name }, "internal error");
        const status = ce.cause instanceof PayloadTooLarge ? 413 : httpStatus(ce.code);
        // Only the server's faults are errors of a server span; 4xx are the caller's.
        if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: ce.rawMessage });
        sendError(res, ce, status);
        finish(status, ce.code);
      }
    });
    return true;
  }
}

/** The JSON error body every REST endpoint uses: `{"code": "...", "message": "..."}`. */
export function sendError(res: NodeResponse, e: ConnectError, status = httpStatus(e.code)): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const body: Record<string, unknown> = { code: codeName(e.code), message: e.rawMessage };
  const domain = e.cause instanceof DomainError ? e.cause : undefined;
  if (domain && Object.keys(domain.details).length > 0) body.details = domain.details;
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

export function headersOf(req: NodeRequest): Headers {
  const h = new Headers();
  for (const [k, v] of Object.entries(req.headers)) {
    if (k.startsWith(":") || v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) h.append(k, x);
    else h.set(k, String(v));
  }
  return h;
}

/**
 * Reads a request body, refusing more than `limit` bytes with RESOURCE_EXHAUSTED (413).
 *
 * A body over the limit without a Content-Length (chunked) is refused as soon as it passes
 * the limit, but its remaining bytes are still read and dropped (up to 8 × limit) so that
 * the client, still sending, reads the 413 instead of a connection reset; beyond that the
 * connection is cut.
 */
export async function readBody(req: NodeRequest, limit: number): Promise<Uint8Array> {
  const declared = Number(req.headers["content-length"] ?? NaN);
  if (declared > limit) throw new PayloadTooLarge(declared, limit);
  return new Promise<Uint8Array>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    let refused = false;
    req.on("data", (c: Buffer) => {
      n += c.length;
      if (refused) {
        if (n > 8 * limit) req.destroy();
        return;
      }
      if (n > limit) {
        refused = true;
        chunks.length = 0;
        reject(new PayloadTooLarge(n, limit));
        return;
      }
      chunks.push(c);
    });
    req.once("end", () => resolve(Buffer.concat(chunks)));
    req.once("error", () => reject(new InvalidArgumentError("request body broke off before its end")));
    req.once("aborted", () => reject(new InvalidArgumentError("request body broke off before its end")));
  });
}

class PayloadTooLarge extends DomainError {
  constructor(size: number, limit: number) {
    super("resource_exhausted", `request body of ${size}+ bytes exceeds the limit of ${limit} bytes`, { status: 413 });
  }
}

/**
 * The query string decoded strictly: URLSearchParams turns invalid UTF-8 (e.g. an encoded lone
 * surrogate, `%ED%A0%80`) into U+FFFD silently, so a request would be served with other text
 * than it sent; decodeURIComponent refuses it, and so do we, naming the parameter.
 */
function strictQuery(search: string): URLSearchParams {
  const out = new URLSearchParams();
  for (const pair of search.replace(/^\?/, "").split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const rawName = eq < 0 ? pair : pair.slice(0, eq);
    const rawValue = eq < 0 ? "" : pair.slice(eq + 1);
    const decode = (raw: string, what: string): string => {
      try {
        return decodeURIComponent(raw.replace(/\+/g, " "));
      } catch {
        throw new ConnectError(`query ${what} is not valid percent-encoded UTF-8`, Code.InvalidArgument);
      }
    };
    const name = decode(rawName, `parameter name ${JSON.stringify(rawName.slice(0, 64))}`);
    out.append(name, decode(rawValue, `parameter ${JSON.stringify(name.slice(0, 64))}`));
  }
  return out;
}

function buildRequest(route: RestRoute, groups: string[], query: URLSearchParams, body: Uint8Array): unknown {
  const m = route.method;
  const json: JsonObject = {};
  if (route.body !== "" && body.length > 0) {
    let parsed: JsonValue;
    try {
      parsed = JSON.parse(Buffer.from(body).toString("utf8")) as JsonValue;
    } catch (e) {
      throw new InvalidArgumentError(`request body is not valid JSON: ${(e as Error).message}`);
    }
    if (route.body === "*") {
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed))
        throw new InvalidArgumentError("request body must be a JSON object");
      Object.assign(json, parsed);
    } else {
      const f = m.input.fields.find((x) => x.name === route.body);
      if (f) json[f.jsonName] = parsed;
    }
  }
  const fromPath = new Set<DescField>();
  route.pathFields.forEach((f, i) => {
    let value: string;
    try {
      value = decodeURIComponent(groups[i] ?? "");
    } catch {
      throw new InvalidArgumentError(`path variable {${f.name}} is not valid percent-encoding`);
    }
    json[f.jsonName] = scalarJson(f, value, `path variable {${f.name}}`);
    fromPath.add(f);
  });
  const fromQuery = new Set<DescField>();
  for (const key of new Set(query.keys())) {
    const f = m.input.fields.find((x) => x.name === key || x.jsonName === key);
    if (!f) throw new InvalidArgumentError(`unknown query parameter ${JSON.stringify(key)} for ${m.name}`);
    const label = `query parameter ${JSON.stringify(key)}`;
    if (fromPath.has(f) || f.jsonName in json)
      throw new InvalidArgumentError(`${label} sets ${f.name}, which the path or body already sets`);
    if (fromQuery.has(f)) throw new InvalidArgumentError(`${label}: ${f.name} is given under two names`);
    fromQuery.add(f);
    const values = query.getAll(key);
    if (f.fieldKind === "list") json[f.jsonName] = values.map((v) => scalarJson(f, v, label));
    else if (values.length > 1) throw new InvalidArgumentError(`${label} is given ${values.length} times; ${f.name} takes one value`);
    else json[f.jsonName] = scalarJson(f, values[0] ?? "", label);
  }
  let message: unknown;
  try {
    message = fromJson(m.input, json, { ignoreUnknownFields: false });
  } catch (e) {
    throw new InvalidArgumentError(`invalid ${m.input.name}: ${(e as Error).message}`);
  }
  const bad = badStringIn(m.input, message);
  if (bad) throw new InvalidArgumentError(`${bad.path} ${bad.problem}`, { field: bad.path });
  return message;
}

const SIGNED_DECIMAL = /^-?(0|[1-9][0-9]*)$/;
const UNSIGNED_DECIMAL = /^(0|[1-9][0-9]*)$/;
const FLOAT = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$/;

/**
 * One URL parameter as the JSON value of field `f`, parsed strictly: integers only in
 * canonical decimal ("01", "+1", "0x10", "1e3", " 1", "-0" and out-of-range values are
 * refused), bools only "true"/"false", enums only by a value's name or its number.
 */
function scalarJson(f: DescField, v: string, label: string): JsonValue {
  const refuse = (what: string): never => {
    throw new InvalidArgumentError(`${label} must be ${what}, got ${JSON.stringify(v.slice(0, 64))}`, { field: f.name });
  };
  const integer = (min: bigint, max: bigint): bigint => {
    if (!(min < 0n ? SIGNED_DECIMAL : UNSIGNED_DECIMAL).test(v) || v === "-0") refuse(`an integer in canonical decimal`);
    const n = BigInt(v);
    if (n < min || n > max) refuse(`an integer from ${min} to ${max}`);
    return n;
  };
  const e = f.fieldKind === "enum" ? f.enum : f.fieldKind === "list" && f.listKind === "enum" ? f.enum : undefined;
  if (e) {
    if (e.values.some((x) => x.name === v)) return v;
    if (SIGNED_DECIMAL.test(v) && v !== "-0" && e.values.some((x) => String(x.number) === v)) return Number(v);
    return refuse(`one of ${e.values.map((x) => x.name).join(", ")}`);
  }
  const scalar = f.fieldKind === "scalar" ? f.scalar : f.fieldKind === "list" && f.listKind === "scalar" ? f.scalar : undefined;
  if (scalar === undefined) throw new InvalidArgumentError(`field ${f.name} cannot be set from the URL`);
  switch (scalar) {
    case ScalarType.BOOL:
      if (v !== "true" && v !== "false") refuse("true or false");
      return v === "true";
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return Number(integer(-(2n ** 31n), 2n ** 31n - 1n));
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return Number(integer(0n, 2n ** 32n - 1n));
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return integer(-(2n ** 63n), 2n ** 63n - 1n).toString();
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return integer(0n, 2n ** 64n - 1n).toString();
    case ScalarType.FLOAT:
    case ScalarType.DOUBLE: {
      if (!FLOAT.test(v) || !Number.isFinite(Number(v))) refuse("a decimal number");
      return Number(v);
    }
    default:
      return v;
  }
}

export type { DescMethod };
