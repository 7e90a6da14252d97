import { env, loadConfig, serviceConfigSchema, type ConfigOf } from "@deai/kit";

/** The ledger service's configuration: the kit's variables, with this service's default port. */
export const configSchema = {
  ...serviceConfigSchema,
  PORT: env.int({ default: 7101, min: 0, max: 65535 }),
  /** The log's origin line; must be the signing key's name. */
  LEDGER_ORIGIN: env.string({ default: "ledger.deai.dev/log" }),
  /**
   * The log's note signer key (`PRIVATE+KEY+<origin>+<id>+<key>`, from `main.js keygen`).
   * Unset: this replica never signs checkpoints, so it reports not ready (/readyz 503, gRPC
   * health NOT_SERVING) although it still answers what reaches it.
   */
  LEDGER_SIGNING_KEY: env.optionalString(),
  /** How often new entries are integrated and a checkpoint signed. */
  LEDGER_CHECKPOINT_INTERVAL_MS: env.int({ default: 1000, min: 10 }),
  /** Default and cap of Append's wait_for_integration. */
  LEDGER_APPEND_WAIT_MS: env.int({ default: 10_000, min: 0 }),
  LEDGER_APPEND_WAIT_MAX_MS: env.int({ default: 60_000, min: 0 }),
  /**
   * Witnesses whose cosignatures the log accepts: comma-separated C2SP verifier keys of type
   * 0x04 (`name+hexID+base64(0x04 ‖ Ed25519 public key)`). Each witness signs its AddCosignature
   * requests with the actor key of the same Ed25519 key.
   */
  LEDGER_WITNESS_KEYS: env.string({ default: "" }),
  /** Distinct witness cosignatures a checkpoint needs before it is served (0 = publish log-signed checkpoints at once). */
  LEDGER_WITNESS_QUORUM: env.int({ default: 0, min: 0 }),
  /**
   * Worker threads that check envelope signatures (Ed25519) off the event loop; 0 checks them
   * inline. -1 (default): one less than the available CPUs, at least 1, at most 4.
   */
  LEDGER_VERIFY_THREADS: env.int({ default: -1, min: -1, max: 64 }),
  /** Path prefix of the tlog-tiles endpoints ("" serves /checkpoint and /tile/...). */
  LEDGER_TILES_PREFIX: env.string({ default: "" }),
} as const;

export type LedgerConfig = ConfigOf<typeof configSchema>;

/** The only reader of process.env in this service. */
export function loadLedgerConfig(source: Record<string, string | undefined> = process.env): LedgerConfig {
  return loadConfig(configSchema, source);
}
