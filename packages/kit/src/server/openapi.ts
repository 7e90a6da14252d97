/** OpenAPI 3.1 document generated from the same descriptors and http rules as the REST routes. */
import { ScalarType, type DescEnum, type DescField, type DescMessage } from "@bufbuild/protobuf";

import { protoDocs } from "@deai/contracts";

import { defaultIsSigned } from "./auth.js";
import type { RestRoute } from "./http-rules.js";

type Schema = Record<string, unknown>;

/** The proto comment of a full name (service, method, message, field, enum), if it has one. */
const docOf = (fullName: string): string | undefined => protoDocs[fullName];
/** An operation summary: the comment's first sentence, kept short. */
function summaryOf(doc: string | undefined, fallback: string): string {
  const first = doc
    ?.split(/\n\s*\n|(?<=\.)\s/)[0]
    ?.replace(/\s+/g, " ")
    .trim();
  if (!first) return fallback;
  return first.length <= 120 ? first : `${first.slice(0, 117)}...`;
}
const described = (s: Schema, doc: string | undefined): Schema => (doc ? { ...s, description: doc } : s);

const wellKnown: Record<string, Schema> = {
  "google.protobuf.Timestamp": { type: "string", format: "date-time" },
  "google.protobuf.Duration": { type: "string", pattern: "^-?\\d+(\\.\\d+)?s$" },
  "google.protobuf.Empty": { type: "object" },
  "google.protobuf.Struct": { type: "object" },
  "google.protobuf.Value": {},
};

/** One plain HTTP route outside the contracts (tlog-tiles, streamed data), documented by the app that serves it. */
export interface HttpRouteDoc {
  readonly method: "get" | "put" | "post" | "delete" | "head" | "options";
  /** OpenAPI path template, e.g. "/v1/datasets/{dataset_id}/content". */
  readonly path: string;
  /** The OpenAPI operation object (operationId, summary, parameters, responses, ...). */
  readonly operation: Schema;
  /** The paths it matches, when `{name}` = one segment does not say it (a parameter holding slashes). */
  readonly pattern?: RegExp;
  /** Messages its operation refers to as #/components/schemas/<typeName>. */
  readonly messages?: readonly DescMessage[];
}

const LITERAL = /[.*+?^$()|[\]\\]/g;

/** Whether a documented route covers `method` on `path` (HEAD and CORS preflights ride on GET). */
export function documents(doc: HttpRouteDoc, method: string, path: string): boolean {
  const m = method.toLowerCase();
  if (doc.method !== m && !(doc.method === "get" && (m === "head" || m === "options"))) return false;
  const pattern =
    doc.pattern ??
    new RegExp(
      "^" +
        doc.path
          .split(/\{[^}]+\}/)
          .map((lit) => lit.replace(LITERAL, "\\$&"))
          .join("[^/]+") +
        "$",
    );
  return pattern.test(path);
}

const errorResponse = (description: string): Schema => ({
  description,
  content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
});

/** The error answers every REST operation may give (the kit's error JSON, per status). */
export function errorResponses(signed: boolean): Record<string, Schema> {
  return {
    "400": errorResponse("invalid_argument: the request is malformed or a field is invalid (named in the message and details.field)"),
    ...(signed ? { "401": errorResponse("unauthenticated: missing, stale, replayed or wrong signature") } : {}),
    "404": errorResponse("not_found"),
    "409": errorResponse("already_exists or aborted"),
    "412": errorResponse("failed_precondition: the resource is not in a state that allows this"),
    "429": errorResponse("resource_exhausted"),
    "4XX": errorResponse("another client error (permission_denied 403, out_of_range 400, unimplemented 501 is 5XX)"),
    "5XX": errorResponse("internal, unavailable (503: try again) or unimplemented (501)"),
  };
}

/** The kit's own HTTP routes, served by every service. */
export const KIT_HTTP_ROUTES: readonly HttpRouteDoc[] = [
  {
    method: "get",
    path: "/healthz",
    operation: {
      operationId: "kit_healthz",
      summary: "Liveness",
      description: "200 while the process runs; never checks dependencies.",
      tags: ["health"],
      responses: { "200": { description: "alive", content: { "application/json": { schema: { $ref: "#/components/schemas/Health" } } } } },
    },
  },
  {
    method: "get",
    path: "/readyz",
    operation: {
      operationId: "kit_readyz",
      summary: "Readiness",
      description:
        "200 when the service can serve (its dependencies and app checks are ok), 503 otherwise, and from the moment a shutdown begins (checks.server = draining). Agrees with grpc.health.v1.",
      tags: ["health"],
      responses: {
        "200": { description: "ready", content: { "application/json": { schema: { $ref: "#/components/schemas/Readiness" } } } },
        "503": { description: "not ready", content: { "application/json": { schema: { $ref: "#/components/schemas/Readiness" } } } },
      },
    },
  },
  {
    method: "get",
    path: "/metrics",
    operation: {
      operationId: "kit_metrics",
      summary: "Prometheus metrics",
      description:
        "This process's OpenTelemetry metrics in the Prometheus text format (METRICS_ENABLED=false turns it off: 404). Not traced, not signed.",
      tags: ["health"],
      responses: {
        "200": { description: "Prometheus text exposition format 0.0.4", content: { "text/plain": { schema: { type: "string" } } } },
        "404": {
          description: "metrics are not enabled in this process",
          content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
        },
      },
    },
  },
  {
    method: "get",
    path: "/openapi.json",
    operation: {
      operationId: "kit_openapi",
      summary: "This document",
      tags: ["health"],
      responses: { "200": { description: "the OpenAPI 3.1 document", content: { "application/json": { schema: { type: "object" } } } } },
    },
  },
];

export function openApiDocument(opts: {
  title: string;
  version: string;
  routes: readonly RestRoute[];
  /** Plain HTTP routes of the kit and the app. */
  http?: readonly HttpRouteDoc[];
  /** @default [{ url: "/" }]: the server the document was fetched from */
  servers?: readonly { url: string; description?: string }[];
}): Schema {
  const schemas: Record<string, Schema> = {};
  const ref = (m: DescMessage | DescEnum): Schema => {
    const wk = wellKnown[m.typeName];
    if (wk) return wk;
    if (!schemas[m.typeName]) {
      schemas[m.typeName] = {};
      schemas[m.typeName] = m.kind === "enum" ? enumSchema(m) : messageSchema(m);
    }
    return { $ref: `#/components/schemas/${m.typeName}` };
  };
  const fieldSchema = (f: DescField): Schema => {
    const one = (): Schema => {
      switch (f.fieldKind) {
        case "scalar":
          return scalarSchema(f.scalar);
        case "enum":
          return ref(f.enum);
        case "message":
          return ref(f.message);
        case "list":
          return f.listKind === "scalar" ? scalarSchema(f.scalar) : f.listKind === "enum" ? ref(f.enum) : ref(f.message);
        case "map":
          return f.mapKind === "scalar" ? scalarSchema(f.scalar) : f.mapKind === "enum" ? ref(f.enum) : ref(f.message);
      }
    };
    const base = one();
    const withDoc = (s: Schema): Schema => (f.deprecated ? { ...s, deprecated: true } : s);
    const doc = docOf(`${f.parent.typeName}.${f.name}`);
    // A $ref takes no sibling keywords in every validator: a documented reference is wrapped.
    const documented = (s: Schema): Schema => (doc ? ("$ref" in s ? { allOf: [s], description: doc } : described(s, doc)) : s);
    if (f.fieldKind === "list") return withDoc(documented({ type: "array", items: base }));
    if (f.fieldKind === "map") return withDoc(documented({ type: "object", additionalProperties: base }));
    return withDoc(documented(base));
  };
  function messageSchema(m: DescMessage): Schema {
    const properties: Record<string, Schema> = {};
    for (const f of m.fields) properties[f.jsonName] = fieldSchema(f);
    return described({ type: "object", properties }, docOf(m.typeName));
  }
  const paths: Record<string, Record<string, Schema>> = {};
  const seenIds = new Map<string, number>();
  for (const r of opts.routes) {
    const path = r.template;
    const pathNames = new Set(r.pathFields.map((f) => f.name));
    const parameters: Schema[] = r.pathFields.map((f) => ({ name: f.name, in: "path", required: true, schema: fieldSchema(f) }));
    if (r.body === "") {
      for (const f of r.method.input.fields) {
        if (pathNames.has(f.name) || f.fieldKind === "message" || f.fieldKind === "map") continue;
        parameters.push({ name: f.jsonName, in: "query", required: false, schema: fieldSchema(f) });
      }
    }
    // Additional bindings of one method get their own id: operationIds must be unique.
    const baseId = `${r.service.name}_${r.method.name}`;
    const n = (seenIds.get(baseId) ?? 0) + 1;
    seenIds.set(baseId, n);
    const op: Schema = {
      operationId: n === 1 ? baseId : `${baseId}_${n}`,
      summary: summaryOf(docOf(`${r.service.typeName}.${r.method.name}`), `${r.service.name}.${r.method.name}`),
      description: [
        docOf(`${r.service.typeName}.${r.method.name}`),
        `gRPC ${r.service.typeName}/${r.method.name}, transcoded to REST/JSON.${defaultIsSigned(r.method) ? " Signed (RFC 9421)." : ""}`,
      ]
        .filter(Boolean)
        .join("\n\n"),
      tags: [r.service.typeName],
      parameters,
      responses: {
        "200": { description: "OK", content: { "application/json": { schema: ref(r.method.output) } } },
        ...errorResponses(defaultIsSigned(r.method)),
      },
    };
    if (r.body !== "") op.requestBody = { required: true, content: { "application/json": { schema: ref(r.method.input) } } };
    if (defaultIsSigned(r.method)) op.security = [{ httpMessageSignature: [] }];
    (paths[path] ??= {})[r.verb.toLowerCase()] = op;
  }
  for (const h of [...KIT_HTTP_ROUTES, ...(opts.http ?? [])]) {
    for (const m of h.messages ?? []) ref(m);
    (paths[h.path] ??= {})[h.method] = h.operation;
  }
  // Open operations say so (security: []), so no reader takes a missing requirement for an omission.
  for (const ops of Object.values(paths))
    for (const [verb, op] of Object.entries(ops)) if (op.security === undefined) ops[verb] = { ...op, security: [] };
  schemas.Error = {
    type: "object",
    required: ["code", "message"],
    properties: { code: { type: "string", example: "invalid_argument" }, message: { type: "string" }, details: { type: "object" } },
  };
  schemas.Health = { type: "object", required: ["status"], properties: { status: { type: "string", enum: ["ok"] } } };
  schemas.Readiness = {
    type: "object",
    required: ["status", "checks"],
    properties: {
      status: { type: "string", enum: ["ready", "not ready"] },
      checks: { type: "object", description: 'per dependency: "ok" or what is wrong', additionalProperties: { type: "string" } },
    },
  };
  return {
    openapi: "3.1.0",
    info: {
      title: opts.title,
      version: opts.version,
      description:
        "REST/JSON API of a DeAI OS service; the same contracts are served over gRPC (with server reflection) and Connect on the same port.",
      license: { name: "Apache-2.0", identifier: "Apache-2.0" },
    },
    servers: opts.servers ?? [{ url: "/", description: "the server this document was fetched from" }],
    tags: [
      ...new Set(Object.values(paths).flatMap((ops) => Object.values(ops).flatMap((o) => (o.tags as string[] | undefined) ?? []))),
    ].map((name) => described({ name }, protoDocs[name])),
    paths,
    components: {
      schemas,
      securitySchemes: {
        httpMessageSignature: {
          type: "apiKey",
          in: "header",
          name: "Signature",
          description:
            'RFC 9421 HTTP Message Signature, Ed25519, covering ("@method" "@path" "content-digest") with created, nonce, keyid (actor id) and alg="ed25519"; plus Signature-Input and an RFC 9530 Content-Digest header. Requests older than the service\'s window or with a seen nonce are refused.',
        },
      },
    },
  };
}

function enumSchema(e: DescEnum): Schema {
  return described({ type: "string", enum: e.values.map((v) => v.name) }, protoDocs[e.typeName]);
}

function scalarSchema(t: ScalarType): Schema {
  switch (t) {
    case ScalarType.BOOL:
      return { type: "boolean" };
    case ScalarType.STRING:
      return { type: "string" };
    case ScalarType.BYTES:
      return { type: "string", format: "byte" };
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return { type: "number" };
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return { type: "string", format: "int64" };
    default:
      return { type: "integer", format: "int32" };
  }
}
