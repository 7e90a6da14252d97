import type { ForwardMigration } from "@deai/kit";

/**
 * Forward-only migrations of the slashing schema, applied in name order after the kit's own
 * (nonces, outbox, inbox). The skeleton owns no tables yet; its domain issue adds them.
 */
export const migrations: Record<string, ForwardMigration> = {};
