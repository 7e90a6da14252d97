/**
 * Where a request message can carry a hostile value: every string and integer leaf of the
 * message descriptor, nested messages, repeated fields and map keys and values included,
 * addressed as a path into the message's proto3 JSON form so one value can be planted into
 * any base message (a seed the service test gives, or the empty message).
 */
import { ScalarType, type DescField, type DescMessage, type JsonObject, type JsonValue } from "@bufbuild/protobuf";

/**
 * One step into a JSON value: an object key, or the first element of an array. A key of a
 * oneof member clears the other members there, so planting never sets a oneof twice.
 */
export type JsonStep = { readonly key: string; readonly clears?: readonly string[] } | { readonly index: 0 };

/** A leaf of a request message where a value can be planted. */
export interface FieldSlot {
  /** Dotted proto path for reports, e.g. `spec.provenance{key}` or `envelope.signatures[].keyid`. */
  readonly label: string;
  /** The field this slot belongs to (for a map key or value, the map field). */
  readonly field: DescField;
  /** Steps from the message to the slot; for a map key the value is planted as the last key. */
  readonly steps: readonly JsonStep[];
  /** What goes into the slot. */
  readonly type: "string" | "integer" | "bool" | "float" | "bytes" | "enum" | "wkt" | "container";
  readonly scalar?: ScalarType;
  /** The slot is a map key: the planted value becomes a key whose value is `mapValue`. */
  readonly mapKey?: { readonly value: JsonValue };
  /** True when the slot is a top-level singular or repeated scalar (settable from a URL). */
  readonly topLevelScalar: boolean;
}

const INTEGER = new Set([
  ScalarType.INT32,
  ScalarType.UINT32,
  ScalarType.SINT32,
  ScalarType.FIXED32,
  ScalarType.SFIXED32,
  ScalarType.INT64,
  ScalarType.UINT64,
  ScalarType.SINT64,
  ScalarType.FIXED64,
  ScalarType.SFIXED64,
]);

function scalarType(s: ScalarType): FieldSlot["type"] {
  if (s === ScalarType.STRING) return "string";
  if (s === ScalarType.BOOL) return "bool";
  if (s === ScalarType.BYTES) return "bytes";
  if (INTEGER.has(s)) return "integer";
  return "float";
}

/** A valid JSON value of a map's value type, so a poisoned key is the only fault. */
function sampleMapValue(f: DescField & { fieldKind: "map" }): JsonValue {
  switch (f.mapKind) {
    case "scalar":
      return scalarType(f.scalar) === "string" || scalarType(f.scalar) === "bytes" ? "" : scalarType(f.scalar) === "bool" ? false : 0;
    case "enum":
      return 0;
    case "message":
      return {};
  }
}

// Well-known types have their own JSON forms; they are leaves here, not walked into.
const isWellKnown = (m: DescMessage): boolean => m.typeName.startsWith("google.protobuf.");

/**
 * Every slot of `message`, depth-first, at most `maxDepth` messages deep; a message type
 * already on the path is not entered again (recursive types).
 */
export function requestSlots(message: DescMessage, maxDepth = 5): FieldSlot[] {
  const out: FieldSlot[] = [];
  const walk = (m: DescMessage, steps: JsonStep[], label: string, stack: string[]): void => {
    const top = steps.length === 0;
    for (const f of m.fields) {
      const clears = f.oneof ? f.oneof.fields.filter((x) => x !== f).flatMap((x) => [x.jsonName, x.name]) : undefined;
      const at: JsonStep[] = [...steps, clears ? { key: f.jsonName, clears } : { key: f.jsonName }];
      const name = label ? `${label}.${f.name}` : f.name;
      const enter = (inner: DescMessage, innerSteps: JsonStep[], innerLabel: string): void => {
        if (isWellKnown(inner)) {
          out.push({ label: innerLabel, field: f, steps: innerSteps, type: "wkt", topLevelScalar: false });
          return;
        }
        out.push({ label: innerLabel, field: f, steps: innerSteps, type: "container", topLevelScalar: false });
        if (stack.length < maxDepth && !stack.includes(inner.typeName)) walk(inner, innerSteps, innerLabel, [...stack, inner.typeName]);
      };
      switch (f.fieldKind) {
        case "scalar":
          out.push({ label: name, field: f, steps: at, type: scalarType(f.scalar), scalar: f.scalar, topLevelScalar: top });
          break;
        case "enum":
          out.push({ label: name, field: f, steps: at, type: "enum", topLevelScalar: top });
          break;
        case "message":
          enter(f.message, at, name);
          break;
        case "list":
          out.push({ label: name, field: f, steps: at, type: "container", topLevelScalar: false });
          if (f.listKind === "scalar") {
            out.push({
              label: `${name}[]`,
              field: f,
              steps: [...at, { index: 0 }],
              type: scalarType(f.scalar),
              scalar: f.scalar,
              topLevelScalar: top,
            });
          } else if (f.listKind === "enum") {
            out.push({ label: `${name}[]`, field: f, steps: [...at, { index: 0 }], type: "enum", topLevelScalar: top });
          } else if (!isWellKnown(f.message) && stack.length < maxDepth && !stack.includes(f.message.typeName)) {
            walk(f.message, [...at, { index: 0 }], `${name}[]`, [...stack, f.message.typeName]);
          }
          break;
        case "map": {
          out.push({ label: name, field: f, steps: at, type: "container", topLevelScalar: false });
          out.push({
            label: `${name}{key}`,
            field: f,
            steps: at,
            type: scalarType(f.mapKey),
            scalar: f.mapKey,
            mapKey: { value: sampleMapValue(f) },
            topLevelScalar: false,
          });
          const valueSteps = [...at, { key: "k" }];
          if (f.mapKind === "scalar") {
            out.push({
              label: `${name}{value}`,
              field: f,
              steps: valueSteps,
              type: scalarType(f.scalar),
              scalar: f.scalar,
              topLevelScalar: false,
            });
          } else if (f.mapKind === "enum") {
            out.push({ label: `${name}{value}`, field: f, steps: valueSteps, type: "enum", topLevelScalar: false });
          } else if (!isWellKnown(f.message) && stack.length < maxDepth && !stack.includes(f.message.typeName)) {
            walk(f.message, valueSteps, `${name}{value}`, [...stack, f.message.typeName]);
          }
          break;
        }
      }
    }
  };
  walk(message, [], "", [message.typeName]);
  return out;
}

/** A copy of `base` with `value` planted at `slot` (intermediate objects and arrays created as needed). */
export function plant(base: JsonObject, slot: FieldSlot, value: JsonValue): JsonObject {
  const root = structuredClone<JsonObject>(base);
  let node: JsonValue = root;
  const steps = slot.steps;
  for (let i = 0; i < steps.length; i++) {
    const step = steps[i]!;
    const last = i === steps.length - 1;
    const next = steps[i + 1];
    if ("key" in step) {
      const obj = node as JsonObject;
      for (const k of step.clears ?? []) delete obj[k];
      if (last && !slot.mapKey) {
        obj[step.key] = value;
        return root;
      }
      const fresh: JsonValue = next && "index" in next ? [] : {};
      if (typeof obj[step.key] !== "object" || obj[step.key] === null) obj[step.key] = fresh;
      if (next && "index" in next && !Array.isArray(obj[step.key])) obj[step.key] = [];
      node = obj[step.key]!;
    } else {
      const arr = node as JsonValue[];
      if (last) {
        arr[0] = value;
        return root;
      }
      if (typeof arr[0] !== "object" || arr[0] === null || Array.isArray(arr[0])) arr[0] = {};
      node = arr[0];
    }
  }
  if (slot.mapKey && typeof value === "string") (node as JsonObject)[value] = slot.mapKey.value;
  return root;
}

/** The out-of-range JSON value of an integer scalar (one past its largest value, or negative for unsigned). */
export function outOfRange(scalar: ScalarType): JsonValue {
  switch (scalar) {
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return 2147483648;
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return 4294967296;
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return "18446744073709551616";
    default:
      return "9223372036854775808";
  }
}
