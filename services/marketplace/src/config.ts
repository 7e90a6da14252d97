import { env, loadConfig, serviceConfigSchema, type ConfigOf } from "@deai/kit";

/** The marketplace service's configuration: the kit's variables, with this service's default port. */
export const configSchema = {
  ...serviceConfigSchema,
  PORT: env.int({ default: 7104, min: 0, max: 65535 }),
} as const;

export type MarketplaceConfig = ConfigOf<typeof configSchema>;

/** The only reader of process.env in this service. */
export function loadMarketplaceConfig(source: Record<string, string | undefined> = process.env): MarketplaceConfig {
  return loadConfig(configSchema, source);
}
