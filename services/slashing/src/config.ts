import { env, loadConfig, serviceConfigSchema, type ConfigOf } from "@deai/kit";

/** The slashing service's configuration: the kit's variables, with this service's default port. */
export const configSchema = {
  ...serviceConfigSchema,
  PORT: env.int({ default: 7105, min: 0, max: 65535 }),
} as const;

export type SlashingConfig = ConfigOf<typeof configSchema>;

/** The only reader of process.env in this service. */
export function loadSlashingConfig(source: Record<string, string | undefined> = process.env): SlashingConfig {
  return loadConfig(configSchema, source);
}
