import { env, loadConfig, serviceConfigSchema, type ConfigOf } from "@deai/kit";

/** The ledger service's configuration: the kit's variables, with this service's default port. */
export const configSchema = {
  ...serviceConfigSchema,
  PORT: env.int({ default: 7101, min: 0, max: 65535 }),
} as const;

export type LedgerConfig = ConfigOf<typeof configSchema>;

/** The only reader of process.env in this service. */
export function loadLedgerConfig(source: Record<string, string | undefined> = process.env): LedgerConfig {
  return loadConfig(configSchema, source);
}
