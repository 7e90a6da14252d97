/**
 * REST routes compiled from the `google.api.http` options in the contracts, so REST and
 * gRPC are served from the same descriptors and can never drift apart.
 */
import { getOption, hasOption, type DescField, type DescMethod, type DescService } from "@bufbuild/protobuf";

import { http } from "@deai/contracts/google/api/annotations_pb";

export interface RestRoute {
  readonly service: DescService;
  readonly method: DescMethod;
  readonly verb: "GET" | "POST" | "PUT" | "DELETE" | "PATCH";
  readonly template: string;
  /** Request field that the body maps to: "*" (whole message), a field name, or "" (no body). */
  readonly body: string;
  readonly pathFields: readonly DescField[];
  readonly pattern: RegExp;
}

/** The REST routes of a service, one per `google.api.http` rule (additional bindings included). */
export function restRoutes(service: DescService): RestRoute[] {
  const routes: RestRoute[] = [];
  for (const method of service.methods) {
    if (method.methodKind !== "unary" || !hasOption(method, http)) continue;
    const rule = getOption(method, http);
    for (const r of [rule, ...rule.additionalBindings]) {
      const p = r.pattern;
      if (p.case === undefined || p.case === "custom") continue;
      routes.push(compile(service, method, p.case.toUpperCase() as RestRoute["verb"], p.value, r.body));
    }
  }
  return routes;
}

function compile(service: DescService, method: DescMethod, verb: RestRoute["verb"], template: string, body: string): RestRoute {
  const pathFields: DescField[] = [];
  const source = template
    .split("/")
    .map((seg) => {
      const m = /^\{([a-z_][a-z0-9_]*)\}$/.exec(seg);
      if (!m) {
        if (seg.includes("{")) throw new Error(`${method.name}: unsupported path template segment ${seg} (only {field})`);
        return seg.replace(/[.*+?^$()|[\]\\]/g, "\\$&");
      }
      const field = method.input.fields.find((f) => f.name === m[1]);
      if (!field || (field.fieldKind !== "scalar" && field.fieldKind !== "enum")) {
        throw new Error(`${method.name}: path variable {${m[1]}} is not a scalar field of ${method.input.typeName}`);
      }
      pathFields.push(field);
      return "([^/]+)";
    })
    .join("/");
  return { service, method, verb, template, body, pathFields, pattern: new RegExp(`^${source}$`) };
}
