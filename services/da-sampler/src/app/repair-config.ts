import { env } from "@deai/kit";

/** Repair's variables (spread into the service's config schema). */
export const repairConfigSchema = {
  /**
   * Whether this process repairs. Several sampler processes forming one quorum each have their
   * own database: exactly one of them should repair (the others follow its placements over NATS).
   */
  DA_REPAIR_ENABLED: env.bool({ default: true }),
  /** A slot proven unavailable is repaired only once it stayed so this long (no repair for short outages). */
  DA_REPAIR_GRACE_MS: env.int({ default: 4 * 3_600_000, min: 0 }),
  /** Period of the repair loop (trigger scan and job steps). */
  DA_REPAIR_INTERVAL_MS: env.int({ default: 30_000, min: 10 }),
  /** Bytes per multipart part of a rebuilt slot object (S3's minimum part is 5 MiB; test servers take less). */
  DA_REPAIR_PART_BYTES: env.int({ default: 8 * 1024 * 1024, min: 4096 }),
  /** Bytes of one range read of a source slot (whole shards, at most a part): the unit stripes are verified, rebuilt and streamed in. */
  DA_REPAIR_READ_BYTES: env.int({ default: 2 * 1024 * 1024, min: 1 }),
  /** Read windows in flight (read, verified, rebuilt) ahead of the one being written: bounds repair's memory. */
  DA_REPAIR_READ_AHEAD: env.int({ default: 3, min: 1, max: 64 }),
  /** Worker threads (the kit's LeafHashPool) that hash the shards repair reads and rebuilds (every one is checked against its leaf), off the event loop. */
  DA_REPAIR_HASH_THREADS: env.int({ default: 2, min: 1, max: 32 }),
  /** Cap on the bytes a repair reads per second (0 = none): repair must not starve sampling and downloads. */
  DA_REPAIR_MAX_READ_BYTES_PER_S: env.int({ default: 0, min: 0 }),
  /** Deadline of one provider call of repair (range reads, part PUTs, completes). */
  DA_REPAIR_PROVIDER_TIMEOUT_MS: env.int({ default: 60_000, min: 10 }),
} as const;
