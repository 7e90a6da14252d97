/**
 * Requests for one RPC built from its descriptor: the REST form its google.api.http rules
 * give (path variables, query or JSON body) and the gRPC form (protobuf binary), each
 * signable like a real client would sign it.
 */
import {
  create,
  fromJson,
  ScalarType,
  toBinary,
  type DescField,
  type DescMethod,
  type DescService,
  type JsonObject,
  type JsonValue,
} from "@bufbuild/protobuf";

import { defaultIsSigned, restRoutes, signRequest, streamDigest, type ActorKey, type RestRoute } from "@deai/kit";

import type { GrpcMethodKind, HttpRequestSpec } from "./transports.js";

/** One RPC of a binding the suite abuses. */
export interface MethodTarget {
  readonly service: DescService;
  readonly method: DescMethod;
  /** `/package.Service/Method`. */
  readonly grpcPath: string;
  readonly kind: GrpcMethodKind;
  readonly routes: readonly RestRoute[];
  readonly signed: boolean;
  /** The base message every case starts from: the service test's seed, or the empty message. */
  readonly seed: JsonObject;
}

export function methodTargets(services: readonly DescService[], seeds: Readonly<Record<string, JsonObject>>): MethodTarget[] {
  return services.flatMap((service) => {
    const routes = restRoutes(service);
    return service.methods.map((method) => ({
      service,
      method,
      grpcPath: `/${service.typeName}/${method.name}`,
      kind: method.methodKind,
      routes: routes.filter((r) => r.method === method),
      signed: defaultIsSigned(method),
      seed: seeds[`${service.typeName}/${method.name}`] ?? seeds[method.name] ?? {},
    }));
  });
}

/**
 * Signs (method, path, body) for the target's authority into headers; `streamed` bodies are
 * one client-stream message, signed over the stream digest. The variants in
 * signing-variants.ts tamper with it.
 */
export type Signer = (httpMethod: string, path: string, body: Uint8Array, streamed?: boolean) => Record<string, string>;

/** What a signature covers besides method, path and body, each one overridable for a variant. */
export interface SignatureParams {
  readonly key: ActorKey;
  readonly authority: string;
  readonly created?: number;
  readonly nonce?: string;
}

export const signerOf =
  (p: SignatureParams): Signer =>
  (method, path, body, streamed) => ({
    ...signRequest({ ...p, method, path, ...(streamed ? { digest: streamDigest([body]) } : { body }) }),
  });

function placeholder(f: DescField): string {
  if (f.fieldKind === "enum") return f.enum.values[0]?.name ?? "0";
  if (f.fieldKind === "scalar" && f.scalar === ScalarType.BOOL) return "true";
  if (f.fieldKind === "scalar" && f.scalar !== ScalarType.STRING && f.scalar !== ScalarType.BYTES) return "1";
  return "abuse";
}

/**
 * The REST request for `json` on `route`, or undefined when `json` cannot be expressed
 * there (a nested field of a GET method). `rawPath` and `rawQuery` put bytes on the wire
 * exactly as given (percent-encoded already), for hostile path and query values.
 */
export function restRequest(
  route: RestRoute,
  json: JsonObject,
  o: { sign?: Signer; rawPath?: Readonly<Record<string, string>>; rawQuery?: string; rawBody?: Uint8Array } = {},
): HttpRequestSpec | undefined {
  const rest: JsonObject = { ...json };
  const fields = route.method.input.fields;
  const segments = route.template.split("/").map((seg) => {
    const m = /^\{([a-z_][a-z0-9_]*)\}$/.exec(seg);
    if (!m) return seg;
    const f = fields.find((x) => x.name === m[1])!;
    const given = rest[f.jsonName] ?? rest[f.name];
    delete rest[f.jsonName];
    delete rest[f.name];
    if (o.rawPath?.[f.name] !== undefined) return o.rawPath[f.name]!;
    return encodeURIComponent(given === undefined || typeof given === "object" ? placeholder(f) : String(given));
  });
  const pathname = segments.join("/");
  const query: string[] = [];
  let body: Uint8Array | undefined;
  if (route.verb === "GET" || route.verb === "DELETE") {
    for (const [k, v] of Object.entries(rest)) {
      const values = Array.isArray(v) ? v : [v];
      for (const x of values) {
        if (x !== null && typeof x === "object") return undefined;
        query.push(`${encodeURIComponent(k)}=${encodeURIComponent(String(x))}`);
      }
    }
  } else if (route.body === "*") {
    body = Buffer.from(JSON.stringify(rest));
  } else if (route.body === "") {
    if (Object.keys(rest).length > 0) return undefined;
  } else {
    const f = fields.find((x) => x.name === route.body);
    const v = f ? (rest[f.jsonName] ?? rest[f.name]) : undefined;
    body = Buffer.from(JSON.stringify(v ?? {}));
  }
  if (o.rawBody) body = o.rawBody;
  if (o.rawQuery !== undefined) query.push(o.rawQuery);
  const target = query.length > 0 ? `${pathname}?${query.join("&")}` : pathname;
  const headers: Record<string, string | number> = {};
  if (body !== undefined) Object.assign(headers, { "content-type": "application/json", "content-length": body.length });
  const signed = route.verb !== "GET" && o.sign ? o.sign(route.verb, pathname, body ?? new Uint8Array()) : {};
  return { method: route.verb, target, headers: { ...headers, ...signed }, ...(body ? { body } : {}) };
}

/** U+FDD0 (a noncharacter, 3 bytes in UTF-8) stands in for a lone surrogate until after encoding. */
export const SURROGATE_STAND_IN = "\uFDD0";
const STAND_IN_BYTES = Buffer.from(SURROGATE_STAND_IN, "utf8");
// ED A0 80 is U+D800 encoded as if it were a scalar value: invalid UTF-8, the same length.
const LONE_SURROGATE_BYTES = Buffer.from([0xed, 0xa0, 0x80]);

/**
 * The protobuf binary form of `json` for `method`'s input. protobuf-es cannot write invalid
 * UTF-8, so a lone surrogate is planted as a stand-in of the same byte length and swapped in
 * after encoding (no length prefix changes).
 */
export function grpcBytes(method: DescMethod, json: JsonObject): Uint8Array {
  const bytes = Buffer.from(toBinary(method.input, fromJson(method.input, json as JsonValue)));
  for (let at = bytes.indexOf(STAND_IN_BYTES); at >= 0; at = bytes.indexOf(STAND_IN_BYTES, at + 3)) LONE_SURROGATE_BYTES.copy(bytes, at);
  return bytes;
}

/** Whether requests of `t` are streams of messages (signed over the stream digest). */
export const isClientStream = (t: MethodTarget): boolean => t.kind === "client_streaming" || t.kind === "bidi_streaming";

/** The gRPC signature metadata for `body` (the one message of a client stream, for streams). */
export function grpcSignature(t: MethodTarget, body: Uint8Array, sign: Signer | undefined): Record<string, string> {
  if (!t.signed || !sign) return {};
  return sign("POST", t.grpcPath, body, isClientStream(t));
}

/** The empty message's binary form (valid for every method). */
export function emptyBytes(method: DescMethod): Uint8Array {
  return toBinary(method.input, create(method.input));
}
