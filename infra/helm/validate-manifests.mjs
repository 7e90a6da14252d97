// Validates every object of a rendered chart (multi-document YAML, from a file or stdin)
// against the Kubernetes JSON schemas, offline:
//
//   - built-in kinds: the npm package kubernetes-models (schemas of the Kubernetes OpenAPI
//     spec, precompiled with ajv: types, required fields, enums, formats);
//   - monitoring.coreos.com/v1 (ServiceMonitor): @kubernetes-models/prometheus-operator;
//   - kinds of the chart's own CRDs (charts/deai/crds/*.yaml): their openAPIV3Schema.
//
// An object of any other kind fails: nothing is passed unchecked. Not checked (as the API
// server would with --validate=strict): unknown fields, which these schemas allow.
//
// Usage: node infra/helm/validate-manifests.mjs <label> [file...]   (reads stdin without files)
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { parseAllDocuments } from "yaml";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
const [label = "manifests", ...files] = process.argv.slice(2);
const text = files.length > 0 ? files.map((f) => readFileSync(f, "utf8")).join("\n---\n") : readFileSync(0, "utf8");

/**
 * A CRD's OpenAPI v3.0 schema in the JSON Schema dialect ajv checks: boolean
 * exclusiveMinimum/exclusiveMaximum (v3.0) become the numeric bounds of draft 2019+, and
 * `nullable: true` admits null.
 */
function toJsonSchema(node) {
  if (Array.isArray(node)) return node.map(toJsonSchema);
  if (node === null || typeof node !== "object") return node;
  const out = Object.fromEntries(Object.entries(node).map(([k, v]) => [k, toJsonSchema(v)]));
  for (const [flag, bound] of [
    ["exclusiveMinimum", "minimum"],
    ["exclusiveMaximum", "maximum"],
  ]) {
    if (out[flag] === true) {
      out[flag] = out[bound];
      delete out[bound];
    } else if (out[flag] === false) delete out[flag];
  }
  if (out.nullable === true && typeof out.type === "string") out.type = [out.type, "null"];
  delete out.nullable;
  return out;
}

/** The chart's CRDs: "<group>/<version> <Kind>" -> ajv validate function of that version's schema. */
async function crdValidators() {
  const require = createRequire(join(root, "node_modules/@kubernetes-models/validate/package.json"));
  const Ajv = require("ajv").default;
  const ajv = new Ajv({ strict: false, allErrors: true, formats: { int32: true, int64: true } });
  require("ajv-formats").default(ajv);
  const out = new Map();
  const dir = join(root, "charts/deai/crds");
  for (const name of readdirSync(dir).filter((f) => f.endsWith(".yaml"))) {
    for (const doc of parseAllDocuments(readFileSync(join(dir, name), "utf8"))) {
      const crd = doc.toJS();
      if (crd?.kind !== "CustomResourceDefinition") continue;
      for (const v of crd.spec.versions) {
        out.set(`${crd.spec.group}/${v.name} ${crd.spec.names.kind}`, ajv.compile(toJsonSchema(v.schema.openAPIV3Schema)));
      }
    }
  }
  return out;
}

/** The kubernetes-models module of an apiVersion and kind, or undefined. */
async function modelOf(apiVersion, kind) {
  const path = apiVersion.startsWith("monitoring.coreos.com/")
    ? `@kubernetes-models/prometheus-operator/${apiVersion}/${kind}`
    : `kubernetes-models/${apiVersion}/${kind}`;
  try {
    return (await import(path))[kind];
  } catch {
    return undefined;
  }
}

const crds = await crdValidators();
const problems = [];
const counts = new Map();
let n = 0;
for (const doc of parseAllDocuments(text)) {
  if (doc.errors.length > 0) {
    problems.push(`YAML: ${doc.errors.map((e) => e.message).join("; ")}`);
    continue;
  }
  const obj = doc.toJS();
  if (obj === null || obj === undefined) continue;
  n++;
  const id = `${obj.kind ?? "?"} ${obj.metadata?.name ?? "?"}`;
  if (typeof obj.apiVersion !== "string" || typeof obj.kind !== "string") {
    problems.push(`${id}: no apiVersion/kind`);
    continue;
  }
  counts.set(obj.kind, (counts.get(obj.kind) ?? 0) + 1);
  const crd = crds.get(`${obj.apiVersion} ${obj.kind}`);
  if (crd) {
    if (!crd(obj)) problems.push(`${id}: ${JSON.stringify(crd.errors)}`);
    continue;
  }
  const Model = await modelOf(obj.apiVersion, obj.kind);
  if (!Model) {
    problems.push(`${id}: no schema for ${obj.apiVersion} ${obj.kind}`);
    continue;
  }
  try {
    new Model(obj).validate();
  } catch (e) {
    problems.push(`${id}: ${e.message}`);
  }
}
if (n === 0) problems.push("no objects");
for (const p of problems) console.error(`FAIL ${label}: ${p}`);
const summary = [...counts].map(([k, c]) => `${c} ${k}`).join(", ");
if (problems.length > 0) process.exit(1);
console.log(`ok   ${label}: ${n} objects valid (${summary})`);
