import { env, loadConfig, serviceConfigSchema, type ConfigOf } from "@deai/kit";

/** The ingestion service's configuration: the kit's variables, with this service's default port. */
export const configSchema = {
  ...serviceConfigSchema,
  PORT: env.int({ default: 7102, min: 0, max: 65535 }),
} as const;

export type IngestionConfig = ConfigOf<typeof configSchema>;

/** The only reader of process.env in this service. */
export function loadIngestionConfig(source: Record<string, string | undefined> = process.env): IngestionConfig {
  return loadConfig(configSchema, source);
}
