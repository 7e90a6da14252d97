import { sql } from "kysely";

import { accountsMigrations, type ForwardMigration } from "@deai/kit";

/**
 * Forward-only migrations of the marketplace schema, applied in name order after the kit's own
 * (nonces, outbox, inbox): the kit's double-entry tables (escrow and provider revenue), then
 * providers, offers, orders, allocations (the capacity ledger), leases, usage reports and the
 * anchoring queue.
 *
 * What the database guarantees whatever the code does: an offer's free nodes stay within
 * 0 … nodes; a group has at most one live allocation; a (lease, epoch) has one report.
 */
export const migrations: Record<string, ForwardMigration> = {
  ...accountsMigrations,
  "0001_market": async (db) => {
    await sql`
      create table providers (
        provider_id text primary key,
        display_name text not null,
        kinds text[] not null,
        region text not null,
        contact text not null,
        status text not null default 'active' check (status in ('active', 'jailed', 'tombstoned')),
        stake numeric(39,0) not null default 0,
        reliability double precision not null default 0.5 check (reliability between 0 and 1),
        status_checked_at timestamptz,
        registered_at timestamptz not null,
        updated_at timestamptz not null
      )`.execute(db);
    await sql`
      create table gpu_offers (
        offer_id text primary key,
        provider_id text not null references providers (provider_id),
        class_id text not null,
        gpus_per_node integer not null check (gpus_per_node between 1 and 64),
        nodes integer not null check (nodes between 1 and 100000),
        nodes_free integer not null,
        region text not null,
        bandwidth_mbps integer not null check (bandwidth_mbps >= 0),
        measured_bandwidth_mbps integer,
        price numeric(39,0) not null check (price > 0),
        min_lease_ms bigint not null default 0 check (min_lease_ms >= 0),
        available_until timestamptz,
        state text not null check (state in ('active', 'paused', 'withdrawn')),
        created_at timestamptz not null,
        constraint gpu_offers_free_within_nodes check (nodes_free between 0 and nodes)
      )`.execute(db);
    await sql`create index gpu_offers_matchable on gpu_offers (class_id, price, offer_id) where state = 'active' and nodes_free > 0`.execute(
      db,
    );
    await sql`create index gpu_offers_provider on gpu_offers (provider_id)`.execute(db);
    await sql`
      create table storage_offers (
        offer_id text primary key,
        provider_id text not null references providers (provider_id),
        capacity_bytes numeric(20,0) not null check (capacity_bytes > 0),
        available_bytes numeric(20,0) not null,
        price numeric(39,0) not null check (price > 0),
        endpoint text not null,
        bucket text not null,
        region text not null,
        bandwidth_mbps integer not null check (bandwidth_mbps >= 0),
        state text not null check (state in ('active', 'paused', 'withdrawn')),
        created_at timestamptz not null,
        constraint storage_offers_available_within_capacity check (available_bytes between 0 and capacity_bytes)
      )`.execute(db);
    await sql`
      create table orders (
        order_id text primary key,
        tenant_id text not null,
        idempotency_key text not null,
        request_sha256 text not null,
        spec jsonb not null,
        class_id text not null,
        state text not null check (state in ('matching', 'unmatched', 'reserved', 'active', 'completed', 'cancelled', 'expired')),
        escrow_account_id text not null,
        reserved_until timestamptz,
        start_after timestamptz,
        start_before timestamptz,
        explanation jsonb,
        attempts integer not null default 0,
        created_at timestamptz not null,
        updated_at timestamptz not null,
        unique (tenant_id, idempotency_key)
      )`.execute(db);
    await sql`create index orders_live on orders (state, updated_at) where state in ('matching', 'unmatched', 'reserved')`.execute(db);
    await sql`
      create table allocations (
        allocation_id text primary key,
        order_id text not null references orders (order_id),
        group_index integer not null check (group_index >= 0),
        offer_id text not null references gpu_offers (offer_id),
        provider_id text not null,
        nodes integer not null check (nodes > 0),
        gpus integer not null check (gpus > 0),
        price numeric(39,0) not null,
        score jsonb not null,
        state text not null check (state in ('reserved', 'leased', 'released')),
        reserved_until timestamptz not null,
        release_reason text,
        created_at timestamptz not null,
        released_at timestamptz,
        constraint allocations_released check ((state = 'released') = (released_at is not null))
      )`.execute(db);
    await sql`create unique index allocations_one_live_per_group on allocations (order_id, group_index) where state <> 'released'`.execute(
      db,
    );
    await sql`create index allocations_live_offer on allocations (offer_id) where state <> 'released'`.execute(db);
    await sql`
      create table leases (
        lease_id text primary key,
        order_id text not null references orders (order_id),
        group_index integer not null,
        allocation_id text not null unique references allocations (allocation_id),
        provider_id text not null,
        tenant_id text not null,
        offer_id text not null,
        class_id text not null,
        nodes integer not null,
        gpus integer not null,
        price numeric(39,0) not null,
        state text not null check (state in ('active', 'paused', 'ended', 'breached')),
        starts_at timestamptz not null,
        ends_at timestamptz not null,
        epoch_ms bigint not null check (epoch_ms > 0),
        epochs integer not null check (epochs > 0),
        settled_through integer not null default -1,
        held_through integer not null default -1,
        overdrawn_since timestamptz,
        paused_at timestamptz,
        close_reason text,
        closed_at timestamptz,
        state_seq integer not null default 0,
        created_at timestamptz not null
      )`.execute(db);
    await sql`create index leases_order on leases (order_id)`.execute(db);
    await sql`create index leases_provider on leases (provider_id, state)`.execute(db);
    await sql`create index leases_tenant on leases (tenant_id, state)`.execute(db);
    await sql`create index leases_live on leases (state) where state in ('active', 'paused')`.execute(db);
    await sql`
      create table usage_reports (
        lease_id text not null references leases (lease_id),
        epoch integer not null check (epoch >= 0),
        payload_sha256 text not null,
        envelope jsonb not null,
        gpu_seconds bigint not null check (gpu_seconds >= 0),
        amount numeric(39,0) not null,
        settled_at timestamptz not null,
        primary key (lease_id, epoch)
      )`.execute(db);
    // Two different provider-signed reports for one (lease, epoch): equivocation evidence for slashing.
    await sql`
      create table usage_conflicts (
        lease_id text not null,
        epoch integer not null,
        provider_id text not null,
        first_sha256 text not null,
        second_sha256 text not null,
        first_envelope jsonb not null,
        second_envelope jsonb not null,
        detected_at timestamptz not null,
        primary key (lease_id, epoch, second_sha256)
      )`.execute(db);
    await sql`
      create table escrow_owners (
        account_id text primary key,
        owner_id text not null,
        order_id text
      )`.execute(db);
    await sql`
      create table anchors (
        anchor_id text primary key,
        kind text not null,
        subject_id text not null,
        envelope jsonb not null,
        state text not null default 'pending' check (state in ('pending', 'anchored', 'refused')),
        log_index bigint,
        receipt bytea,
        error text,
        attempts integer not null default 0,
        created_at timestamptz not null,
        anchored_at timestamptz
      )`.execute(db);
    await sql`create index anchors_pending on anchors (created_at) where state = 'pending'`.execute(db);
    await sql`create index anchors_subject on anchors (subject_id)`.execute(db);
  },
  // Provider standing from slashing's events, DA reputation, re-matching of a jailed provider's
  // groups (the lease records say which lease replaced which), and equivocation evidence queued
  // for slashing (submitted by the tick until slashing has it: exactly once by evidence hash).
  "0002_standing_reputation_rematch": async (db) => {
    await sql`alter table providers add column jailed_until timestamptz`.execute(db);
    await sql`
      create table provider_reputation (
        provider_id text primary key,
        mean double precision check (mean between 0 and 1),
        availability double precision check (availability between 0 and 1),
        reputation_at timestamptz,
        unavailable boolean not null default false,
        unavailable_slots integer not null default 0,
        availability_at timestamptz
      )`.execute(db);
    await sql`alter table leases add column replaces_lease_id text`.execute(db);
    await sql`alter table leases add column replaced_by_lease_id text`.execute(db);
    await sql`alter table leases add column rematch_state text check (rematch_state in ('pending', 'rematched', 'unmatched', 'unfunded', 'abandoned'))`.execute(
      db,
    );
    await sql`alter table leases add column rematch_until timestamptz`.execute(db);
    await sql`alter table leases add column rematch_explanation jsonb`.execute(db);
    await sql`create index leases_rematch on leases (order_id) where rematch_state in ('pending', 'unmatched', 'unfunded')`.execute(db);
    await sql`
      create table evidence_outbox (
        lease_id text not null,
        epoch integer not null,
        second_sha256 text not null,
        provider_id text not null,
        state text not null default 'pending' check (state in ('pending', 'submitted', 'refused')),
        attempts integer not null default 0,
        next_attempt_at timestamptz not null,
        evidence_id text,
        slash_id text,
        duplicate boolean,
        last_error text,
        created_at timestamptz not null,
        submitted_at timestamptz,
        primary key (lease_id, epoch, second_sha256)
      )`.execute(db);
    await sql`create index evidence_outbox_due on evidence_outbox (next_attempt_at) where state = 'pending'`.execute(db);
  },
  // The change feed the batch matcher's capacity index follows (store/capacity.ts): every
  // write to an offer or a provider stamps the writing transaction's id.
  "0003_capacity_feed": async (db) => {
    await sql`
      create function market_stamp_change_xid() returns trigger language plpgsql as $$
      begin
        new.change_xid := pg_current_xact_id();
        return new;
      end $$`.execute(db);
    for (const table of ["gpu_offers", "providers"]) {
      await sql`alter table ${sql.table(table)} add column change_xid xid8 not null default '0'`.execute(db);
      await sql`create trigger ${sql.raw(`${table}_change_xid`)} before insert or update on ${sql.table(table)}
        for each row execute function market_stamp_change_xid()`.execute(db);
      await sql`create index ${sql.raw(`${table}_change`)} on ${sql.table(table)} (change_xid)`.execute(db);
    }
  },
};
