/**
 * Repair: slots that stay unavailable past the grace period, that serve invalid shards, or
 * whose provider slashing jailed or tombstoned are rebuilt from k others and placed at new
 * distinct providers chosen by the shared placement scoring; the new placement is a new
 * manifest version (a placement/v1 statement) anchored in the ledger, and goes out as
 * `deai.da.repair_completed` (ingestion's downloads follow it, other samplers sample it).
 *
 * A job is a row (domain/repair-states.ts, moved by the kit's transitionRow) run by the kit
 * Scheduler. Each stripe is read once: one verified range read per source slot per part group,
 * all of the job's lost slots rebuilt together from the same k shards, each rebuilt shard
 * checked against its leaf before it is written. Progress is durable per part group (the
 * ETags of every new object's part and `stripes_done` in one UPDATE guarded by the previous
 * value), the object keys and multipart upload ids are fixed before the first byte, and the
 * statement is signed and stored before it is appended (the append is idempotent): a kill -9
 * anywhere resumes from the last recorded group and places no shard twice.
 */
import { create, toJson } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { PlacementSchema } from "@deai/contracts/deai/ingestion/v1/ingestion_pb";
import { RepairCompletedSchema, RepairedSlotSchema } from "@deai/contracts/deai/events/v1/da_pb";
import { ReceiptSchema, type Receipt } from "@deai/contracts/deai/ledger/v1/ledger_pb";
import {
  AnchorRefusedError,
  enqueueEvent,
  giveShared,
  LeafHashPool,
  StripeCodec,
  takeShared,
  transitionRow,
  type LedgerAnchoring,
  type PartWriter,
  type ProviderRegistry,
  type StorageProvider,
} from "@deai/kit";
import { AbortedError, FailedPreconditionError, UnavailableError } from "@deai/kit/errors";
import { choosePlacement, type PlacementCandidate } from "@deai/kit/placement";
import { dsseFromJson, dsseToJson, placementPayload, type DsseEnvelope, type PlacementPredicate } from "@deai/proofs";
import { sql, type Kysely, type Selectable, type Transaction } from "kysely";

import { decideRepairs, readWindows, repairedKey, sourceSlots, stripesPerGroup, type DueSlot } from "../domain/repair-trigger.js";
import { repairStates } from "../domain/repair-states.js";
import type { RepairJobsTable, RepairSlotJson } from "../store/repair-tables.js";
import type { DaSamplerDb, PlacementRow } from "../store/tables.js";
import type { Attestations } from "./attestations.js";
import { leafOf, shardRootHex, type DatasetCatalog, type SampledDataset } from "./catalog.js";
import type { SamplerContext } from "./context.js";
import { envelopeToProto } from "./envelopes.js";
import type { RepairMetrics } from "./repair-metrics.js";
import type { SamplerIdentity } from "./sampler-identity.js";

export type RepairJob = Selectable<RepairJobsTable>;

export interface RepairOptions {
  readonly c: SamplerContext;
  readonly catalog: DatasetCatalog;
  readonly attestations: Attestations;
  /** Providers repair reads from and writes to (its own deadlines). */
  readonly registry: ProviderRegistry;
  readonly ledger: LedgerAnchoring | undefined;
  /** Signs placement statements. */
  readonly signer: SamplerIdentity;
  readonly metrics: RepairMetrics;
  readonly graceMs: number;
  readonly partBytes: number;
  /** Bytes per range read of a source slot (rounded down to whole shards, at least one, at most a part). */
  readonly readBytes: number;
  /** Read windows in flight ahead of the one being written. */
  readonly readAhead: number;
  /** Threads hashing shards for their leaf checks. */
  readonly hashThreads: number;
  /** 0 = no cap. */
  readonly maxReadBytesPerS: number;
}

/** What a job step did (tests and the bench read it). */
export interface StepResult {
  readonly state: string;
  readonly stripesRebuilt: number;
  readonly bytesRead: number;
  readonly bytesWritten: number;
}

/** A window's rebuilt shards: per lost slot, stripe order. */
interface RebuiltWindow {
  readonly to: number;
  readonly shards: Buffer[][];
  readonly bytesRead: number;
}

const codecs = new Map<string, StripeCodec>();
/** The native codec ingestion encodes with (created once per geometry). */
function codecOf(k: number, m: number, shardSize: number): StripeCodec {
  const key = `${k}/${m}/${shardSize}`;
  let c = codecs.get(key);
  if (!c) codecs.set(key, (c = new StripeCodec(k, m, shardSize)));
  return c;
}

const sameLeaf = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(a, b) === 0;

const db = (trx: Transaction<DaSamplerDb>): Kysely<unknown> => trx as unknown as Kysely<unknown>;

/** Runs a provider call; any failure becomes an UnavailableError naming the provider (the job is retried). */
async function onProvider<T>(p: StorageProvider, what: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof UnavailableError) throw e;
    throw new UnavailableError(`storage provider ${p.id}: could not ${what}: ${(e as Error).message}`);
  }
}

export class Repairs {
  constructor(private readonly o: RepairOptions) {}

  /** One run of the repair loop: decide what needs repair, then advance every live job. */
  async tick(signal?: AbortSignal): Promise<void> {
    await this.scan();
    for (const job of await this.liveJobs()) {
      if (signal?.aborted) return;
      try {
        await this.step(job.job_id, signal);
      } catch (e) {
        if (e instanceof AbortedError) return;
        this.o.c.logger.warn({ err: e, job: job.job_id }, "repair step failed; retried on the next run");
        await this.o.c.db
          .updateTable("repair_jobs")
          .set({ error: (e as Error).message.slice(0, 1000), updated_at: this.o.c.clock.now() })
          .where("job_id", "=", job.job_id)
          .execute();
      }
    }
  }

  async liveJobs(): Promise<RepairJob[]> {
    return this.o.c.db
      .selectFrom("repair_jobs")
      .selectAll()
      .where("state", "in", ["rebuilding", "anchoring"])
      .orderBy("created_at")
      .execute();
  }

  async job(jobId: string): Promise<RepairJob | undefined> {
    return this.o.c.db.selectFrom("repair_jobs").selectAll().where("job_id", "=", jobId).executeTakeFirst();
  }

  /** Reads slot states, watches, provider statuses; records watches; starts a job per dataset with slots due. Returns the new jobs' ids. */
  async scan(): Promise<string[]> {
    const { c } = this.o;
    const now = c.clock.now();
    const [slots, watch, statuses, busy] = await Promise.all([
      c.db.selectFrom("slot_states").select(["dataset_id", "slot", "provider_id", "state", "last_outcome"]).execute(),
      c.db.selectFrom("repair_watch").selectAll().execute(),
      c.db.selectFrom("provider_status").selectAll().where("status", "in", ["jailed", "tombstoned"]).execute(),
      c.db.selectFrom("repair_jobs").select("dataset_id").where("state", "in", ["rebuilding", "anchoring"]).execute(),
    ]);
    const excluded = new Map<string, "jailed" | "tombstoned">();
    for (const s of statuses)
      if (s.status === "tombstoned" || !s.until || s.until.getTime() > now.getTime()) excluded.set(s.provider_id, s.status as "jailed");
    const d = decideRepairs({
      slots: slots.map((s) => ({
        datasetId: s.dataset_id,
        slot: s.slot,
        providerId: s.provider_id,
        state: s.state,
        lastOutcome: s.last_outcome,
      })),
      watch: watch.map((w) => ({ datasetId: w.dataset_id, slot: w.slot, providerId: w.provider_id, since: w.since })),
      excluded,
      busy: new Set(busy.map((b) => b.dataset_id)),
      now,
      graceMs: this.o.graceMs,
    });
    for (const w of d.stopWatching)
      await c.db.deleteFrom("repair_watch").where("dataset_id", "=", w.datasetId).where("slot", "=", w.slot).execute();
    for (const w of d.startWatching)
      await c.db
        .insertInto("repair_watch")
        .values({ dataset_id: w.datasetId, slot: w.slot, provider_id: w.providerId, since: w.since })
        .onConflict((oc) => oc.columns(["dataset_id", "slot"]).doUpdateSet({ provider_id: w.providerId, since: w.since }))
        .execute();
    const started: string[] = [];
    for (const [datasetId, due] of d.due) {
      const id = await this.start(datasetId, due, [...excluded.keys()]);
      if (id) started.push(id);
    }
    return started;
  }

  /** The placement version in force (1 = the owner's manifest) and the ledger index of its statement. */
  private async current(datasetId: string): Promise<{ version: number; ledgerIndex: bigint }> {
    const v = await this.o.c.db
      .selectFrom("placement_versions")
      .select(["version", "ledger_index"])
      .where("dataset_id", "=", datasetId)
      .orderBy("version", "desc")
      .executeTakeFirst();
    if (v) return { version: v.version, ledgerIndex: BigInt(v.ledger_index) };
    const d = await this.o.c.db.selectFrom("datasets").select("ledger_index").where("dataset_id", "=", datasetId).executeTakeFirstOrThrow();
    return { version: 1, ledgerIndex: BigInt(d.ledger_index) };
  }

  /** The candidates for new slots: configured providers holding no slot of the dataset, not excluded, with reputation and stake. */
  private async candidates(ds: SampledDataset, excluded: readonly string[]): Promise<PlacementCandidate[]> {
    const holding = new Set(ds.placements.map((p) => p.providerId));
    const stakes = new Map(
      (await this.o.c.db.selectFrom("provider_stakes").selectAll().execute()).map((s) => [s.provider_id, Number(s.bonded)] as const),
    );
    const pool = this.o.registry.all.filter((p) => !holding.has(p.id) && !excluded.includes(p.id));
    return Promise.all(
      pool.map(async (p) => {
        const rep = await this.o.attestations.reputation(p.id);
        return {
          id: p.id,
          // Reputation where sampling has a record of the provider, its configured reliability otherwise.
          reliability: rep.attestations > 0 ? rep.mean : p.config.reliability,
          // Bonded stake (micros) as slashing last reported it; once slashing reports stakes, a
          // provider it never reported has none (one unit for all). Without slashing: the configured stake.
          stake: stakes.size > 0 ? (stakes.get(p.id) ?? 0) : p.config.stake,
          live: await p.ping(),
        };
      }),
    );
  }

  /** Starts a job for `due` slots of a dataset: chooses the new providers and fixes the object keys. */
  private async start(datasetId: string, due: readonly DueSlot[], excluded: readonly string[]): Promise<string | undefined> {
    const { c } = this.o;
    const ds = await this.o.catalog.get(datasetId);
    // A stripe survives m lost slots: more than that at once cannot be rebuilt from this job's reads.
    const slots = due.filter((d) => ds.placements[d.slot]?.providerId === d.providerId).slice(0, ds.m);
    if (slots.length === 0) return undefined;
    const cur = await this.current(datasetId);
    const version = cur.version + 1;
    const chosen = choosePlacement(await this.candidates(ds, excluded), slots.length, { seed: `${datasetId}/v${version}` });
    if (!("ids" in chosen)) {
      this.o.metrics.jobs.add(1, { outcome: "no_provider" });
      c.logger.warn(
        { datasetId, slots: slots.map((s) => s.slot), why: chosen.shortfall.message },
        "repair due but no new provider can be placed",
      );
      return undefined;
    }
    const rows: RepairSlotJson[] = slots.map((s, i) => {
      const to = this.o.registry.get(chosen.ids[i]!);
      return {
        slot: s.slot,
        from: s.providerId,
        to: to.id,
        reason: s.reason,
        bucket: to.config.bucket,
        key: repairedKey(datasetId, s.slot, version),
        endpoint: to.config.endpoint,
        uploadId: null,
      };
    });
    const jobId = `${datasetId}/v${version}`;
    const now = c.clock.now();
    try {
      const r = await c.db
        .insertInto("repair_jobs")
        .values({
          job_id: jobId,
          dataset_id: datasetId,
          version,
          base_version: cur.version,
          slots: JSON.stringify(rows),
          state: "rebuilding",
          parts: "{}",
          stripes_done: 0,
          parts_sent: 0,
          bytes_read: 0,
          bytes_written: 0,
          runs: 0,
          created_at: now,
          updated_at: now,
        })
        .onConflict((oc) => oc.column("job_id").doNothing())
        .executeTakeFirst();
      if (Number(r.numInsertedOrUpdatedRows ?? 0n) === 0) return undefined;
    } catch (e) {
      // Another runner started a job for this dataset first (one live job per dataset).
      if ((e as { code?: string }).code === "23505") return undefined;
      throw e;
    }
    this.o.metrics.jobs.add(1, { outcome: "started" });
    c.logger.info({ jobId, slots: rows.map((r) => ({ slot: r.slot, from: r.from, to: r.to, reason: r.reason })) }, "repair started");
    return jobId;
  }

  /** Advances one job as far as it goes (rebuild → anchor → complete). */
  async step(jobId: string, signal?: AbortSignal): Promise<StepResult> {
    let job = await this.job(jobId);
    if (!job) throw new FailedPreconditionError(`repair job ${jobId} does not exist`);
    let rebuilt = { stripes: 0, read: 0, written: 0 };
    if (job.state === "rebuilding") {
      rebuilt = await this.rebuild(job, signal);
      job = (await this.job(jobId))!;
    }
    if (job.state === "anchoring") {
      await this.anchor(job);
      job = (await this.job(jobId))!;
    }
    return { state: job.state, stripesRebuilt: rebuilt.stripes, bytesRead: rebuilt.read, bytesWritten: rebuilt.written };
  }

  private async rebuild(job: RepairJob, signal?: AbortSignal): Promise<{ stripes: number; read: number; written: number }> {
    const { c } = this.o;
    const ds = await this.o.catalog.get(job.dataset_id);
    const slots = job.slots;
    for (const s of slots) {
      if (ds.placements[s.slot]?.providerId !== s.from)
        return this.fail(job, `slot ${s.slot} is no longer at ${s.from}: the placement changed since the job started`).then(() => ({
          stripes: 0,
          read: 0,
          written: 0,
        }));
    }
    await c.db
      .updateTable("repair_jobs")
      .set({ runs: sql`runs + 1` })
      .where("job_id", "=", job.job_id)
      .execute();
    // Fix each new object's multipart upload before the first byte: a resumed run adds parts to the
    // same one. Started together, recorded in one UPDATE (an upload started but not recorded by a
    // run that died is a stray, aborted at completion).
    const unstarted = slots.filter((s) => !s.uploadId);
    if (unstarted.length > 0) {
      await Promise.all(
        unstarted.map(async (s) => {
          const p = this.o.registry.get(s.to);
          s.uploadId = await onProvider(p, `start the upload of ${s.key}`, () => p.initiateMultipart(s.key));
        }),
      );
      await c.db
        .updateTable("repair_jobs")
        .set({ slots: JSON.stringify(slots), updated_at: c.clock.now() })
        .where("job_id", "=", job.job_id)
        .where("state", "=", "rebuilding")
        .execute();
    }
    const parts = { ...job.parts };
    const S = ds.shardSize;
    const g = stripesPerGroup(this.o.partBytes, S, ds.stripes);
    const lost = slots.map((s) => s.slot);
    let done = Number(job.stripes_done);
    if (done % g !== 0)
      throw new FailedPreconditionError(
        `repair job ${job.job_id} stopped at stripe ${done}, not a multiple of ${g}: DA_REPAIR_PART_BYTES changed mid-repair`,
      );
    const from = done;
    let read = 0;
    let written = 0;
    // Where a run's time goes: waiting for windows not yet read and rebuilt, waiting for part
    // writes and their records (both net of what overlapped), completion.
    const timing = { read: 0, write: 0, finish: 0 };
    // A pipeline of read windows (a few stripes, one range read per source slot): up to
    // `readAhead` windows are read, verified and rebuilt while the current one streams into the
    // parts of the new objects. Memory is bounded by the windows in flight; each stripe is read once.
    const windows = readWindows(done, ds.stripes, g, Math.floor(this.o.readBytes / S));
    const stop = new AbortController();
    const hashes = new LeafHashPool({ workers: this.o.hashThreads });
    // Every window's buffer has one size (the last window uses part of it): shared memory reused.
    const windowBytes = Math.max(...windows.map((w) => w.to - w.from), 0) * (ds.k + ds.m) * S;
    const reads = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
    const t0 = c.clock.nowMs();
    let scheduled = 0;
    let ahead = 0;
    const pending: Promise<RebuiltWindow>[] = [];
    const fill = (): void => {
      while (pending.length < this.o.readAhead && ahead < windows.length) {
        const w = windows[ahead++]!;
        // The read cap: a window's reads start no earlier than the bytes before it allow.
        const dueMs = t0 + (scheduled / Math.max(1, this.o.maxReadBytesPerS)) * 1000;
        scheduled += ds.k * (w.to - w.from) * S;
        const p = (async () => {
          if (this.o.maxReadBytesPerS > 0) {
            const wait = dueMs - c.clock.nowMs();
            if (wait > 0) await c.clock.sleep(wait, reads);
          }
          return this.rebuildWindow(ds, lost, w.from, w.to, { hashes, windowBytes }, reads);
        })();
        p.catch(() => undefined);
        pending.push(p);
      }
    };
    try {
      while (done < ds.stripes) {
        if (signal?.aborted) throw new AbortedError("repair stopped");
        const end = Math.min(ds.stripes, done + g);
        const part = done / g + 1;
        const writers = slots.map((s) => ({ s, p: this.o.registry.get(s.to) }));
        // The part PUTs stream the group's rebuilt shards as windows come (opened with the first:
        // no idle part while its first window is read).
        let open: PartWriter[] = [];
        let bytesRead = 0;
        let etags: string[];
        try {
          for (let at = done; at < end;) {
            fill();
            const tr = performance.now();
            const win = await pending.shift()!;
            timing.read += performance.now() - tr;
            fill();
            if (at === done) open = writers.map(({ s, p }) => p.openPart(s.key, s.uploadId!, part, (end - done) * S));
            const tw = performance.now();
            await Promise.all(
              writers.map(({ s, p }, i) =>
                onProvider(p, `write part ${part} of ${s.key}`, async () => {
                  for (const shard of win.shards[i]!) await open[i]!.write(shard);
                }),
              ),
            );
            timing.write += performance.now() - tw;
            bytesRead += win.bytesRead;
            at = win.to;
          }
          const tw = performance.now();
          etags = await Promise.all(writers.map(({ s, p }, i) => onProvider(p, `write part ${part} of ${s.key}`, () => open[i]!.end())));
          timing.write += performance.now() - tw;
        } catch (e) {
          for (const w of open) w.abort();
          throw e;
        }
        const tw = performance.now();
        const bytesWritten = slots.length * (end - done) * S;
        slots.forEach((s, i) => {
          const list = (parts[String(s.slot)] ??= []);
          list[part - 1] = etags[i]!;
        });
        // One UPDATE per part group, guarded by the previous value: the parts and counters move together.
        const r = await c.db
          .updateTable("repair_jobs")
          .set({
            stripes_done: BigInt(end),
            parts: JSON.stringify(parts),
            parts_sent: sql`parts_sent + ${slots.length}`,
            bytes_read: sql`bytes_read + ${bytesRead}`,
            bytes_written: sql`bytes_written + ${bytesWritten}`,
            error: null,
            updated_at: c.clock.now(),
          })
          .where("job_id", "=", job.job_id)
          .where("state", "=", "rebuilding")
          .where("stripes_done", "=", BigInt(done))
          .executeTakeFirst();
        if (Number(r.numUpdatedRows) !== 1) throw new AbortedError(`repair job ${job.job_id} was advanced by another runner`);
        timing.write += performance.now() - tw;
        this.o.metrics.bytes.add(bytesRead, { direction: "read" });
        this.o.metrics.bytes.add(bytesWritten, { direction: "written" });
        for (const s of slots) this.o.metrics.shards.add(end - done, { reason: s.reason });
        read += bytesRead;
        written += bytesWritten;
        done = end;
      }
    } finally {
      // Windows still in flight when a run fails or stops are cancelled.
      stop.abort(new AbortedError("repair run ended"));
      await Promise.allSettled(pending);
      await hashes.close();
    }
    const tf = performance.now();
    await this.finishObjects(ds, slots, parts);
    timing.finish = performance.now() - tf;
    c.logger.info(
      { job: job.job_id, ms: Object.fromEntries(Object.entries(timing).map(([k, v]) => [k, Math.round(v)])) },
      "repair rebuilt",
    );
    const cur = await this.current(ds.datasetId);
    if (cur.version !== job.base_version) {
      await this.fail(job, `placement version ${cur.version} is in force, the job was built on ${job.base_version}`);
      return { stripes: done - from, read, written };
    }
    const moved = new Map(slots.map((s) => [s.slot, s]));
    const predicate: PlacementPredicate = {
      datasetId: ds.datasetId,
      contentDigest: ds.contentDigest,
      shardRoot: shardRootHex(ds),
      k: ds.k,
      m: ds.m,
      stripes: ds.stripes,
      version: job.version,
      supersedes: { version: cur.version, ledgerIndex: cur.ledgerIndex.toString() },
      placements: ds.placements.map((p) => {
        const s = moved.get(p.slot);
        return s ? { slot: p.slot, providerId: s.to, bucket: s.bucket, key: s.key, endpoint: s.endpoint } : { ...p };
      }),
      moved: slots.map((s) => ({ slot: s.slot, from: s.from, to: s.to, reason: s.reason })),
      cause: "repair",
      placedAt: c.clock.now().toISOString(),
    };
    const payload = placementPayload(predicate);
    const envelope = this.o.signer.signStatement(payload);
    await transitionRow(c.db, repairStates, {
      table: "repair_jobs",
      key: { job_id: job.job_id },
      to: "anchoring",
      from: ["rebuilding"],
      set: {
        statement: Buffer.from(payload),
        envelope: JSON.stringify(dsseToJson(envelope)),
        rebuilt_at: c.clock.now(),
        updated_at: c.clock.now(),
      },
    });
    return { stripes: done - from, read, written };
  }

  /**
   * Reads stripes [from, to) once and rebuilds every lost slot of them: one verified range
   * read per source slot (the first k surviving, data slots first), its bytes laid out by the
   * read itself stripe by stripe (n shards each, as the codec wants them); a stripe left with
   * fewer than k valid shards is completed shard by shard from the other surviving slots. The
   * lost slots are rebuilt in place by the native codec (libuv's thread pool, off the event
   * loop) and every rebuilt shard must hash to its leaf. Returns the rebuilt shards per lost
   * slot, stripe order (views of the window's buffer).
   */
  async rebuildWindow(
    ds: SampledDataset,
    lost: readonly number[],
    from: number,
    to: number,
    using: { hashes: LeafHashPool; windowBytes: number },
    signal?: AbortSignal,
  ): Promise<RebuiltWindow> {
    // Shared memory (the leaf hash threads read the shards in place), reused: fresh memory costs
    // its page faults, as much as the copy into it.
    const window = takeShared(using.windowBytes);
    try {
      return await this.rebuildWindowIn(window, ds, lost, from, to, using.hashes, signal);
    } finally {
      // Nothing holds a view of it now: reads given up on write nowhere, the rebuilt shards were copied out.
      giveShared(window);
    }
  }

  private async rebuildWindowIn(
    window: Buffer,
    ds: SampledDataset,
    lost: readonly number[],
    from: number,
    to: number,
    hashes: LeafHashPool,
    signal?: AbortSignal,
  ): Promise<RebuiltWindow> {
    const n = ds.k + ds.m;
    const S = ds.shardSize;
    const count = to - from;
    const sources = sourceSlots(n, lost);
    // Stripe i's shard of slot j at (i·n + j)·S.
    const buf = window.subarray(0, count * n * S);
    const shardAt = (i: number, slot: number): Buffer => buf.subarray((i * n + slot) * S, (i * n + slot + 1) * S);
    const present: Set<number>[] = Array.from({ length: count }, () => new Set<number>());
    let bytesRead = 0;
    const providerOf = (slot: number): StorageProvider | undefined => {
      const id = ds.placements[slot]!.providerId;
      return this.o.registry.has(id) ? this.o.registry.get(id) : undefined;
    };
    await Promise.all(
      sources.slice(0, ds.k).map(async (slot) => {
        const p = providerOf(slot);
        if (!p) return;
        let live = true;
        try {
          await p.readRangeInto(
            ds.placements[slot]!.key,
            from * S,
            count * S,
            (chunk, at) => {
              // A read given up on (deadline) may still deliver: its bytes go nowhere.
              if (!live) return;
              for (let pos = 0; pos < chunk.length;) {
                const i = Math.floor((at + pos) / S);
                const off = (at + pos) % S;
                const len = Math.min(S - off, chunk.length - pos);
                chunk.copy(buf, (i * n + slot) * S + off, pos, pos + len);
                pos += len;
              }
            },
            signal,
          );
        } catch (e) {
          live = false;
          if (signal?.aborted) return;
          this.o.c.logger.warn({ err: e, datasetId: ds.datasetId, slot }, "repair: a source slot could not be read; using others");
          return;
        }
        bytesRead += count * S;
        const digests = await hashes.hash(Array.from({ length: count }, (_, i) => shardAt(i, slot)));
        digests.forEach((d, i) => {
          if (sameLeaf(d, leafOf(ds, from + i, slot))) present[i]!.add(slot);
        });
      }),
    );
    if (signal?.aborted) throw new AbortedError("repair stopped");
    for (let i = 0; i < count; i++) {
      const stripe = from + i;
      const have = present[i]!;
      for (const slot of sources.slice(ds.k)) {
        if (have.size >= ds.k) break;
        const p = providerOf(slot);
        if (!p) continue;
        try {
          (await p.readShard(ds.placements[slot]!.key, stripe, S, leafOf(ds, stripe, slot), signal)).copy(shardAt(i, slot));
          have.add(slot);
          bytesRead += S;
        } catch {
          // Another slot may still answer.
        }
      }
      if (have.size < ds.k)
        throw new UnavailableError(
          `stripe ${stripe} of ${ds.datasetId}: only ${have.size} of the k = ${ds.k} shards needed could be read and verified`,
        );
    }
    const codec = codecOf(ds.k, ds.m, S);
    const gone = new Set(lost);
    await Promise.all(
      present.map(async (have, i) => {
        // The codec rebuilds every slot it is not given; slots neither lost nor read are not
        // wanted. Past the last shard read they count as given (their bytes are never used: the
        // codec decodes from the first k given, which are then all real shards).
        const last = Math.max(...have);
        const given = [...have];
        for (let s = last + 1; s < n; s++) if (!gone.has(s)) given.push(s);
        await codec.rebuildInPlace(buf.subarray(i * n * S, (i + 1) * n * S), given);
      }),
    );
    const rebuilt = lost.flatMap((slot) => present.map((_, i) => ({ slot, i })));
    const digests = await hashes.hash(rebuilt.map(({ slot, i }) => shardAt(i, slot)));
    rebuilt.forEach(({ slot, i }, j) => {
      if (!sameLeaf(digests[j]!, leafOf(ds, from + i, slot)))
        throw new Error(
          `rebuilt shard (${from + i}, ${slot}) of ${ds.datasetId} does not match its leaf: the codec and the manifest disagree`,
        );
    });
    // Copied out (L shards per stripe): the window's buffer goes back to the pool at once, while
    // the part writes may still hold these.
    const out = Buffer.allocUnsafe(lost.length * count * S);
    const shards = lost.map((slot, j) =>
      present.map((_, i) => {
        const at = (j * count + i) * S;
        shardAt(i, slot).copy(out, at);
        return out.subarray(at, at + S);
      }),
    );
    return { to, shards, bytesRead };
  }

  /** Completes every new object (a completed one is recognized by its size), checks a shard of each, drops stray uploads. */
  private async finishObjects(ds: SampledDataset, slots: readonly RepairSlotJson[], parts: Record<string, string[]>): Promise<void> {
    const size = ds.stripes * ds.shardSize;
    // The new objects are independent: completed side by side (a provider copies the parts into one object).
    await Promise.all(slots.map((s) => this.finishObject(ds, s, parts, size)));
  }

  private async finishObject(ds: SampledDataset, s: RepairSlotJson, parts: Record<string, string[]>, size: number): Promise<void> {
    const p = this.o.registry.get(s.to);
    const etags = parts[String(s.slot)] ?? [];
    try {
      await p.completeMultipart(s.key, s.uploadId!, etags);
    } catch (e) {
      // Completed by a run that died before recording it: the object is there, whole.
      const stat = await p.client.statObject(s.bucket, s.key).catch(() => undefined);
      if (!stat || stat.size !== size) throw e;
    }
    await Promise.all(
      [...new Set([0, ds.stripes - 1])].map((stripe) =>
        onProvider(p, `read back ${s.key}`, () => p.readShard(s.key, stripe, ds.shardSize, leafOf(ds, stripe, s.slot))),
      ),
    );
    // Uploads of this key a run started but never recorded (killed between start and record): abort them.
    await this.abortStrays(p, s).catch((e: unknown) => this.o.c.logger.debug({ err: e, key: s.key }, "could not list stray uploads"));
  }

  private async abortStrays(p: StorageProvider, s: RepairSlotJson): Promise<void> {
    const stray: string[] = [];
    const stream = p.client.listIncompleteUploads(s.bucket, s.key, true);
    for await (const u of stream as AsyncIterable<{ key: string; uploadId: string }>)
      if (u.key === s.key && u.uploadId !== s.uploadId) stray.push(u.uploadId);
    for (const id of stray) await p.abortMultipart(s.key, id);
  }

  private async anchor(job: RepairJob): Promise<void> {
    const { c } = this.o;
    if (!this.o.ledger) throw new FailedPreconditionError("DA_LEDGER_URL is not set: placements cannot be anchored");
    const envelope = dsseFromJson(job.envelope);
    let anchored;
    try {
      anchored = await this.o.ledger.anchor(envelopeToProto(envelope));
    } catch (e) {
      if (e instanceof AnchorRefusedError) return this.fail(job, e.message);
      throw e;
    }
    const ds = await this.o.catalog.get(job.dataset_id);
    const slots = job.slots;
    await c.db.transaction().execute(async (trx) => {
      await transitionRow(trx, repairStates, {
        table: "repair_jobs",
        key: { job_id: job.job_id },
        to: "completed",
        from: ["anchoring"],
        set: {
          ledger_index: anchored.index,
          receipt: JSON.stringify(toJson(ReceiptSchema, anchored.receipt)),
          completed_at: c.clock.now(),
          updated_at: c.clock.now(),
        },
      });
      await applyPlacement(trx, ds, job.version, envelope, anchored.index, slots, c.clock.now());
      await enqueueRepairCompleted(trx, job, ds, slots, envelope, anchored.index, anchored.receipt, c.clock.now());
    });
    this.o.catalog.forget(job.dataset_id);
    c.outbox.kick();
    this.o.metrics.jobs.add(1, { outcome: "completed" });
    this.o.metrics.duration.record((c.clock.nowMs() - job.created_at.getTime()) / 1000);
    c.logger.info({ job: job.job_id, ledgerIndex: anchored.index.toString() }, "repair completed: new placement anchored");
  }

  private async fail(job: RepairJob, why: string): Promise<void> {
    await transitionRow(this.o.c.db, repairStates, {
      table: "repair_jobs",
      key: { job_id: job.job_id },
      to: "failed",
      set: { error: why.slice(0, 1000), updated_at: this.o.c.clock.now() },
    });
    this.o.metrics.jobs.add(1, { outcome: "failed" });
    this.o.c.logger.error({ job: job.job_id, why }, "repair failed");
  }
}

/**
 * Puts a new placement in force in this process's state, in the caller's transaction: the
 * dataset's placements, the version row, the slot states (the new provider starts available;
 * the next rounds sample it), no watch on the moved slots, and the moved slots' rounds not yet
 * summarized kept out of the new provider's attestations (they were the old provider's).
 */
export async function applyPlacement(
  trx: Transaction<DaSamplerDb>,
  ds: SampledDataset,
  version: number,
  envelope: DsseEnvelope,
  ledgerIndex: bigint,
  slots: readonly { slot: number; to: string; bucket: string; key: string; endpoint: string }[],
  at: Date,
): Promise<void> {
  const moved = new Map(slots.map((s) => [s.slot, s]));
  const placements: PlacementRow[] = ds.placements.map((p) => {
    const s = moved.get(p.slot);
    return s ? { slot: p.slot, providerId: s.to, bucket: s.bucket, key: s.key, endpoint: s.endpoint } : p;
  });
  await trx
    .updateTable("datasets")
    .set({ placements: JSON.stringify(placements) })
    .where("dataset_id", "=", ds.datasetId)
    .execute();
  await trx
    .insertInto("placement_versions")
    .values({
      dataset_id: ds.datasetId,
      version,
      placements: JSON.stringify(placements),
      envelope: JSON.stringify(dsseToJson(envelope)),
      ledger_index: ledgerIndex,
      created_at: at,
    })
    .execute();
  for (const s of slots) {
    await trx
      .updateTable("slot_states")
      .set({ provider_id: s.to, state: "available", consecutive_failures: 0, last_outcome: null, last_sampled_at: null })
      .where("dataset_id", "=", ds.datasetId)
      .where("slot", "=", s.slot)
      .execute();
    await trx.deleteFrom("repair_watch").where("dataset_id", "=", ds.datasetId).where("slot", "=", s.slot).execute();
    await trx
      .updateTable("rounds")
      .set({ attestation_id: `superseded:v${version}` })
      .where("dataset_id", "=", ds.datasetId)
      .where("slot", "=", s.slot)
      .where("attestation_id", "is", null)
      .execute();
  }
}

async function enqueueRepairCompleted(
  trx: Transaction<DaSamplerDb>,
  job: RepairJob,
  ds: SampledDataset,
  slots: readonly RepairSlotJson[],
  envelope: DsseEnvelope,
  ledgerIndex: bigint,
  receipt: Receipt,
  at: Date,
): Promise<void> {
  const placement = (s: RepairSlotJson) =>
    create(PlacementSchema, { slot: s.slot, providerId: s.to, bucket: s.bucket, key: s.key, endpoint: s.endpoint });
  const first = slots[0]!;
  const eventId = `da/repair/${ds.datasetId}/${first.slot}/${ledgerIndex}`;
  const totals = await trx
    .selectFrom("repair_jobs")
    .select(["bytes_read", "bytes_written"])
    .where("job_id", "=", job.job_id)
    .executeTakeFirstOrThrow();
  await enqueueEvent(
    db(trx),
    "deai.da.repair_completed",
    RepairCompletedSchema,
    create(RepairCompletedSchema, {
      eventId,
      occurredAt: timestampFromDate(at),
      datasetId: ds.datasetId,
      slot: first.slot,
      previousProviderId: first.from,
      placement: placement(first),
      stripes: BigInt(ds.stripes),
      ledgerIndex,
      envelope: envelopeToProto(envelope),
      receipt,
      version: job.version,
      repaired: slots.map((s) =>
        create(RepairedSlotSchema, { slot: s.slot, previousProviderId: s.from, placement: placement(s), reason: s.reason }),
      ),
      bytesRead: BigInt(totals.bytes_read),
      bytesWritten: BigInt(totals.bytes_written),
    }),
    eventId,
  );
}
