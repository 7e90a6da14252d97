import { env, loadConfig, serviceConfigSchema, type ConfigOf } from "@deai/kit";

/** The trainer-operator service's configuration: the kit's variables, with this service's default port. */
export const configSchema = {
  ...serviceConfigSchema,
  PORT: env.int({ default: 7106, min: 0, max: 65535 }),
} as const;

export type TrainerOperatorConfig = ConfigOf<typeof configSchema>;

/** The only reader of process.env in this service. */
export function loadTrainerOperatorConfig(source: Record<string, string | undefined> = process.env): TrainerOperatorConfig {
  return loadConfig(configSchema, source);
}
