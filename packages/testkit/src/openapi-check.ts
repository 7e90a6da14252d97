/**
 * The standard validators over a served OpenAPI document: @readme/openapi-parser (schema and
 * structure, as Swagger tooling sees it) and Redocly's recommended ruleset (the lint API of
 * @redocly/openapi-core, what `redocly lint` runs). Returns every problem, empty when clean.
 */
import { validate } from "@readme/openapi-parser";
import { createConfig, lintFromString } from "@redocly/openapi-core";

export async function openApiProblems(doc: unknown): Promise<string[]> {
  const problems: string[] = [];
  const parsed = await validate(structuredClone(doc) as never);
  if (!parsed.valid) for (const e of parsed.errors) problems.push(`openapi-parser: ${e.message}`);
  const config = await createConfig({ extends: ["recommended"] });
  const results = await lintFromString({ source: JSON.stringify(doc), absoluteRef: "/openapi.json", config });
  for (const r of results) {
    if (r.severity === "error") problems.push(`redocly ${r.ruleId}: ${r.message} at ${r.location.map((l) => l.pointer).join(", ")}`);
  }
  return problems;
}
