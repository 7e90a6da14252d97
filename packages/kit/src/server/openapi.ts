/** OpenAPI 3.1 document generated from the same descriptors and http rules as the REST routes. */
import { ScalarType, type DescEnum, type DescField, type DescMessage } from "@bufbuild/protobuf";

import { defaultIsSigned } from "./auth.js";
import type { RestRoute } from "./http-rules.js";

type Schema = Record<string, unknown>;

const wellKnown: Record<string, Schema> = {
  "google.protobuf.Timestamp": { type: "string", format: "date-time" },
  "google.protobuf.Duration": { type: "string", pattern: "^-?\\d+(\\.\\d+)?s$" },
  "google.protobuf.Empty": { type: "object" },
  "google.protobuf.Struct": { type: "object" },
  "google.protobuf.Value": {},
};

export function openApiDocument(opts: { title: string; version: string; routes: readonly RestRoute[] }): Schema {
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
    if (f.fieldKind === "list") return withDoc({ type: "array", items: base });
    if (f.fieldKind === "map") return withDoc({ type: "object", additionalProperties: base });
    return withDoc(base);
  };
  function messageSchema(m: DescMessage): Schema {
    const properties: Record<string, Schema> = {};
    for (const f of m.fields) properties[f.jsonName] = fieldSchema(f);
    return { type: "object", properties };
  }
  const paths: Record<string, Record<string, Schema>> = {};
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
    const op: Schema = {
      operationId: `${r.service.name}_${r.method.name}`,
      tags: [r.service.typeName],
      parameters,
      responses: {
        "200": { description: "OK", content: { "application/json": { schema: ref(r.method.output) } } },
        default: { description: "Error", content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } },
      },
    };
    if (r.body !== "") op.requestBody = { required: true, content: { "application/json": { schema: ref(r.method.input) } } };
    if (defaultIsSigned(r.method)) op.security = [{ httpMessageSignature: [] }];
    (paths[path] ??= {})[r.verb.toLowerCase()] = op;
  }
  schemas.Error = {
    type: "object",
    required: ["code", "message"],
    properties: { code: { type: "string", example: "invalid_argument" }, message: { type: "string" }, details: { type: "object" } },
  };
  return {
    openapi: "3.1.0",
    info: { title: opts.title, version: opts.version },
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
  return { type: "string", enum: e.values.map((v) => v.name) };
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
