// Slashing use cases: stake (bond, unbond as a two-phase hold), evidence (verify, refuse with no
// state change, idempotent by hash, one penalty per (provider, kind, window)), the veto window
// and council, applying slashes with their money split, jails and releases. Every money move is
// a transfer on the kit's accounts, in the same transaction as the rows that record why.
import { sql, type Kysely, type Transaction } from "kysely";

import {
  amount as checkedAmount,
  availableBalance,
  createAccount,
  createTransfers,
  getAccounts,
  getTransfer,
  inMoneyTransaction,
  transitionRow,
  type Clock,
  type TransferInput,
} from "@deai/kit";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, PermissionDeniedError } from "@deai/kit/errors";
import {
  computePenalty,
  dsseSign,
  dsseToJson,
  ed25519DsseSigner,
  evidenceFromJson,
  evidenceToJson,
  IN_TOTO_PAYLOAD_TYPE,
  inputsFromJson,
  inputsToJson,
  isLivenessKind,
  isObjectiveKind,
  MAX_ENTRY_SIZE,
  parseSamplingAttestation,
  penaltyToJson,
  ProofError,
  sha256Hex,
  slashRecordPayload,
  verifyEvidence,
  verifyVeto,
  type DsseEnvelope,
  type DsseEnvelopeJson,
  type EvidenceInput,
  type EvidenceJson,
  type Penalty,
  type PenaltyInputs,
  type SlashRecordEvent,
  type SlashRecordPredicate,
} from "@deai/proofs";

import { infractionWindow, sharesInfrastructure, type SlashingParams } from "../domain/parameters.js";
import { slashStates, unbondingStates } from "../domain/status.js";
import type { CheckpointWitness } from "./checkpoint-witness.js";
import { slashingMetrics, type SlashingMetrics } from "./metrics.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any>;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Trx = Transaction<any>;

export const accounts = {
  stake: (p: string) => `stake:${p}`,
  reporter: (r: string) => `reporter:${r}`,
  repairer: (r: string) => `repairer:${r}`,
  external: "external",
  repair: "repair-pool",
  treasury: "treasury",
} as const;

export interface StakeView {
  readonly providerId: string;
  readonly bonded: bigint;
  readonly unbonding: readonly { unbondingId: string; amount: bigint; startedAt: Date; completesAt: Date }[];
  readonly slashedTotal: bigint;
  readonly status: string;
  readonly jailedUntil: Date | null;
  readonly statusSlashId: string | null;
}

export interface EvidenceView {
  readonly evidenceId: string;
  readonly kind: EvidenceInput["kind"];
  readonly providerId: string;
  readonly reporterId: string;
  readonly infractionAt: Date;
  readonly submittedAt: Date;
  readonly slashId: string;
  readonly body: EvidenceJson;
}

export interface RecordView {
  readonly event: SlashRecordEvent;
  readonly envelope: DsseEnvelopeJson;
  readonly createdAt: Date;
  readonly ledgerIndex: bigint | null;
  /** The ledger receipt in proto3 JSON (deai.ledger.v1.Receipt), once anchored. */
  readonly receipt: unknown;
}

export interface SlashView {
  readonly slashId: string;
  readonly evidenceId: string;
  readonly kind: EvidenceInput["kind"];
  readonly providerId: string;
  /** The penalty computed at proposal. */
  readonly amount: bigint;
  /** What was actually taken, once applied. */
  readonly taken: bigint | null;
  readonly baseFractionBps: number;
  readonly fractionBps: number;
  readonly correlatedSlashes: number;
  readonly consequence: string;
  readonly state: "pending_veto" | "vetoed" | "applied";
  readonly infractionAt: Date;
  readonly proposedAt: Date;
  readonly vetoDeadline: Date;
  readonly appliedAt: Date | null;
  readonly reporterId: string;
  readonly reporterReward: bigint;
  readonly vetoedBy: string | null;
  readonly vetoReason: string | null;
  readonly records: readonly RecordView[];
}

export interface SlashFilter {
  readonly providerId?: string;
  readonly state?: SlashView["state"];
  readonly kind?: EvidenceInput["kind"];
  readonly limit: number;
  readonly offset: number;
}

interface SlashRow {
  slash_id: string;
  evidence_id: string;
  kind: EvidenceInput["kind"];
  provider_id: string;
  amount: string;
  taken: string | null;
  base_fraction_bps: number;
  fraction_bps: number;
  correlated_slashes: number;
  consequence: string;
  state: SlashView["state"];
  infraction_at: Date;
  proposed_at: Date;
  veto_deadline: Date;
  applied_at: Date | null;
  reporter_id: string;
  reporter_reward: string;
  vetoed_by: string | null;
  veto_reason: string | null;
}

const SLASH_COLUMNS = sql.raw(`slash_id, evidence_id, kind, provider_id, amount::text as amount, taken::text as taken, base_fraction_bps,
  fraction_bps, correlated_slashes, consequence, state, infraction_at, proposed_at, veto_deadline, applied_at, reporter_id,
  reporter_reward::text as reporter_reward, vetoed_by, veto_reason`);

export interface SubmitResult {
  readonly evidenceId: string;
  readonly slashId: string;
  readonly duplicate: boolean;
  /** False when another evidence already holds the penalty for this (provider, kind, window). */
  readonly newPenalty: boolean;
}

/** Events published through the outbox (subjects `deai.slashing.*`); payloads are JSON-free protobuf built by the events module. */
export interface SlashingEvents {
  stakeChanged(trx: Trx, providerId: string): Promise<void>;
  evidenceAccepted(trx: Trx, evidenceId: string): Promise<void>;
  slashProposed(trx: Trx, slashId: string): Promise<void>;
  slashApplied(trx: Trx, slashId: string): Promise<void>;
  slashVetoed(trx: Trx, slashId: string): Promise<void>;
  providerJailed(trx: Trx, providerId: string, until: Date, slashId: string): Promise<void>;
  providerReleased(trx: Trx, providerId: string, jailedUntil: Date): Promise<void>;
  providerTombstoned(trx: Trx, providerId: string, slashId: string): Promise<void>;
}

export const noEvents: SlashingEvents = {
  stakeChanged: async () => {},
  evidenceAccepted: async () => {},
  slashProposed: async () => {},
  slashApplied: async () => {},
  slashVetoed: async () => {},
  providerJailed: async () => {},
  providerReleased: async () => {},
  providerTombstoned: async () => {},
};

/**
 * Most bytes a veto envelope may take in DSSE JSON. A vetoable slash's record reserves this much
 * for each of the threshold's vetoes, so its `vetoed` record still fits a ledger entry.
 */
export const MAX_VETO_JSON_SIZE = 2_048;

/** Bytes kept free in a slash record for the inputs re-observed at apply time (counts and stakes only grow, by a few digits). */
export const RECORD_HEADROOM = 512;

/** Bytes an envelope takes as a ledger leaf (the ledger hashes its DSSE JSON; every field is ASCII). */
function leafSize(e: DsseEnvelope): number {
  return Buffer.byteLength(JSON.stringify(dsseToJson(e)), "utf8");
}

const maxBig = (a: bigint, b: bigint): bigint => (a > b ? a : b);

function positive(a: bigint, field: string): bigint {
  checkedAmount(a, field);
  if (a <= 0n) throw new InvalidArgumentError(`${field} must be positive`, { field });
  return a;
}

function key(k: string): string {
  if (k.length === 0 || k.length > 100)
    throw new InvalidArgumentError("idempotency_key must be 1 to 100 characters", { field: "idempotency_key" });
  return k;
}

export class Slashing {
  private readonly signer;

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    readonly params: SlashingParams,
    /** The service's key seed: it signs slash records. */
    serviceSeed: Uint8Array,
    private readonly events: SlashingEvents = noEvents,
    private readonly metrics: SlashingMetrics = slashingMetrics(),
  ) {
    this.signer = ed25519DsseSigner(serviceSeed);
  }

  private checkpointWitness?: CheckpointWitness;

  /** Checks every unavailability attestation's challenge seed against the ledger before it counts. */
  witnessChallengeSeedsWith(w: CheckpointWitness): void {
    this.checkpointWitness = w;
  }

  /** The service's actor id (the slash records' signer). */
  get serviceKey(): string {
    return this.signer.keyid;
  }

  /** Opens the shared accounts (idempotent). */
  async init(): Promise<void> {
    const ledger = this.params.currency;
    await createAccount(this.db, this.clock, { id: accounts.external, ledger, kind: "external" });
    await createAccount(this.db, this.clock, {
      id: accounts.treasury,
      ledger,
      kind: "treasury",
      flags: { debitsMustNotExceedCredits: true },
    });
    await createAccount(this.db, this.clock, { id: accounts.repair, ledger, kind: "repair", flags: { debitsMustNotExceedCredits: true } });
  }

  private async ensureProvider(trx: Trx, providerId: string): Promise<void> {
    await createAccount(trx, this.clock, {
      id: accounts.stake(providerId),
      ledger: this.params.currency,
      kind: "stake",
      flags: { debitsMustNotExceedCredits: true },
    });
    await sql`insert into providers (provider_id, updated_at) values (${providerId}, ${this.clock.now()}) on conflict do nothing`.execute(
      trx,
    );
  }

  /** Adds stake from outside (the `external` account) to the provider's stake account. Idempotent by key. */
  async bond(providerId: string, amount: bigint, idempotencyKey: string): Promise<StakeView> {
    positive(amount, "amount");
    key(idempotencyKey);
    await inMoneyTransaction(this.db, async (trx) => {
      await this.ensureProvider(trx, providerId);
      const st = await this.statusOf(trx, providerId);
      if (st === "tombstoned") throw new FailedPreconditionError(`provider ${providerId} is tombstoned: it cannot bond`, { providerId });
      const ins =
        await sql`insert into bonds values (${providerId}, ${idempotencyKey}, ${amount.toString()}) on conflict do nothing returning 1`.execute(
          trx,
        );
      if (ins.rows.length === 0) {
        const prev = await sql<{
          amount: string;
        }>`select amount from bonds where provider_id = ${providerId} and idempotency_key = ${idempotencyKey}`.execute(trx);
        if (BigInt(prev.rows[0]!.amount) !== amount)
          throw new FailedPreconditionError(`idempotency_key ${idempotencyKey} was used for another amount`, { field: "idempotency_key" });
        return;
      }
      await createTransfers(trx, this.clock, [
        {
          kind: "single",
          id: `bond:${providerId}:${idempotencyKey}`,
          debitAccountId: accounts.external,
          creditAccountId: accounts.stake(providerId),
          amount: checkedAmount(amount),
          ledger: this.params.currency,
          code: "stake.bond",
          reference: providerId,
        },
      ]);
      await this.stakeChange(trx, providerId, amount, "bond");
      await this.events.stakeChanged(trx, providerId);
    });
    return this.stake(providerId);
  }

  /**
   * Starts unbonding: a pending transfer stake → external holds the amount (still in the stake
   * account, still slashable) until `completesAt`, when `matureUnbondings` posts it.
   */
  async unbond(providerId: string, amount: bigint, idempotencyKey: string): Promise<{ unbondingId: string; completesAt: Date }> {
    positive(amount, "amount");
    key(idempotencyKey);
    const unbondingId = sha256Hex(new TextEncoder().encode(`unbond\n${providerId}\n${idempotencyKey}`)).slice(0, 32);
    return inMoneyTransaction(this.db, async (trx) => {
      // Serialise a provider's unbondings: a concurrent retry with the same key waits, then reads the first one's row.
      await sql`select 1 from providers where provider_id = ${providerId} for update`.execute(trx);
      const prev = await sql<{
        amount: string;
        completes_at: Date;
      }>`select amount, completes_at from unbondings where unbonding_id = ${unbondingId}`.execute(trx);
      if (prev.rows[0]) {
        if (BigInt(prev.rows[0].amount) !== amount)
          throw new FailedPreconditionError(`idempotency_key ${idempotencyKey} was used for another amount`, { field: "idempotency_key" });
        return { unbondingId, completesAt: prev.rows[0].completes_at };
      }
      const [acct] = await getAccounts(trx, [accounts.stake(providerId)]);
      if (!acct || availableBalance(acct) < amount)
        throw new FailedPreconditionError(`amount ${amount} exceeds the bonded stake ${acct ? availableBalance(acct) : 0n}`, {
          field: "amount",
        });
      const now = this.clock.now();
      const completesAt = new Date(now.getTime() + this.params.unbondingDelayMs);
      const holdId = `unbond:${unbondingId}:0`;
      await createTransfers(trx, this.clock, [
        {
          kind: "pending",
          id: holdId,
          debitAccountId: accounts.stake(providerId),
          creditAccountId: accounts.external,
          amount: checkedAmount(amount),
          ledger: this.params.currency,
          code: "stake.unbond",
          reference: providerId,
        },
      ]);
      await sql`insert into unbondings (unbonding_id, provider_id, idempotency_key, amount, hold_id, started_at, completes_at)
        values (${unbondingId}, ${providerId}, ${idempotencyKey}, ${amount.toString()}, ${holdId}, ${now}, ${completesAt})`.execute(trx);
      await this.events.stakeChanged(trx, providerId);
      return { unbondingId, completesAt };
    });
  }

  /** Posts every unbonding whose delay has passed; returns how many. */
  async matureUnbondings(limit = 500): Promise<number> {
    const due = await sql<{ unbonding_id: string }>`
      select unbonding_id from unbondings u where state = 'unbonding' and completes_at <= ${this.clock.now()}
        and not exists (select 1 from slashes s where s.provider_id = u.provider_id and s.state = 'pending_veto')
      order by completes_at limit ${limit}`.execute(this.db);
    await this.eachIsolated(
      "mature",
      due.rows,
      (r) => r.unbonding_id,
      ({ unbonding_id }) =>
        inMoneyTransaction(this.db, async (trx): Promise<boolean> => {
          const row = await transitionRow<"unbonding" | "completed", { provider_id: string; amount: string; hold_id: string }>(
            trx,
            unbondingStates,
            {
              table: "unbondings",
              key: { unbonding_id },
              to: "completed",
            },
          ).catch((e: unknown) => {
            // Another replica completed it first.
            if (e instanceof FailedPreconditionError) return undefined;
            throw e;
          });
          if (!row) return false;
          const amt = BigInt(row.amount);
          if (amt > 0n) await createTransfers(trx, this.clock, [{ kind: "post", id: `${row.hold_id}:post`, pendingId: row.hold_id }]);
          await this.stakeChange(trx, row.provider_id, -amt, "unbonded");
          await this.events.stakeChanged(trx, row.provider_id);
          return true;
        }),
    );
    return due.rows.length;
  }

  /**
   * Runs one tick step on every item in its own transaction: an item that throws is counted
   * (`deai.slashing.tick_failures`, by step) and skipped, so it never blocks the others; the
   * failures are thrown together (AggregateError) after the rest ran. Returns how many did work.
   */
  private async eachIsolated<T>(step: string, items: readonly T[], id: (t: T) => string, run: (t: T) => Promise<boolean>): Promise<number> {
    let n = 0;
    const failed: { id: string; err: unknown }[] = [];
    for (const item of items) {
      try {
        if (await run(item)) n++;
      } catch (err) {
        this.metrics.tickFailures.add(1, { step });
        failed.push({ id: id(item), err });
      }
    }
    if (failed.length > 0)
      throw new AggregateError(
        failed.map((f) => f.err),
        `slashing ${step}: ${failed.length} of ${items.length} failed (${failed
          .slice(0, 5)
          .map((f) => `${f.id}: ${(f.err as Error).message}`)
          .join("; ")}); the others were processed`,
      );
    return n;
  }

  private async stakeChange(trx: Trx, providerId: string, delta: bigint, reason: string): Promise<void> {
    await sql`insert into stake_changes (provider_id, at, delta, reason) values (${providerId}, ${this.clock.now()}, ${delta.toString()}, ${reason})`.execute(
      trx,
    );
  }

  private async stakeAt(trx: Trx, providerId: string, at: Date): Promise<bigint> {
    const r = await sql<{
      s: string;
    }>`select coalesce(sum(delta), 0)::text as s from stake_changes where provider_id = ${providerId} and at <= ${at}`.execute(trx);
    return BigInt(r.rows[0]!.s);
  }

  private async statusOf(trx: Trx | Db, providerId: string): Promise<string | undefined> {
    const r = await sql<{ status: string }>`select status from providers where provider_id = ${providerId}`.execute(trx);
    return r.rows[0]?.status;
  }

  /**
   * Verifies evidence and proposes its slash. Refusals (does not verify, too old, from the
   * future, against a tombstoned provider) throw with nothing stored. The same evidence again
   * returns the existing record (`duplicate`); other evidence for a (provider, kind, window)
   * that already has a penalty is recorded against that penalty (`newPenalty: false`).
   */
  async submitEvidence(e: EvidenceInput, reporterId: string): Promise<SubmitResult> {
    try {
      const r = await this.submit(e, reporterId);
      this.metrics.evidence.add(1, { kind: e.kind, outcome: r.duplicate ? "duplicate" : r.newPenalty ? "accepted" : "recorded" });
      if (r.newPenalty) this.metrics.slashes.add(1, { kind: e.kind, state: "proposed" });
      return r;
    } catch (err) {
      this.metrics.evidence.add(1, { kind: e.kind, outcome: "refused" });
      throw err;
    }
  }

  private async submit(e: EvidenceInput, reporterId: string): Promise<SubmitResult> {
    let v;
    try {
      v = verifyEvidence(e, this.params.trust);
    } catch (err) {
      if (err instanceof ProofError) throw new InvalidArgumentError(`evidence does not verify: ${err.message}`, { reason: err.code });
      throw err;
    }
    // The reporter reward comes out of the accused's stake: reporting oneself would hand a tenth of the slash back.
    if (reporterId === v.provider)
      throw new PermissionDeniedError(
        `provider ${v.provider} cannot report evidence against itself (the reporter reward is paid from its stake)`,
        {
          reason: "self-report",
        },
      );
    const existing = await sql<{ slash_id: string }>`select slash_id from evidence where evidence_id = ${v.evidenceId}`.execute(this.db);
    if (existing.rows[0]) return { evidenceId: v.evidenceId, slashId: existing.rows[0].slash_id, duplicate: true, newPenalty: false };
    // The challenge seed must be a tree head of the ledger (the verifier only checks the derivation from it).
    if (e.kind === "unavailability" && this.checkpointWitness) {
      const t = parseSamplingAttestation(e.attestation.payload).trigger;
      if (t) await this.checkpointWitness(t.checkpointSize, t.checkpointRoot);
    }
    const now = this.clock.now();
    const age = now.getTime() - v.infractionAtMs;
    if (age > this.params.evidenceMaxAgeMs)
      throw new FailedPreconditionError(`evidence is ${age} ms old; the maximum age is ${this.params.evidenceMaxAgeMs} ms`, {
        reason: "expired",
      });
    // Every statement the evidence rests on must be within the max age, not only the latest (equivocation's earlier one).
    const oldest = now.getTime() - (v.earliestAtMs ?? v.infractionAtMs);
    if (oldest > this.params.evidenceMaxAgeMs)
      throw new FailedPreconditionError(
        `evidence rests on a statement ${oldest} ms old; the maximum age is ${this.params.evidenceMaxAgeMs} ms`,
        { reason: "expired" },
      );
    if (age < -300_000) throw new InvalidArgumentError(`the infraction is ${-age} ms in the future`, { reason: "future" });
    const p = this.params.penalty;
    const window = infractionWindow(p, v.kind, v.infractionAtMs);
    const slashId = sha256Hex(new TextEncoder().encode(`slash\n${v.provider}\n${v.kind}\n${window}`)).slice(0, 32);
    const infractionAt = new Date(v.infractionAtMs);
    return inMoneyTransaction(this.db, async (trx) => {
      await this.ensureProvider(trx, v.provider);
      const st = await sql<{ status: string }>`select status from providers where provider_id = ${v.provider} for update`.execute(trx);
      if (st.rows[0]!.status === "tombstoned")
        throw new FailedPreconditionError(`provider ${v.provider} is tombstoned: it is already permanently excluded`, {
          reason: "tombstoned",
        });
      // The penalty this evidence is recorded against: its window's, else (liveness) the ongoing outage's, else a new one.
      const held = await sql`select 1 from slashes where slash_id = ${slashId}`.execute(trx);
      const joined =
        held.rows.length > 0
          ? slashId
          : isLivenessKind(v.kind)
            ? await this.ongoingOutage(trx, v.kind, v.provider, infractionAt)
            : undefined;
      const target = joined ?? slashId;
      const ins =
        await sql`insert into evidence values (${v.evidenceId}, ${v.kind}, ${v.provider}, ${reporterId}, ${infractionAt}, ${now}, ${target}, ${JSON.stringify(evidenceToJson(e))}::jsonb)
        on conflict do nothing returning 1`.execute(trx);
      if (ins.rows.length === 0) return { evidenceId: v.evidenceId, slashId: target, duplicate: true, newPenalty: false };
      await this.events.evidenceAccepted(trx, v.evidenceId);
      if (joined) {
        if (joined !== slashId) await this.rejailForOutage(trx, v.provider, joined, now);
        return { evidenceId: v.evidenceId, slashId: joined, duplicate: false, newPenalty: false };
      }
      const stakeAtInfraction = await this.stakeAt(trx, v.provider, infractionAt);
      const inputs = await this.observe(trx, v.kind, v.provider, infractionAt, stakeAtInfraction, v.signers, v.quorumSize);
      const penalty = computePenalty(p, inputs);
      const vetoDeadline = new Date(now.getTime() + this.params.vetoWindowMs);
      const record: Omit<SlashRecordPredicate, "event" | "at"> = {
        slashId,
        evidenceId: v.evidenceId,
        kind: v.kind,
        provider: v.provider,
        reporter: reporterId,
        currency: this.params.currency,
        infractionAt: infractionAt.toISOString(),
        proposedAt: now.toISOString(),
        vetoDeadline: vetoDeadline.toISOString(),
        evidence: evidenceToJson(e),
        trust: this.params.trust,
        params: p,
        inputs: inputsToJson(inputs),
        penalty: penaltyToJson(penalty),
      };
      this.checkRecordFits(record, penalty);
      await sql`insert into slashes (slash_id, evidence_id, kind, provider_id, infraction_window, state, amount, base_fraction_bps, fraction_bps,
          correlated_slashes, consequence, reporter_id, reporter_reward, infraction_at, proposed_at, veto_deadline, record)
        values (${slashId}, ${v.evidenceId}, ${v.kind}, ${v.provider}, ${window}, 'pending_veto', ${penalty.amount.toString()}, ${penalty.baseBps},
          ${penalty.fractionBps}, ${inputs.correlatedSlashes}, ${penalty.consequence}, ${reporterId}, ${penalty.reporterReward.toString()},
          ${infractionAt}, ${now}, ${vetoDeadline}, ${JSON.stringify(record)}::jsonb)`.execute(trx);
      // Jail and tombstone protect the network at once; funds wait for the veto window.
      if (penalty.consequence === "tombstone") {
        await sql`update providers set status = 'tombstoned', jailed_until = null, status_slash_id = ${slashId}, updated_at = ${now} where provider_id = ${v.provider}`.execute(
          trx,
        );
        await this.events.providerTombstoned(trx, v.provider, slashId);
        await this.writeRecord(trx, slashId, "tombstoned");
      } else if (penalty.consequence === "jail") {
        const until = new Date(now.getTime() + penalty.jailMs);
        const eff = await sql<{
          jailed_until: Date;
        }>`update providers set status = 'jailed', jailed_until = greatest(coalesce(jailed_until, ${until}), ${until}), status_slash_id = ${slashId}, updated_at = ${now}
          where provider_id = ${v.provider} returning jailed_until`.execute(trx);
        // The event reports the effective end (the latest of every running jail), not this slash's own.
        await this.events.providerJailed(trx, v.provider, eff.rows[0]!.jailed_until, slashId);
        await this.writeRecord(trx, slashId, "jailed", { jailedUntil: until });
      }
      await this.events.slashProposed(trx, slashId);
      return { evidenceId: v.evidenceId, slashId, duplicate: false, newPenalty: true };
    });
  }

  /**
   * A fault that continues an outage jails the provider again for the outage's slash's jail
   * length, from now, when that ends later than the jail it is in (if any): no new penalty, but
   * a provider still failing stays out of the marketplace. The jail, its event and its record
   * commit together.
   */
  private async rejailForOutage(trx: Trx, providerId: string, outageSlashId: string, now: Date): Promise<void> {
    const r = await sql<{ jail_ms: string | null }>`
      select record->'penalty'->>'jailMs' as jail_ms from slashes where slash_id = ${outageSlashId} and consequence = 'jail'`.execute(trx);
    const jailMs = Number(r.rows[0]?.jail_ms ?? 0);
    if (jailMs <= 0) return;
    const until = new Date(now.getTime() + jailMs);
    const up = await sql<{ jailed_until: Date }>`
      update providers set status = 'jailed', jailed_until = ${until}, status_slash_id = ${outageSlashId}, updated_at = ${now}
      where provider_id = ${providerId} and status <> 'tombstoned' and (status <> 'jailed' or jailed_until is null or jailed_until < ${until})
      returning jailed_until`.execute(trx);
    if (up.rows.length === 0) return;
    await this.events.providerJailed(trx, providerId, until, outageSlashId);
    await this.writeRecord(trx, outageSlashId, "jailed", { jailedUntil: until });
  }

  /**
   * The slash of the outage a liveness fault continues, if any: a penalty of the same provider
   * and kind (not vetoed, not suspended by the guard) with evidence whose infraction lies within
   * one window of `at` on either side. An outage is a run of such faults with no gap longer than
   * the kind's window, and it costs one penalty (and one jail) however many windows it spans;
   * a fault after a longer gap is a new outage and escalates. The caller holds the provider's
   * row lock, so concurrent replicas agree.
   */
  private async ongoingOutage(trx: Trx, kind: EvidenceInput["kind"], provider: string, at: Date): Promise<string | undefined> {
    const w = this.params.penalty.windowMs[kind];
    const r = await sql<{ slash_id: string }>`
      select e.slash_id from evidence e join slashes s on s.slash_id = e.slash_id
      where e.provider_id = ${provider} and e.kind = ${kind} and s.state <> 'vetoed' and s.record->'penalty'->>'suspended' is null
        and e.infraction_at between ${new Date(at.getTime() - w)} and ${new Date(at.getTime() + w)}
      order by s.infraction_at, s.slash_id limit 1`.execute(trx);
    return r.rows[0]?.slash_id;
  }

  /**
   * Refuses evidence whose slash records could not be anchored: the largest record the slash
   * can produce (the longest event, `taken`, `jailedUntil`, and for a vetoable kind the
   * threshold's vetoes at MAX_VETO_JSON_SIZE each), signed as the service signs it, must fit
   * the ledger's entry (MAX_ENTRY_SIZE) with RECORD_HEADROOM to spare. Throws inside the
   * submit transaction, so nothing is stored.
   */
  private checkRecordFits(record: Omit<SlashRecordPredicate, "event" | "at">, penalty: Penalty): void {
    const vetoSlot: DsseEnvelopeJson = { payloadType: IN_TOTO_PAYLOAD_TYPE, payload: "", signatures: [] };
    const fill = MAX_VETO_JSON_SIZE - JSON.stringify(vetoSlot).length;
    const at = new Date(8.64e15).toISOString();
    const largest: SlashRecordPredicate = {
      ...record,
      event: "tombstoned",
      at,
      taken: penalty.amount.toString(),
      jailedUntil: at,
      ...(isObjectiveKind(record.kind)
        ? {}
        : { vetoes: Array.from({ length: this.params.vetoThreshold }, () => ({ ...vetoSlot, payload: "A".repeat(fill) })) }),
    };
    const size = leafSize(dsseSign(IN_TOTO_PAYLOAD_TYPE, slashRecordPayload(largest), [this.signer]));
    const limit = MAX_ENTRY_SIZE - RECORD_HEADROOM;
    if (size > limit)
      throw new InvalidArgumentError(
        `evidence is too large: its slash record would take up to ${size} bytes as a ledger entry; the limit is ${limit} (the ledger's ${MAX_ENTRY_SIZE} less ${RECORD_HEADROOM} for re-observed inputs)`,
        { reason: "too-large" },
      );
  }

  /** What the penalty depends on besides the evidence, observed now. */
  private async observe(
    trx: Trx,
    kind: EvidenceInput["kind"],
    provider: string,
    at: Date,
    stake: bigint,
    signers?: number,
    quorumSize?: number,
  ) {
    const p = this.params.penalty;
    const t = at.getTime();
    // Only providers bonded at least the minimum stake count for the guard: dust bonds cannot dilute it.
    const minBonded = this.params.minStake > 0n ? this.params.minStake : 1n;
    const prior = await sql<{
      n: number;
    }>`select count(*)::int as n from slashes where provider_id = ${provider} and kind in ('unavailability', 'lease-breach')
      and state <> 'vetoed' and fraction_bps > 0 and infraction_at >= ${new Date(t - p.escalationLookbackMs)} and infraction_at < ${at}`.execute(
      trx,
    );
    const corr = await sql<{ provider_id: string; s: string }>`
      select provider_id, (record->'inputs'->>'stakeAtInfraction')::numeric::text as s
      from slashes where kind = ${kind} and provider_id <> ${provider} and state <> 'vetoed'
        and infraction_at between ${new Date(t - p.correlationWindowMs)} and ${new Date(t + p.correlationWindowMs)}`.execute(trx);
    const infra = this.params.infrastructure ?? {};
    let correlatedStake = 0n;
    let sharedInfraStake = 0n;
    for (const c of corr.rows) {
      correlatedStake += BigInt(c.s);
      if (sharesInfrastructure(infra[provider], infra[c.provider_id])) sharedInfraStake += BigInt(c.s);
    }
    const total = await sql<{ s: string; n: number }>`
      select coalesce(sum(credits_posted - debits_posted), 0)::text as s, count(*) filter (where credits_posted - debits_posted >= ${minBonded.toString()}::numeric)::int as n
      from money_accounts where kind = 'stake'`.execute(trx);
    const faulting = await sql<{
      n: number;
    }>`select count(distinct provider_id)::int as n from slashes where kind in ('unavailability', 'lease-breach')
      and provider_id <> ${provider} and infraction_at between ${new Date(t - p.guardWindowMs)} and ${new Date(t + p.guardWindowMs)}`.execute(
      trx,
    );
    return {
      kind,
      stakeAtInfraction: stake,
      priorLivenessFaults: isLivenessKind(kind) ? prior.rows[0]!.n : 0,
      correlatedSlashes: corr.rows.length,
      correlatedStake,
      // Only when the provider's infrastructure is known: records of others stay as they were.
      ...(infra[provider] ? { sharedInfraStake } : {}),
      totalStake: BigInt(total.rows[0]!.s),
      bondedProviders: total.rows[0]!.n,
      faultingProviders: faulting.rows[0]!.n + 1,
      ...(signers !== undefined ? { signers, quorumSize } : {}),
    };
  }

  /**
   * A council member's signed veto of a non-objective slash inside its window; k distinct
   * members veto it (funds never move; a jail it caused ends).
   */
  async veto(
    slashId: string,
    caller: string,
    envelope: DsseEnvelope,
    reason?: string,
  ): Promise<{ vetoed: boolean; vetoes: number; threshold: number }> {
    if (!this.params.council.includes(caller)) throw new PermissionDeniedError(`${caller} is not on the veto council`);
    return inMoneyTransaction(this.db, async (trx) => {
      const r = await sql<{ evidence_id: string; kind: string; state: string; veto_deadline: Date; provider_id: string }>`
        select evidence_id, kind, state, veto_deadline, provider_id from slashes where slash_id = ${slashId} for update`.execute(trx);
      const s = r.rows[0];
      if (!s) throw new NotFoundError(`slash ${slashId} not found`);
      if (isObjectiveKind(s.kind as EvidenceInput["kind"]))
        throw new FailedPreconditionError(`slash ${slashId} is for ${s.kind}, which signatures prove: it cannot be vetoed`, {
          reason: "objective",
        });
      if (s.state !== "pending_veto") throw slashStates.illegal(s.state as "applied", "vetoed", slashId);
      if (this.clock.now() >= s.veto_deadline)
        throw new FailedPreconditionError(`the veto window of slash ${slashId} closed at ${s.veto_deadline.toISOString()}`);
      const size = leafSize(envelope);
      if (size > MAX_VETO_JSON_SIZE)
        throw new InvalidArgumentError(
          `the veto statement takes ${size} bytes in DSSE JSON; at most ${MAX_VETO_JSON_SIZE} fit the vetoed slash record`,
          { field: "statement" },
        );
      let v;
      try {
        v = verifyVeto(envelope, { slashId, evidenceId: s.evidence_id });
      } catch (e) {
        throw new InvalidArgumentError(`veto statement: ${(e as Error).message}`);
      }
      if (v.member !== caller) throw new PermissionDeniedError("the veto statement is signed for another member");
      if (reason !== undefined && reason !== v.reason)
        throw new InvalidArgumentError("reason differs from the signed statement's reason", { field: "reason" });
      await sql`insert into vetoes values (${slashId}, ${caller}, ${v.reason}, ${JSON.stringify(dsseToJson(envelope))}::jsonb, ${this.clock.now()}) on conflict do nothing`.execute(
        trx,
      );
      const n = (await sql<{ n: number }>`select count(*)::int as n from vetoes where slash_id = ${slashId}`.execute(trx)).rows[0]!.n;
      if (n < this.params.vetoThreshold) return { vetoed: false, vetoes: n, threshold: this.params.vetoThreshold };
      await transitionRow(trx, slashStates, {
        table: "slashes",
        key: { slash_id: slashId },
        to: "vetoed",
        set: { vetoed_by: caller, veto_reason: v.reason },
      });
      await this.events.slashVetoed(trx, slashId);
      await this.writeRecord(trx, slashId, "vetoed");
      await this.rejail(trx, s.provider_id, slashId);
      this.metrics.slashes.add(1, { kind: s.kind, state: "vetoed" });
      return { vetoed: true, vetoes: n, threshold: this.params.vetoThreshold };
    });
  }

  /**
   * After a veto: the jail is recomputed from the provider's jailing slashes that were not
   * vetoed (each jails from its proposal for its penalty's jailMs). If one still runs, the
   * provider stays jailed until the latest end, under that slash; otherwise it is released now,
   * with the provider_released event and a `released` record on the vetoed slash.
   */
  private async rejail(trx: Trx, providerId: string, vetoedSlashId: string): Promise<void> {
    const now = this.clock.now();
    const pr = await sql<{ status: string; jailed_until: Date | null }>`
      select status, jailed_until from providers where provider_id = ${providerId} for update`.execute(trx);
    if (pr.rows[0]?.status !== "jailed") return;
    const live = await sql<{ slash_id: string; until: Date }>`
      select slash_id, proposed_at + ((record->'penalty'->>'jailMs')::bigint * interval '1 millisecond') as until
      from slashes where provider_id = ${providerId} and consequence = 'jail' and state <> 'vetoed'
      order by until desc, slash_id limit 1`.execute(trx);
    const top = live.rows[0];
    if (top && top.until > now) {
      await sql`update providers set jailed_until = ${top.until}, status_slash_id = ${top.slash_id}, updated_at = ${now}
        where provider_id = ${providerId}`.execute(trx);
      return;
    }
    await sql`update providers set status = 'active', jailed_until = null, updated_at = ${now} where provider_id = ${providerId}`.execute(
      trx,
    );
    await this.events.providerReleased(trx, providerId, now);
    await this.writeRecord(trx, vetoedSlashId, "released", { jailedUntil: now });
  }

  /** Applies every slash whose veto window has passed; returns how many. */
  async applyDue(limit = 500): Promise<number> {
    const due = await sql<{ slash_id: string }>`
      select slash_id from slashes where state = 'pending_veto' and veto_deadline <= ${this.clock.now()} order by veto_deadline limit ${limit}`.execute(
      this.db,
    );
    return this.eachIsolated(
      "apply",
      due.rows,
      (r) => r.slash_id,
      (r) => this.apply(r.slash_id),
    );
  }

  /**
   * Before funds move, the inputs that other providers' faults feed (the liveness guard's count
   * of faulting providers, the correlated slashes and their stake) are observed again: faults
   * that happened with this one but whose evidence arrived later (within the detection window,
   * which the veto window exceeds) count now. A mass failure whose first evidence was proposed
   * with a penalty is therefore suspended at apply time, and correlated faults cost what
   * they should. Counts only grow (never below what was recorded); the record carries the
   * inputs and penalty that were applied, so it still recomputes offline. Mutates `s`.
   */
  private async reobserve(trx: Trx, slashId: string, s: { amount: string; record: SlashRecordPredicate; kind: string }): Promise<void> {
    const rec = s.record;
    const before = inputsFromJson(rec.inputs);
    const now = await this.observe(trx, rec.kind, rec.provider, new Date(rec.infractionAt), before.stakeAtInfraction);
    const inputs: PenaltyInputs = {
      ...before,
      faultingProviders: Math.max(before.faultingProviders, now.faultingProviders),
      correlatedSlashes: Math.max(before.correlatedSlashes, now.correlatedSlashes),
      correlatedStake: before.correlatedStake > now.correlatedStake ? before.correlatedStake : now.correlatedStake,
      ...(before.sharedInfraStake !== undefined || now.sharedInfraStake !== undefined
        ? { sharedInfraStake: maxBig(before.sharedInfraStake ?? 0n, now.sharedInfraStake ?? 0n) }
        : {}),
    };
    if (
      inputs.faultingProviders === before.faultingProviders &&
      inputs.correlatedSlashes === before.correlatedSlashes &&
      inputs.correlatedStake === before.correlatedStake &&
      inputs.sharedInfraStake === before.sharedInfraStake
    )
      return;
    const penalty = computePenalty(rec.params, inputs);
    const record: SlashRecordPredicate = { ...rec, inputs: inputsToJson(inputs), penalty: penaltyToJson(penalty) };
    await sql`update slashes set amount = ${penalty.amount.toString()}, fraction_bps = ${penalty.fractionBps}, correlated_slashes = ${inputs.correlatedSlashes},
      reporter_reward = ${penalty.reporterReward.toString()}, record = ${JSON.stringify(record)}::jsonb where slash_id = ${slashId}`.execute(
      trx,
    );
    s.amount = penalty.amount.toString();
    s.record = record;
  }

  /** Moves a slash's funds exactly once (the state transition and the transfers commit together). */
  async apply(slashId: string): Promise<boolean> {
    return inMoneyTransaction(this.db, async (trx) => {
      const r = await sql<{ state: string; provider_id: string; amount: string; record: SlashRecordPredicate; kind: string }>`
        select state, provider_id, amount, record, kind from slashes where slash_id = ${slashId} for update`.execute(trx);
      const s = r.rows[0];
      if (!s || s.state !== "pending_veto") return false;
      await this.reobserve(trx, slashId, s);
      const provider = s.provider_id;
      const stakeId = accounts.stake(provider);
      const [acct] = await getAccounts(trx, [stakeId]);
      const want = BigInt(s.amount);
      let available = acct ? availableBalance(acct) : 0n;
      const transfers: TransferInput[] = [];
      // Unbonding stake stays slashable: shrink holds (void, re-hold the rest) until the penalty fits.
      if (available < want) {
        const ub = await sql<{ unbonding_id: string; amount: string; hold_id: string }>`
          select unbonding_id, amount, hold_id from unbondings where provider_id = ${provider} and state = 'unbonding' order by started_at desc for update`.execute(
          trx,
        );
        for (const u of ub.rows) {
          if (available >= want) break;
          const amt = BigInt(u.amount);
          const cut = want - available < amt ? want - available : amt;
          const gen = Number(u.hold_id.split(":").pop()) + 1;
          const newHold = `unbond:${u.unbonding_id}:${gen}`;
          transfers.push({ kind: "void", id: `${u.hold_id}:void`, pendingId: u.hold_id });
          if (amt - cut > 0n)
            transfers.push({
              kind: "pending",
              id: newHold,
              debitAccountId: stakeId,
              creditAccountId: accounts.external,
              amount: checkedAmount(amt - cut),
              ledger: this.params.currency,
              code: "stake.unbond",
              reference: provider,
            });
          await sql`update unbondings set amount = ${(amt - cut).toString()}, hold_id = ${newHold} where unbonding_id = ${u.unbonding_id}`.execute(
            trx,
          );
          available += cut;
        }
      }
      const taken = available < want ? available : want;
      const pen = s.record.penalty;
      const scale = (x: string) => (want === 0n ? 0n : (BigInt(x) * taken) / want);
      const reporter = scale(pen.reporterReward);
      const repair = scale(pen.repairShare);
      const treasury = taken - reporter - repair;
      const ledger = this.params.currency;
      if (reporter > 0n) {
        await createAccount(trx, this.clock, {
          id: accounts.reporter(s.record.reporter),
          ledger,
          kind: "reporter",
          flags: { debitsMustNotExceedCredits: true },
        });
        transfers.push({
          kind: "single",
          id: `slash:${slashId}:reporter`,
          debitAccountId: stakeId,
          creditAccountId: accounts.reporter(s.record.reporter),
          amount: checkedAmount(reporter),
          ledger,
          code: "slash.reporter",
          reference: slashId,
        });
      }
      if (repair > 0n)
        transfers.push({
          kind: "single",
          id: `slash:${slashId}:repair`,
          debitAccountId: stakeId,
          creditAccountId: accounts.repair,
          amount: checkedAmount(repair),
          ledger,
          code: "slash.repair",
          reference: slashId,
        });
      if (treasury > 0n)
        transfers.push({
          kind: "single",
          id: `slash:${slashId}:treasury`,
          debitAccountId: stakeId,
          creditAccountId: accounts.treasury,
          amount: checkedAmount(treasury),
          ledger,
          code: "slash.treasury",
          reference: slashId,
        });
      if (transfers.length > 0) await createTransfers(trx, this.clock, transfers);
      const now = this.clock.now();
      await transitionRow(trx, slashStates, {
        table: "slashes",
        key: { slash_id: slashId },
        to: "applied",
        set: { taken: taken.toString(), applied_at: now },
      });
      if (taken > 0n) {
        await this.stakeChange(trx, provider, -taken, "slash");
        await this.events.stakeChanged(trx, provider);
      }
      await this.events.slashApplied(trx, slashId);
      await this.writeRecord(trx, slashId, "applied");
      this.metrics.slashes.add(1, { kind: s.kind, state: "applied" });
      if (taken > 0n) this.metrics.amountSlashed.add(Number(taken), { kind: s.kind, currency: ledger });
      return true;
    });
  }

  /** Ends every jail whose time has passed. */
  /**
   * Records who repaired slots (`deai.da.repair_completed`: the placement's signer, a known
   * sampler). Idempotent by (dataset, slot, placement ledger index). Returns the rows added.
   */
  async recordRepair(r: {
    datasetId: string;
    slots: readonly number[];
    ledgerIndex: bigint;
    repairer: string;
    completedAt: Date;
  }): Promise<number> {
    let added = 0;
    for (const slot of new Set(r.slots)) {
      const ins = await sql`insert into repairs (dataset_id, slot, ledger_index, repairer, completed_at)
        values (${r.datasetId}, ${slot}, ${r.ledgerIndex.toString()}, ${r.repairer}, ${r.completedAt})
        on conflict do nothing returning 1`.execute(this.db);
      added += ins.rows.length;
    }
    return added;
  }

  /**
   * Pays the repair share of applied unavailability slashes to whoever repaired the slot the
   * evidence names (the first repair completed after the infraction): from the repair pool to
   * `repairer:<id>`, once per slash (the `repair_payouts` row and the transfer
   * `slash:<id>:repair-payout` in one transaction). A share whose slot is not repaired yet waits
   * in the pool. Returns the payouts made.
   */
  async payRepairs(limit = 500): Promise<number> {
    const due = await sql<{ slash_id: string; infraction_at: Date; body: EvidenceJson }>`
      select s.slash_id, s.infraction_at, e.body from slashes s join evidence e on e.evidence_id = s.evidence_id
      where s.kind = 'unavailability' and s.state = 'applied'
        and not exists (select 1 from repair_payouts p where p.slash_id = s.slash_id)
      order by s.applied_at limit ${limit}`.execute(this.db);
    return this.eachIsolated(
      "repair-payout",
      due.rows,
      (r) => r.slash_id,
      async (row) => {
        const e = evidenceFromJson(row.body);
        if (e.kind !== "unavailability") return false;
        const { datasetId, slot } = parseSamplingAttestation(e.attestation.payload);
        const repair = (
          await sql<{ repairer: string }>`select repairer from repairs where dataset_id = ${datasetId} and slot = ${slot}
            and completed_at >= ${row.infraction_at} order by ledger_index limit 1`.execute(this.db)
        ).rows[0];
        if (!repair) return false;
        const share = await getTransfer(this.db, `slash:${row.slash_id}:repair`).then(
          (t) => BigInt(t.amount),
          (err: unknown) => {
            if (err instanceof NotFoundError) return 0n; // nothing was taken for repair
            throw err;
          },
        );
        return inMoneyTransaction(this.db, async (trx) => {
          const ins = await sql`insert into repair_payouts (slash_id, repairer, amount, dataset_id, slot, paid_at)
            values (${row.slash_id}, ${repair.repairer}, ${share.toString()}, ${datasetId}, ${slot}, ${this.clock.now()})
            on conflict do nothing returning 1`.execute(trx);
          if (ins.rows.length === 0 || share === 0n) return ins.rows.length > 0;
          await createAccount(trx, this.clock, {
            id: accounts.repairer(repair.repairer),
            ledger: this.params.currency,
            kind: "repairer",
            flags: { debitsMustNotExceedCredits: true },
          });
          await createTransfers(trx, this.clock, [
            {
              kind: "single",
              id: `slash:${row.slash_id}:repair-payout`,
              debitAccountId: accounts.repair,
              creditAccountId: accounts.repairer(repair.repairer),
              amount: checkedAmount(share),
              ledger: this.params.currency,
              code: "slash.repair_payout",
              reference: row.slash_id,
            },
          ]);
          return true;
        });
      },
    );
  }

  async releaseJails(limit = 500): Promise<number> {
    const due = await sql<{ provider_id: string }>`
      select provider_id from providers where status = 'jailed' and jailed_until <= ${this.clock.now()} order by jailed_until limit ${limit}`.execute(
      this.db,
    );
    // One transaction per release: the status, its event and its signed record commit together,
    // and a replica that released it first leaves nothing to do here.
    return this.eachIsolated(
      "release",
      due.rows,
      (r) => r.provider_id,
      ({ provider_id }) =>
        this.db.transaction().execute(async (trx) => {
          const r = await sql<{ jailed_until: Date; status_slash_id: string | null }>`
          update providers set status = 'active', updated_at = ${this.clock.now()}
          where provider_id = ${provider_id} and status = 'jailed' and jailed_until <= ${this.clock.now()}
          returning jailed_until, status_slash_id`.execute(trx);
          const row = r.rows[0];
          if (!row) return false;
          await this.events.providerReleased(trx, provider_id, row.jailed_until);
          if (row.status_slash_id) await this.writeRecord(trx, row.status_slash_id, "released", { jailedUntil: row.jailed_until });
          return true;
        }),
    );
  }

  /** The signed slash record of an event as of now (DSSE over the slash-record statement). */
  signedRecord(slashId: string, event: SlashRecordEvent, extra: { jailedUntil?: Date } = {}): Promise<DsseEnvelope> {
    return this.buildRecord(this.db, slashId, event, extra);
  }

  private async buildRecord(q: Trx | Db, slashId: string, event: SlashRecordEvent, extra: { jailedUntil?: Date }): Promise<DsseEnvelope> {
    const r = await sql<{ record: SlashRecordPredicate; taken: string | null; applied_at: Date | null }>`
      select record, taken, applied_at from slashes where slash_id = ${slashId}`.execute(q);
    const row = r.rows[0];
    if (!row) throw new NotFoundError(`slash ${slashId} not found`);
    const vetoes = await sql<{ envelope: unknown }>`select envelope from vetoes where slash_id = ${slashId} order by member`.execute(q);
    const p: SlashRecordPredicate = {
      ...row.record,
      event,
      at: (event === "applied" && row.applied_at ? row.applied_at : this.clock.now()).toISOString(),
      ...(row.taken !== null ? { taken: row.taken } : {}),
      ...(extra.jailedUntil ? { jailedUntil: extra.jailedUntil.toISOString() } : {}),
      ...(event === "vetoed" ? { vetoes: vetoes.rows.map((v) => v.envelope as never) } : {}),
    };
    return dsseSign(IN_TOTO_PAYLOAD_TYPE, slashRecordPayload(p), [this.signer]);
  }

  /**
   * Signs the record of an event and stores it for the anchoring loop, in the transaction of the
   * change it records: a change is never committed without its record, nor a record without it.
   */
  private async writeRecord(trx: Trx, slashId: string, event: SlashRecordEvent, extra: { jailedUntil?: Date } = {}): Promise<void> {
    const envelope = JSON.stringify(dsseToJson(await this.buildRecord(trx, slashId, event, extra)));
    const ins = await sql`insert into slash_records (record_id, slash_id, event, envelope, created_at)
      values (${`${slashId}/${event}`}, ${slashId}, ${event}, ${envelope}::jsonb, ${this.clock.now()})
      on conflict do nothing returning 1`.execute(trx);
    // A slash jails (and releases) once per stretch of an outage: later jails and releases get their own record, by jail end.
    if (ins.rows.length === 0 && extra.jailedUntil && (event === "jailed" || event === "released"))
      await sql`insert into slash_records (record_id, slash_id, event, envelope, created_at)
        values (${`${slashId}/${event}/${extra.jailedUntil.toISOString()}`}, ${slashId}, ${event}, ${envelope}::jsonb, ${this.clock.now()})
        on conflict do nothing`.execute(trx);
  }

  async stake(providerId: string): Promise<StakeView> {
    const [acct] = await getAccounts(this.db, [accounts.stake(providerId)]);
    const ub = await sql<{ unbonding_id: string; amount: string; started_at: Date; completes_at: Date }>`
      select unbonding_id, amount, started_at, completes_at from unbondings where provider_id = ${providerId} and state = 'unbonding' order by started_at`.execute(
      this.db,
    );
    const sl = await sql<{
      s: string;
    }>`select coalesce(sum(taken), 0)::text as s from slashes where provider_id = ${providerId} and state = 'applied'`.execute(this.db);
    const pr = await sql<{ status: string; jailed_until: Date | null; status_slash_id: string | null }>`
      select status, jailed_until, status_slash_id from providers where provider_id = ${providerId}`.execute(this.db);
    return {
      providerId,
      bonded: acct ? availableBalance(acct) : 0n,
      unbonding: ub.rows.map((u) => ({
        unbondingId: u.unbonding_id,
        amount: BigInt(u.amount),
        startedAt: u.started_at,
        completesAt: u.completes_at,
      })),
      slashedTotal: BigInt(sl.rows[0]!.s),
      status: pr.rows[0]?.status ?? "active",
      jailedUntil: pr.rows[0]?.jailed_until ?? null,
      statusSlashId: pr.rows[0]?.status_slash_id ?? null,
    };
  }

  /** Whether a provider may offer storage or compute: active and bonded at least the minimum stake (for the marketplace). */
  async eligible(providerId: string): Promise<boolean> {
    const s = await this.stake(providerId);
    return s.status === "active" && s.bonded >= this.params.minStake;
  }

  /** One accepted evidence (refused evidence is never stored). */
  async evidence(evidenceId: string): Promise<EvidenceView> {
    const r = await sql<{
      evidence_id: string;
      kind: EvidenceInput["kind"];
      provider_id: string;
      reporter_id: string;
      infraction_at: Date;
      submitted_at: Date;
      slash_id: string;
      body: EvidenceJson;
    }>`select * from evidence where evidence_id = ${evidenceId}`.execute(this.db);
    const e = r.rows[0];
    if (!e) throw new NotFoundError(`evidence ${evidenceId} not found`);
    return {
      evidenceId: e.evidence_id,
      kind: e.kind,
      providerId: e.provider_id,
      reporterId: e.reporter_id,
      infractionAt: e.infraction_at,
      submittedAt: e.submitted_at,
      slashId: e.slash_id,
      body: e.body,
    };
  }

  async slash(slashId: string): Promise<SlashView> {
    const v = await slashView(this.db, slashId);
    if (!v) throw new NotFoundError(`slash ${slashId} not found`);
    return v;
  }

  /** Slashes newest first (by proposal), filtered. */
  async listSlashes(f: SlashFilter): Promise<SlashView[]> {
    const r = await sql<SlashRow>`select ${SLASH_COLUMNS} from slashes
      where (${f.providerId ?? null}::text is null or provider_id = ${f.providerId ?? null})
        and (${f.state ?? null}::text is null or state = ${f.state ?? null})
        and (${f.kind ?? null}::text is null or kind = ${f.kind ?? null})
      order by proposed_at desc, slash_id limit ${f.limit} offset ${f.offset}`.execute(this.db);
    return withRecords(this.db, r.rows);
  }
}

/** One slash with its records, read in `q` (a transaction sees its own writes). */
export async function slashView(q: Trx | Db, slashId: string): Promise<SlashView | undefined> {
  const r = await sql<SlashRow>`select ${SLASH_COLUMNS} from slashes where slash_id = ${slashId}`.execute(q);
  return (await withRecords(q, r.rows))[0];
}

async function withRecords(q: Trx | Db, rows: readonly SlashRow[]): Promise<SlashView[]> {
  if (rows.length === 0) return [];
  const rec = await sql<{
    slash_id: string;
    event: SlashRecordEvent;
    envelope: DsseEnvelopeJson;
    created_at: Date;
    ledger_index: string | null;
    receipt: unknown;
  }>`select slash_id, event, envelope, created_at, ledger_index::text as ledger_index, receipt from slash_records
      where slash_id = any(${rows.map((r) => r.slash_id)}::text[]) order by created_at, record_id`.execute(q);
  return rows.map((s) => ({
    slashId: s.slash_id,
    evidenceId: s.evidence_id,
    kind: s.kind,
    providerId: s.provider_id,
    amount: BigInt(s.amount),
    taken: s.taken === null ? null : BigInt(s.taken),
    baseFractionBps: s.base_fraction_bps,
    fractionBps: s.fraction_bps,
    correlatedSlashes: s.correlated_slashes,
    consequence: s.consequence,
    state: s.state,
    infractionAt: s.infraction_at,
    proposedAt: s.proposed_at,
    vetoDeadline: s.veto_deadline,
    appliedAt: s.applied_at,
    reporterId: s.reporter_id,
    reporterReward: BigInt(s.reporter_reward),
    vetoedBy: s.vetoed_by,
    vetoReason: s.veto_reason,
    records: rec.rows
      .filter((x) => x.slash_id === s.slash_id)
      .map((x) => ({
        event: x.event,
        envelope: x.envelope,
        createdAt: x.created_at,
        ledgerIndex: x.ledger_index === null ? null : BigInt(x.ledger_index),
        receipt: x.receipt,
      })),
  }));
}
