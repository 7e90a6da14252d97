import { env, loadConfig, serviceConfigSchema, type ConfigOf } from "@deai/kit";

/** The da-sampler service's configuration: the kit's variables, with this service's default port. */
export const configSchema = {
  ...serviceConfigSchema,
  PORT: env.int({ default: 7103, min: 0, max: 65535 }),
} as const;

export type DaSamplerConfig = ConfigOf<typeof configSchema>;

/** The only reader of process.env in this service. */
export function loadDaSamplerConfig(source: Record<string, string | undefined> = process.env): DaSamplerConfig {
  return loadConfig(configSchema, source);
}
