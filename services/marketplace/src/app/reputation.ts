// What the DA sampler says about a provider, kept in `provider_reputation` (so a provider that
// registers later starts from it) and turned into `providers.reliability` by the one mapping in
// domain/reliability.ts. Events may arrive late or twice: each kind is applied only when it is
// newer than what is stored, so a redelivered or reordered event never rolls the score back.
import { sql } from "kysely";

import { reliabilityOf } from "../domain/reliability.js";
import type { Db, Trx } from "./context.js";

/** A `deai.da.reputation_updated`: the Beta mean and the availability fraction at `at`. */
export async function applyReputation(trx: Trx, providerId: string, r: { mean: number; availability: number; at: Date }): Promise<boolean> {
  const clamp = (x: number) => (Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0);
  const res = await sql`
    insert into provider_reputation (provider_id, mean, availability, reputation_at)
    values (${providerId}, ${clamp(r.mean)}, ${clamp(r.availability)}, ${r.at})
    on conflict (provider_id) do update set mean = excluded.mean, availability = excluded.availability, reputation_at = excluded.reputation_at
      where provider_reputation.reputation_at is null or provider_reputation.reputation_at < excluded.reputation_at
    returning 1`.execute(trx);
  if (res.rows.length === 0) return false;
  await refreshReliability(trx, providerId);
  return true;
}

/** A `deai.da.provider_availability_changed`: whether a slot is proven unavailable, at `at`. */
export async function applyAvailability(
  trx: Trx,
  providerId: string,
  a: { unavailable: boolean; unavailableSlots: number; at: Date },
): Promise<boolean> {
  const res = await sql`
    insert into provider_reputation (provider_id, unavailable, unavailable_slots, availability_at)
    values (${providerId}, ${a.unavailable}, ${a.unavailableSlots}, ${a.at})
    on conflict (provider_id) do update set unavailable = excluded.unavailable, unavailable_slots = excluded.unavailable_slots,
      availability_at = excluded.availability_at
      where provider_reputation.availability_at is null or provider_reputation.availability_at < excluded.availability_at
    returning 1`.execute(trx);
  if (res.rows.length === 0) return false;
  await refreshReliability(trx, providerId);
  return true;
}

/** Recomputes a provider's reliability from its stored reputation (a no-op for an unregistered provider). */
export async function refreshReliability(db: Db | Trx, providerId: string): Promise<void> {
  const r = (
    await sql<{ mean: number | null; unavailable: boolean }>`
      select mean, unavailable from provider_reputation where provider_id = ${providerId}`.execute(db)
  ).rows[0];
  const reliability = reliabilityOf({ mean: r?.mean ?? null, unavailable: r?.unavailable ?? false });
  await sql`update providers set reliability = ${reliability} where provider_id = ${providerId}`.execute(db);
}
