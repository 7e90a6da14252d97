import { ConfigError, env, loadConfig, serviceConfigSchema, type ConfigOf } from "@deai/kit";

/**
 * Defaults of every trainer worker pod (the chart's `trainer.*` values): the operator merges
 * them into the pods it builds. Checked at start so a bad chart value fails the rollout.
 */
export interface TrainerPodTemplate {
  readonly image?: string;
  readonly nodeSelector?: Readonly<Record<string, string>>;
  readonly tolerations?: readonly Readonly<Record<string, unknown>>[];
  readonly affinity?: Readonly<Record<string, unknown>>;
  readonly runtimeClassName?: string;
  readonly priorityClassName?: string;
  readonly serviceAccountName?: string;
  /** Kubernetes ResourceRequirements: quantities as strings, e.g. {"nvidia.com/gpu": "1"}. */
  readonly resources?: { readonly requests?: Readonly<Record<string, string>>; readonly limits?: Readonly<Record<string, string>> };
}

/** The trainer-operator service's configuration: the kit's variables, with this service's default port. */
export const configSchema = {
  ...serviceConfigSchema,
  PORT: env.int({ default: 7106, min: 0, max: 65535 }),
  /** Worker pod defaults as JSON (TrainerPodTemplate); the chart renders it from `trainer.*`. */
  TRAINER_POD_TEMPLATE: {
    read: (name: string, source: Record<string, string | undefined>): TrainerPodTemplate => parsePodTemplate(name, source[name] ?? "{}"),
  },
} as const;

export type TrainerOperatorConfig = ConfigOf<typeof configSchema>;

/** The only reader of process.env in this service. */
export function loadTrainerOperatorConfig(source: Record<string, string | undefined> = process.env): TrainerOperatorConfig {
  return loadConfig(configSchema, source);
}

const isMap = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const STRING_FIELDS = ["image", "runtimeClassName", "priorityClassName", "serviceAccountName"] as const;
const KNOWN = new Set<string>([...STRING_FIELDS, "nodeSelector", "tolerations", "affinity", "resources"]);

function parsePodTemplate(name: string, text: string): TrainerPodTemplate {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(name, `not JSON: ${(e as Error).message}`);
  }
  if (!isMap(v)) throw new ConfigError(name, "must be a JSON object");
  const unknown = Object.keys(v).filter((k) => !KNOWN.has(k));
  if (unknown.length > 0) throw new ConfigError(name, `unknown field(s) ${unknown.join(", ")}`);
  for (const f of STRING_FIELDS) if (v[f] !== undefined && typeof v[f] !== "string") throw new ConfigError(name, `${f} must be a string`);
  if (v.nodeSelector !== undefined && (!isMap(v.nodeSelector) || Object.values(v.nodeSelector).some((x) => typeof x !== "string"))) {
    throw new ConfigError(name, "nodeSelector must map label names to strings");
  }
  if (v.tolerations !== undefined && (!Array.isArray(v.tolerations) || !v.tolerations.every(isMap))) {
    throw new ConfigError(name, "tolerations must be a list of objects");
  }
  if (v.affinity !== undefined && !isMap(v.affinity)) throw new ConfigError(name, "affinity must be an object");
  if (v.resources !== undefined) {
    if (!isMap(v.resources)) throw new ConfigError(name, "resources must be an object");
    for (const [k, q] of Object.entries(v.resources)) {
      if (k !== "requests" && k !== "limits") throw new ConfigError(name, `resources.${k} is not requests or limits`);
      if (!isMap(q) || Object.values(q).some((x) => typeof x !== "string" || !/^[0-9]+(\.[0-9]+)?([KMGTPE]i?|[mkMGTPE])?$/.test(x))) {
        throw new ConfigError(name, `resources.${k} must map resource names to quantity strings (e.g. "1", "8Gi", "500m")`);
      }
    }
  }
  return v;
}
