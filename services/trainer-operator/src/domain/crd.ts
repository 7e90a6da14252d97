/**
 * The TrainingJob CRD (deai.dev/v1alpha1) generated from `deai.training.v1`: the proto is the
 * one source of truth. `trainingJobCrd()` builds the CustomResourceDefinition (its
 * openAPIV3Schema walks the TrainingJobSpec / TrainingJobStatus descriptors, descriptions come
 * from the proto comments, deprecated fields are left out, CRD-only constraints come from
 * OVERLAY below, keyed by proto names so a renamed field fails the test), and
 * `crdFromProto` / `protoFromCrd` convert between a TrainingJob message and the resource, with
 * the same rules:
 *
 *   - field names: the proto JSON names (lowerCamelCase);
 *   - enums: the value name without its enum's prefix, in PascalCase
 *     (TRAINING_JOB_PHASE_RUNNING → "Running", RESTART_STRATEGY_RECREATE_ALL → "RecreateAll");
 *     UNSPECIFIED is the absent value;
 *   - deai.common.v1.Digest: "<algorithm>:<hex>"; google.protobuf.Timestamp: RFC 3339;
 *   - 64-bit integers: JSON numbers (format int64), not the strings of proto3 JSON;
 *   - a oneof: exactly one of its members (a TrainingJob must say what it starts from).
 *
 * Pure: no I/O; the YAML file is written by scripts/gen-crd.mjs and compared by a test.
 */
import {
  create,
  fromJson,
  toJson,
  type DescEnum,
  type DescField,
  type DescMessage,
  type JsonObject,
  type JsonValue,
} from "@bufbuild/protobuf";
import { ScalarType } from "@bufbuild/protobuf";

import { protoDocs } from "@deai/contracts";
import {
  TrainingJobSchema,
  TrainingJobSpecSchema,
  TrainingJobStatusSchema,
  type TrainingJob,
} from "@deai/contracts/deai/training/v1/training_pb";

/** A node of an OpenAPI v3 (Kubernetes structural) schema. */
export type SchemaNode = { [key: string]: unknown };

export const CRD_GROUP = "deai.dev";
export const CRD_VERSION = "v1alpha1";
export const CRD_KIND = "TrainingJob";
export const CRD_PLURAL = "trainingjobs";
export const API_VERSION = `${CRD_GROUP}/${CRD_VERSION}`;

export const DIGEST_PATTERN = "^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$";
const QUANTITY_PATTERN =
  "^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$";
const DIGEST = "deai.common.v1.Digest";
const TIMESTAMP = "google.protobuf.Timestamp";
const P = "deai.training.v1.";

/**
 * CRD-only constraints (what a proto type cannot say: bounds, patterns, defaults, list types,
 * CEL rules), merged onto the generated node of the proto field (`<message>.<field>`) or of
 * every use of a message (`<message>`). Every key must name a field or message the generator
 * emits (tested).
 */
export const OVERLAY: Readonly<Record<string, SchemaNode>> = {
  [`${P}TrainingJobSpec`]: {
    required: ["datasets", "diloco", "groups"],
    "x-kubernetes-validations": [
      {
        rule: "!has(self.leaseIds) || size(self.leaseIds) == 0 || size(self.leaseIds) == self.groups.count",
        message: "leaseIds must name one lease per group (size(leaseIds) == groups.count)",
      },
    ],
  },
  [`${P}TrainingJobSpec.datasets`]: { minItems: 1, maxItems: 256, "x-kubernetes-list-type": "set" },
  [`${P}TrainingJobSpec.lease_ids`]: { maxItems: 1024, items: { minLength: 1, maxLength: 128 } },
  [`${P}ModelConfig`]: { required: ["architecture"] },
  [`${P}ModelConfig.architecture`]: { minLength: 1, maxLength: 63 },
  [`${P}ModelConfig.num_layers`]: { minimum: 1 },
  [`${P}ModelConfig.hidden_size`]: { minimum: 1 },
  [`${P}ModelConfig.num_heads`]: { minimum: 1 },
  [`${P}ModelConfig.vocab_size`]: { minimum: 1 },
  [`${P}ModelConfig.context_length`]: { minimum: 1 },
  [`${P}GroupPolicy`]: {
    required: ["count"],
    "x-kubernetes-validations": [
      { rule: "!has(self.minCount) || self.minCount == 0 || self.minCount <= self.count", message: "minCount must not exceed count" },
      { rule: "!has(self.maxCount) || self.maxCount == 0 || self.count <= self.maxCount", message: "count must not exceed maxCount" },
    ],
  },
  [`${P}GroupPolicy.count`]: { minimum: 1, maximum: 1024 },
  [`${P}GroupPolicy.min_count`]: { maximum: 1024 },
  [`${P}GroupPolicy.max_count`]: { maximum: 1024 },
  [`${P}DiLoCoXParams`]: { required: ["innerSteps"] },
  [`${P}DiLoCoXParams.inner_steps`]: { minimum: 1, maximum: 1000000 },
  [`${P}DiLoCoXParams.pipeline_stages`]: { minimum: 1, maximum: 256, default: 1 },
  [`${P}DiLoCoXParams.delayed_overlap`]: { default: true },
  [`${P}InnerOptimizer.learning_rate`]: { minimum: 0, exclusiveMinimum: true, default: 0.001 },
  [`${P}InnerOptimizer.weight_decay`]: { minimum: 0, default: 0.1 },
  [`${P}InnerOptimizer.beta1`]: { minimum: 0, maximum: 1, exclusiveMaximum: true, default: 0.9 },
  [`${P}InnerOptimizer.beta2`]: { minimum: 0, maximum: 1, exclusiveMaximum: true, default: 0.95 },
  [`${P}InnerOptimizer.epsilon`]: { minimum: 0 },
  [`${P}InnerOptimizer.max_grad_norm`]: { minimum: 0 },
  [`${P}OuterOptimizer.learning_rate`]: { minimum: 0, exclusiveMinimum: true, default: 0.7 },
  [`${P}OuterOptimizer.momentum`]: { minimum: 0, maximum: 1, exclusiveMaximum: true, default: 0.9 },
  [`${P}OuterOptimizer.nesterov`]: { default: true },
  [`${P}CompressionPolicy`]: {
    "x-kubernetes-validations": [
      { rule: "!has(self.minRank) || !has(self.maxRank) || self.minRank <= self.maxRank", message: "minRank must not exceed maxRank" },
    ],
  },
  [`${P}CompressionPolicy.enabled`]: { default: true },
  [`${P}CompressionPolicy.low_rank`]: { default: true },
  [`${P}CompressionPolicy.min_rank`]: { minimum: 1, default: 1 },
  [`${P}CompressionPolicy.max_rank`]: { minimum: 1, default: 32 },
  [`${P}CompressionPolicy.energy`]: { minimum: 0, exclusiveMinimum: true, maximum: 1, default: 0.8 },
  [`${P}CompressionPolicy.bits`]: { enum: [0, 2, 4, 8], default: 8 },
  [`${P}WorkerResources.gpus`]: { maximum: 16, default: 0 },
  [`${P}WorkerResources.workers_per_group`]: { minimum: 1, maximum: 256 },
  [`${P}WorkerResources.cpu`]: { pattern: QUANTITY_PATTERN },
  [`${P}WorkerResources.memory`]: { pattern: QUANTITY_PATTERN },
  [`${P}TrainerTemplate.env`]: { maxItems: 256, "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"] },
  [`${P}EnvVar`]: { required: ["name"] },
  [`${P}EnvVar.name`]: { minLength: 1, pattern: "^[-._a-zA-Z][-._a-zA-Z0-9]*$" },
  [`${P}FailurePolicy.max_restarts`]: { default: 3 },
  [`${P}FailurePolicy.restart_strategy`]: { default: "RestartGroup" },
  [`${P}FailurePolicy.rules`]: { maxItems: 32 },
  [`${P}FailureRule`]: { required: ["exitCodes", "action"] },
  [`${P}FailureRule.exit_codes`]: { minItems: 1, maxItems: 255, items: { minimum: 0, maximum: 255 } },
  [`${P}GangPolicy.schedule_timeout_seconds`]: { maximum: 86400 },
  [`${P}TrainingJobStatus.conditions`]: { "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"] },
  [`${P}TrainingJobStatus.groups`]: { "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["group"] },
  [`${P}Condition`]: { required: ["type", "status"] },
  [`${P}Condition.type`]: { maxLength: 316 },
  [`${P}Condition.reason`]: { maxLength: 1024 },
  [`${P}Condition.message`]: { maxLength: 32768 },
  [`${P}GroupStatus`]: { required: ["group"] },
};

/** The CRD string of an enum value: prefix stripped, PascalCase. */
export function enumValueCrdName(e: DescEnum, protoName: string): string {
  const prefix = `${e.name.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase()}_`;
  const bare = protoName.startsWith(prefix) ? protoName.slice(prefix.length) : protoName;
  return bare
    .toLowerCase()
    .split("_")
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join("");
}

const doc = (fullName: string): string | undefined => protoDocs[fullName]?.replace(/\s*\n\s*/g, " ");
const is64 = (s: ScalarType): boolean =>
  [ScalarType.INT64, ScalarType.UINT64, ScalarType.SINT64, ScalarType.FIXED64, ScalarType.SFIXED64].includes(s);
const isUnsigned = (s: ScalarType): boolean => [ScalarType.UINT32, ScalarType.UINT64, ScalarType.FIXED32, ScalarType.FIXED64].includes(s);

function scalarSchema(s: ScalarType): SchemaNode {
  switch (s) {
    case ScalarType.BOOL:
      return { type: "boolean" };
    case ScalarType.STRING:
      return { type: "string" };
    case ScalarType.BYTES:
      return { type: "string", format: "byte" };
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return { type: "number" };
    default:
      // uint32 has no OpenAPI format (int32 would refuse values above 2^31 - 1).
      return {
        type: "integer",
        ...(is64(s) ? { format: "int64" } : isUnsigned(s) ? {} : { format: "int32" }),
        ...(isUnsigned(s) ? { minimum: 0 } : {}),
        ...(s === ScalarType.UINT32 || s === ScalarType.FIXED32 ? { maximum: 4294967295 } : {}),
      };
  }
}

const enumNames = (e: DescEnum): string[] =>
  e.values.filter((v) => v.number !== 0 && !v.deprecated).map((v) => enumValueCrdName(e, v.name));

function enumSchema(e: DescEnum): SchemaNode {
  return { type: "string", enum: enumNames(e) };
}

/** Merge CRD-only constraints; `items` merges into the item schema. */
function withOverlay(node: SchemaNode, key: string): SchemaNode {
  const extra = OVERLAY[key];
  if (extra === undefined) return node;
  const { items, ...rest } = extra;
  const out: SchemaNode = { ...node, ...rest };
  if (items !== undefined) out.items = { ...(node.items as SchemaNode), ...(items as SchemaNode) };
  return out;
}

function messageSchema(m: DescMessage, seen: readonly string[] = []): SchemaNode {
  if (m.typeName === DIGEST) return { type: "string", pattern: DIGEST_PATTERN };
  if (m.typeName === TIMESTAMP) return { type: "string", format: "date-time" };
  if (seen.includes(m.typeName)) throw new Error(`recursive message ${m.typeName} cannot be a CRD schema`);
  const properties: Record<string, SchemaNode> = {};
  for (const f of m.fields) if (!f.deprecated) properties[f.jsonName] = fieldSchema(f, [...seen, m.typeName]);
  const node: SchemaNode = { type: "object", ...(doc(m.typeName) !== undefined ? { description: doc(m.typeName) } : {}), properties };
  const oneofs = m.oneofs.filter((o) => o.fields.some((f) => !f.deprecated));
  if (oneofs.length === 1) node.oneOf = oneofs[0]!.fields.filter((f) => !f.deprecated).map((f) => ({ required: [f.jsonName] }));
  else if (oneofs.length > 1)
    node.allOf = oneofs.map((o) => ({ oneOf: o.fields.filter((f) => !f.deprecated).map((f) => ({ required: [f.jsonName] })) }));
  return withOverlay(node, m.typeName);
}

function valueSchema(f: DescField, seen: readonly string[]): SchemaNode {
  switch (f.fieldKind) {
    case "scalar":
      return scalarSchema(f.scalar);
    case "enum":
      return enumSchema(f.enum);
    case "message":
      return messageSchema(f.message, seen);
    case "list":
      return {
        type: "array",
        items:
          f.listKind === "scalar" ? scalarSchema(f.scalar) : f.listKind === "enum" ? enumSchema(f.enum) : messageSchema(f.message, seen),
      };
    case "map":
      if (f.mapKey !== ScalarType.STRING) throw new Error(`${f.parent.typeName}.${f.name}: only string map keys map to a CRD object`);
      return {
        type: "object",
        additionalProperties:
          f.mapKind === "scalar" ? scalarSchema(f.scalar) : f.mapKind === "enum" ? enumSchema(f.enum) : messageSchema(f.message, seen),
      };
  }
}

function fieldSchema(f: DescField, seen: readonly string[]): SchemaNode {
  const node = valueSchema(f, seen);
  const d = doc(`${f.parent.typeName}.${f.name}`);
  // The field's own comment wins over its message's.
  const withDoc = d !== undefined ? { ...node, description: d } : node;
  // Keep keys in a stable order: type, description, then the rest.
  const { type, description, ...rest } = withDoc;
  const ordered: SchemaNode = { type, ...(description !== undefined ? { description } : {}), ...rest };
  if (type === undefined) delete ordered.type;
  return withOverlay(ordered, `${f.parent.typeName}.${f.name}`);
}

/** The openAPIV3Schema of TrainingJob: metadata, `.spec` from TrainingJobSpec, `.status` from TrainingJobStatus. */
export function trainingJobOpenApiSchema(): SchemaNode {
  const spec = messageSchema(TrainingJobSpecSchema);
  const status = messageSchema(TrainingJobStatusSchema);
  return {
    type: "object",
    description:
      "A DiLoCoX training run whose checkpoints are registered in the provenance ledger. Generated from deai.training.v1 (TrainingJobSpec, TrainingJobStatus).",
    required: ["spec"],
    properties: {
      apiVersion: { type: "string" },
      kind: { type: "string" },
      metadata: { type: "object" },
      spec: { ...spec, description: "Desired state: deai.training.v1.TrainingJobSpec." },
      status: { ...status, description: "Observed state, written by the trainer-operator: deai.training.v1.TrainingJobStatus." },
    },
  };
}

/** The CustomResourceDefinition object (apiextensions.k8s.io/v1). */
export function trainingJobCrd(): SchemaNode {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${CRD_PLURAL}.${CRD_GROUP}`, labels: { "app.kubernetes.io/part-of": "deai-os" } },
    spec: {
      group: CRD_GROUP,
      scope: "Namespaced",
      names: {
        kind: CRD_KIND,
        listKind: `${CRD_KIND}List`,
        plural: CRD_PLURAL,
        singular: "trainingjob",
        shortNames: ["tj"],
        categories: ["deai"],
      },
      versions: [
        {
          name: CRD_VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: "Phase", type: "string", jsonPath: ".status.phase" },
            { name: "Groups", type: "integer", jsonPath: ".spec.groups.count" },
            { name: "Round", type: "integer", jsonPath: ".status.round" },
            { name: "Tokens", type: "integer", jsonPath: ".status.tokens" },
            { name: "Loss", type: "number", jsonPath: ".status.loss" },
            { name: "Restarts", type: "integer", jsonPath: ".status.restarts" },
            { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
          ],
          schema: { openAPIV3Schema: trainingJobOpenApiSchema() },
        },
      ],
    },
  };
}

/** Every key OVERLAY may use: fields and messages the generator emits. */
export function overlayTargets(): Set<string> {
  const out = new Set<string>();
  const walk = (m: DescMessage): void => {
    if (m.typeName === DIGEST || m.typeName === TIMESTAMP || out.has(m.typeName)) return;
    out.add(m.typeName);
    for (const f of m.fields) {
      if (f.deprecated) continue;
      out.add(`${m.typeName}.${f.name}`);
      if (f.message !== undefined) walk(f.message);
    }
  };
  walk(TrainingJobSpecSchema);
  walk(TrainingJobStatusSchema);
  return out;
}

// --- conversion between the message and the resource -----------------------------------------------

/** Thrown for a resource that does not fit the proto shape: the caller answers INVALID_ARGUMENT. */
export class CrdShapeError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
    this.name = "CrdShapeError";
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** proto3 JSON of one value → its CRD form. */
function valueToCrd(f: DescField, kind: "scalar" | "enum" | "message", v: JsonValue): unknown {
  if (kind === "enum") {
    const e = f.enum!;
    const value = e.values.find((x) => x.name === v);
    return value === undefined || value.number === 0 ? undefined : enumValueCrdName(e, value.name);
  }
  if (kind === "message") return messageToCrd(f.message!, v as JsonObject);
  if (typeof v === "string" && f.scalar !== undefined && is64(f.scalar)) return Number(v);
  return v;
}

function messageToCrd(m: DescMessage, json: JsonObject): unknown {
  if (m.typeName === DIGEST)
    return `${typeof json.algorithm === "string" ? json.algorithm : "sha256"}:${typeof json.hex === "string" ? json.hex : ""}`;
  if (m.typeName === TIMESTAMP) return json;
  const out: Record<string, unknown> = {};
  for (const f of m.fields) {
    const v = json[f.jsonName];
    if (f.deprecated || v === undefined || v === null) continue;
    let c: unknown;
    if (f.fieldKind === "list") c = (v as JsonValue[]).map((x) => valueToCrd(f, f.listKind, x)).filter((x) => x !== undefined);
    else if (f.fieldKind === "map")
      c = Object.fromEntries(Object.entries(v as JsonObject).map(([k, x]) => [k, valueToCrd(f, f.mapKind, x)]));
    else c = valueToCrd(f, f.fieldKind, v);
    if (c !== undefined) out[f.jsonName] = c;
  }
  return out;
}

function valueFromCrd(f: DescField, kind: "scalar" | "enum" | "message", v: unknown, path: string): JsonValue {
  if (kind === "enum") {
    const e = f.enum!;
    const value = e.values.find((x) => x.number !== 0 && enumValueCrdName(e, x.name) === v);
    if (value === undefined) throw new CrdShapeError(path, `must be one of ${enumNames(e).join(", ")}`);
    return value.name;
  }
  if (kind === "message") return messageFromCrd(f.message!, v, path);
  return v as JsonValue;
}

function messageFromCrd(m: DescMessage, v: unknown, path: string): JsonValue {
  if (m.typeName === DIGEST) {
    if (typeof v !== "string" || !new RegExp(DIGEST_PATTERN).test(v))
      throw new CrdShapeError(path, 'must be "sha256:<64 hex>" or "sha512:<128 hex>"');
    const [algorithm, hex] = v.split(":");
    return { algorithm: algorithm!, hex: hex! };
  }
  if (m.typeName === TIMESTAMP) return v as JsonValue;
  if (!isObj(v)) throw new CrdShapeError(path, "must be an object");
  const out: JsonObject = {};
  const byJson = new Map(m.fields.filter((f) => !f.deprecated).map((f) => [f.jsonName, f]));
  for (const [k, x] of Object.entries(v)) {
    const f = byJson.get(k);
    if (f === undefined) throw new CrdShapeError(`${path}.${k}`, "unknown field");
    const p = `${path}.${k}`;
    if (f.fieldKind === "list") {
      if (!Array.isArray(x)) throw new CrdShapeError(p, "must be a list");
      out[k] = x.map((y, i) => valueFromCrd(f, f.listKind, y, `${p}[${i}]`));
    } else if (f.fieldKind === "map") {
      if (!isObj(x)) throw new CrdShapeError(p, "must be an object");
      out[k] = Object.fromEntries(Object.entries(x).map(([key, y]) => [key, valueFromCrd(f, f.mapKind, y, `${p}.${key}`)]));
    } else out[k] = valueFromCrd(f, f.fieldKind, x, p);
  }
  return out;
}

/** A TrainingJob resource as the API server stores it. */
export interface TrainingJobResource {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    generation?: number;
    creationTimestamp?: string;
    annotations?: Record<string, string>;
    [k: string]: unknown;
  };
  spec: Record<string, unknown>;
  status?: Record<string, unknown>;
}

/** The annotation naming the creating actor (TrainingJob.owner_id). */
export const OWNER_ANNOTATION = "deai.dev/owner";

/** TrainingJob message → resource. */
export function crdFromProto(job: TrainingJob): TrainingJobResource {
  const json = toJson(TrainingJobSchema, job) as JsonObject;
  const spec = messageToCrd(TrainingJobSpecSchema, (json.spec ?? {}) as JsonObject) as Record<string, unknown>;
  const status = messageToCrd(TrainingJobStatusSchema, (json.status ?? {}) as JsonObject) as Record<string, unknown>;
  return {
    apiVersion: API_VERSION,
    kind: CRD_KIND,
    metadata: {
      name: job.jobId,
      ...(job.namespace !== "" ? { namespace: job.namespace } : {}),
      ...(job.generation !== 0n ? { generation: Number(job.generation) } : {}),
      ...(job.createdAt !== undefined ? { creationTimestamp: json.createdAt as string } : {}),
      ...(job.ownerId !== "" ? { annotations: { [OWNER_ANNOTATION]: job.ownerId } } : {}),
    },
    spec,
    ...(Object.keys(status).length > 0 ? { status } : {}),
  };
}

/** Resource → TrainingJob message; a field outside the proto shape is a CrdShapeError. */
export function protoFromCrd(obj: unknown): TrainingJob {
  if (!isObj(obj)) throw new CrdShapeError("$", "must be an object");
  if (obj.apiVersion !== API_VERSION || obj.kind !== CRD_KIND) throw new CrdShapeError("$", `must be ${API_VERSION} ${CRD_KIND}`);
  const md = obj.metadata;
  if (!isObj(md) || typeof md.name !== "string" || md.name === "") throw new CrdShapeError("metadata.name", "required");
  const spec = messageFromCrd(TrainingJobSpecSchema, obj.spec ?? {}, "spec");
  const status = obj.status === undefined ? undefined : messageFromCrd(TrainingJobStatusSchema, obj.status, "status");
  const annotations = isObj(md.annotations) ? md.annotations : {};
  const json: JsonObject = {
    jobId: md.name,
    namespace: typeof md.namespace === "string" ? md.namespace : "",
    ownerId: typeof annotations[OWNER_ANNOTATION] === "string" ? annotations[OWNER_ANNOTATION] : "",
    spec,
    ...(status !== undefined ? { status } : {}),
    ...(typeof md.creationTimestamp === "string" ? { createdAt: md.creationTimestamp } : {}),
    ...(typeof md.generation === "number" ? { generation: md.generation } : {}),
  };
  try {
    return fromJson(TrainingJobSchema, json);
  } catch (e) {
    throw new CrdShapeError("$", (e as Error).message);
  }
}

/** An empty job (for tests and defaults). */
export const emptyTrainingJob = (jobId: string): TrainingJob => create(TrainingJobSchema, { jobId });
