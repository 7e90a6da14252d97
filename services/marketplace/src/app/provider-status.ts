// A provider's standing in slashing, mirrored into `providers` (what the matching filter reads):
// from slashing's events (events/slashing-status.ts, in the inbox transaction) and from polling
// GetProviderStatus (Market.refreshStanding), both through `applyStanding`. A jailed or tombstoned
// provider gets no new matches, its live leases close as breached with the reason, and their
// groups are marked for re-matching on other providers (rematch.ts).
import { sql } from "kysely";

import type { MarketContext, Trx } from "./context.js";
import type { Leases } from "./leases.js";
import type { StandingStatus } from "./provider-standing.js";

export interface StandingChange {
  readonly status: StandingStatus;
  readonly jailedUntil?: Date | null;
  /** Bonded stake when the source knows it (polling); events leave the mirror's value. */
  readonly bonded?: bigint;
  /** Where it came from, for the close reason: "event" or "poll". */
  readonly source: string;
}

/**
 * Applies a standing inside `trx`. Tombstoned is final (a late "released" does not undo it).
 * Returns the leases closed; a provider the marketplace does not know changes nothing.
 */
export async function applyStanding(
  ctx: MarketContext,
  leases: Leases,
  trx: Trx,
  providerId: string,
  s: StandingChange,
): Promise<string[]> {
  const row = (await sql<{ status: string }>`select status from providers where provider_id = ${providerId} for update`.execute(trx))
    .rows[0];
  if (!row) return [];
  const status = row.status === "tombstoned" ? "tombstoned" : s.status;
  await sql`
    update providers set status = ${status}, jailed_until = ${status === "jailed" ? (s.jailedUntil ?? null) : null},
      stake = ${s.bonded === undefined ? sql`stake` : sql`${s.bonded.toString()}::numeric`}, status_checked_at = ${ctx.clock.now()}
    where provider_id = ${providerId}`.execute(trx);
  if (status === "active") return [];
  const live = await sql<{ lease_id: string }>`
    select lease_id from leases where provider_id = ${providerId} and state in ('active', 'paused') order by lease_id for update`.execute(
    trx,
  );
  for (const l of live.rows)
    await leases.closeIn(trx, l.lease_id, `provider ${status} in slashing (${s.source}); group re-matched elsewhere`, "breached", {
      rematch: true,
    });
  return live.rows.map((l) => l.lease_id);
}
