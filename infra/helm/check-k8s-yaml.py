#!/usr/bin/env python3
"""Offline checks of the Kubernetes YAML in k8s/ (there is no API server to ask).

Usage: check-k8s-yaml.py CRD_FILE... -- EXAMPLE_FILE...

- every file parses as YAML;
- every CRD is apiextensions.k8s.io/v1 with a structural schema: a `type` on every node
  (bar int-or-string / preserve-unknown-fields), no type or default inside oneOf/anyOf/
  allOf/not, defaults that satisfy their own schema, list-map keys that are required,
  printer columns whose jsonPath exists in the schema, exactly one storage version;
- every document of every example is a resource of one of the CRDs and validates
  against that version's schema, with unknown fields reported (kubectl's strict field validation would refuse
  them; the API server would otherwise prune them silently).

CEL rules (x-kubernetes-validations) are counted, not evaluated.
Prints one line per file; exits 1 on the first file with errors, after listing them.
"""
from __future__ import annotations

import datetime
import re
import sys

import yaml


def load_all(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    for d in docs:
        if not isinstance(d, dict):
            raise ValueError(f"{path}: a document is not a mapping")
    return docs


# --- structural schema ---------------------------------------------------------------

JUNCTORS = ("oneOf", "anyOf", "allOf", "not")
FORBIDDEN_IN_JUNCTOR = ("type", "default", "description", "additionalProperties", "nullable")


def is_int_or_string(s: dict) -> bool:
    return bool(s.get("x-kubernetes-int-or-string"))


def check_structural(s: dict, path: str, errors: list[str], cel: list[int]) -> None:
    cel[0] += len(s.get("x-kubernetes-validations", []))
    if "type" not in s and not is_int_or_string(s) and not s.get("x-kubernetes-preserve-unknown-fields"):
        errors.append(f"{path}: no type (structural schemas need one on every node)")
    for j in JUNCTORS:
        branches = s.get(j)
        if branches is None:
            continue
        if is_int_or_string(s) and j == "anyOf":
            continue  # the one allowed form: anyOf [{type: integer}, {type: string}]
        for k, b in enumerate(branches if isinstance(branches, list) else [branches]):
            for bad in FORBIDDEN_IN_JUNCTOR:
                if bad in b:
                    errors.append(f"{path}.{j}[{k}]: sets {bad!r}, not allowed inside {j}")
    for name, sub in (s.get("properties") or {}).items():
        check_structural(sub, f"{path}.{name}", errors, cel)
    if isinstance(s.get("items"), dict):
        check_structural(s["items"], f"{path}[]", errors, cel)
    if isinstance(s.get("additionalProperties"), dict):
        check_structural(s["additionalProperties"], f"{path}{{*}}", errors, cel)
    if s.get("x-kubernetes-list-type") == "map":
        req = set((s.get("items") or {}).get("required", []))
        for key in s.get("x-kubernetes-list-map-keys", []):
            if key not in req:
                errors.append(f"{path}: list-map key {key!r} must be required in the items")
    if "default" in s:
        for e in validate(s["default"], s, f"{path}(default)", strict=True):
            errors.append(f"default does not satisfy its schema: {e}")


def path_exists(schema: dict, json_path: str) -> bool:
    node = schema
    for part in json_path.strip(".").split("."):
        if part == "metadata":
            return True  # metadata is validated by the API server, not the CRD schema
        props = node.get("properties") or {}
        if part not in props:
            return False
        node = props[part]
    return True


# --- validation (the subset of OpenAPI v3 the CRD uses) --------------------------------

TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}


def validate(v, s: dict, path: str, strict: bool) -> list[str]:
    errs: list[str] = []
    if is_int_or_string(s):
        if not (TYPES["integer"](v) or TYPES["string"](v)):
            return [f"{path}: must be an integer or a string"]
    elif "type" in s:
        if isinstance(v, (datetime.date, datetime.datetime)) and s["type"] == "string":
            pass  # YAML timestamps arrive as strings over the wire
        elif not TYPES[s["type"]](v):
            return [f"{path}: must be {s['type']}, got {type(v).__name__} {v!r}"]
    if "enum" in s and v not in s["enum"]:
        errs.append(f"{path}: {v!r} is not one of {s['enum']}")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if "minimum" in s and (v <= s["minimum"] if s.get("exclusiveMinimum") else v < s["minimum"]):
            errs.append(f"{path}: {v} is below the minimum {s['minimum']}{' (exclusive)' if s.get('exclusiveMinimum') else ''}")
        if "maximum" in s and (v >= s["maximum"] if s.get("exclusiveMaximum") else v > s["maximum"]):
            errs.append(f"{path}: {v} is above the maximum {s['maximum']}{' (exclusive)' if s.get('exclusiveMaximum') else ''}")
    if isinstance(v, str):
        if len(v) < s.get("minLength", 0):
            errs.append(f"{path}: shorter than {s['minLength']}")
        if "maxLength" in s and len(v) > s["maxLength"]:
            errs.append(f"{path}: longer than {s['maxLength']}")
        if "pattern" in s and not re.search(s["pattern"], v):
            errs.append(f"{path}: {v!r} does not match {s['pattern']}")
    if isinstance(v, list):
        if len(v) < s.get("minItems", 0):
            errs.append(f"{path}: fewer than {s['minItems']} items")
        if "maxItems" in s and len(v) > s["maxItems"]:
            errs.append(f"{path}: more than {s['maxItems']} items")
        if s.get("x-kubernetes-list-type") == "set" and len({repr(x) for x in v}) != len(v):
            errs.append(f"{path}: duplicate items in a set")
        for k, item in enumerate(v):
            errs += validate(item, s.get("items") or {}, f"{path}[{k}]", strict)
    if isinstance(v, dict) and path.rsplit(".", 1)[-1] != "metadata":
        props = s.get("properties") or {}
        for r in s.get("required", []):
            if r not in v:
                errs.append(f"{path}: missing required field {r!r}")
        addl = s.get("additionalProperties")
        for k, item in v.items():
            if k in props:
                errs += validate(item, props[k], f"{path}.{k}", strict)
            elif isinstance(addl, dict):
                errs += validate(item, addl, f"{path}.{k}", strict)
            elif strict and not s.get("x-kubernetes-preserve-unknown-fields") and addl is not True:
                errs.append(f"{path}: unknown field {k!r}")
    if "oneOf" in s:
        matches = sum(1 for b in s["oneOf"] if not validate(v, {**b}, path, strict=False))
        if matches != 1:
            errs.append(f"{path}: must match exactly one of {s['oneOf']} (matches {matches})")
    if "anyOf" in s and not is_int_or_string(s):
        if not any(not validate(v, b, path, strict=False) for b in s["anyOf"]):
            errs.append(f"{path}: matches none of {s['anyOf']}")
    for b in s.get("allOf", []):
        errs += validate(v, b, path, strict)
    return errs


# --- driver ---------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    sep = argv.index("--") if "--" in argv else len(argv)
    crd_files, example_files = argv[:sep], argv[sep + 1 :]
    schemas: dict[tuple[str, str], dict] = {}
    failed = False

    for path in crd_files:
        errors: list[str] = []
        cel = [0]
        try:
            docs = load_all(path)
        except (yaml.YAMLError, ValueError) as e:
            print(f"FAIL {path}: not valid YAML: {e}")
            failed = True
            continue
        for crd in docs:
            if crd.get("apiVersion") != "apiextensions.k8s.io/v1" or crd.get("kind") != "CustomResourceDefinition":
                errors.append("not an apiextensions.k8s.io/v1 CustomResourceDefinition")
                continue
            spec = crd["spec"]
            want = f"{spec['names']['plural']}.{spec['group']}"
            if crd["metadata"]["name"] != want:
                errors.append(f"metadata.name must be {want}")
            versions = spec.get("versions", [])
            if sum(1 for v in versions if v.get("storage")) != 1:
                errors.append("exactly one version must have storage: true")
            for ver in versions:
                schema = ((ver.get("schema") or {}).get("openAPIV3Schema")) or {}
                if not schema:
                    errors.append(f"version {ver['name']}: no openAPIV3Schema")
                    continue
                check_structural(schema, f"{ver['name']}", errors, cel)
                for col in ver.get("additionalPrinterColumns", []):
                    if not path_exists(schema, col["jsonPath"]):
                        errors.append(f"version {ver['name']}: printer column {col['name']} jsonPath {col['jsonPath']} is not in the schema")
                if "status" in (ver.get("subresources") or {}) and "status" not in (schema.get("properties") or {}):
                    errors.append(f"version {ver['name']}: status subresource without a status schema")
                schemas[(f"{spec['group']}/{ver['name']}", spec["names"]["kind"])] = schema
        if errors:
            failed = True
            print(f"FAIL {path}:")
            for e in errors:
                print(f"  {e}")
        else:
            print(f"ok   {path} (structural schema; {cel[0]} CEL rules not evaluated offline)")

    for path in example_files:
        try:
            docs = load_all(path)
        except (yaml.YAMLError, ValueError) as e:
            print(f"FAIL {path}: not valid YAML: {e}")
            failed = True
            continue
        errors, checked = [], 0
        for d in docs:
            schema = schemas.get((d.get("apiVersion"), d.get("kind")))
            if schema is None:
                # Examples exist to show our resources; one nothing can check is a mistake.
                errors.append(f"{d.get('apiVersion')}/{d.get('kind')}: no CRD among the checked files defines it")
                continue
            checked += 1
            errors += validate(d, schema, d.get("kind", "?"), strict=True)
        if errors:
            failed = True
            print(f"FAIL {path}:")
            for e in errors:
                print(f"  {e}")
        else:
            print(f"ok   {path} ({checked} document(s) valid against the CRD schema)")

    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
