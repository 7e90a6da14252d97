// Integration and checkpointing: one integrator at a time (Postgres advisory lock) extends
// the stored tree from its saved frontier with the entries sequenced since, writes the
// completed tile hashes, and signs the new checkpoint, all in one transaction. Because every
// checkpoint is computed from the previous one's frontier under that lock, the log can never
// sign two inconsistent checkpoints, across restarts and replicas.
//
// The passes run as the kit scheduled loop `ledger.integrator`: every interval, and sooner
// when kicked (an append that waits for its inclusion, or a backlog). The loop has no
// scheduler leadership on purpose: every signing replica kicks its own loop after its own
// appends, and the advisory lock (skip when held) already makes one pass at a time across
// replicas; with leadership a follower's kick would wait for the leader's next interval. It
// is not persisted either: a pass at start is what a restart needs (it signs the entries
// sequenced before a crash), and the cadence is sub-second.
import type { Kysely } from "kysely";

import type { Logger, OutboxRelay, ScheduledLoop, Scheduler } from "@deai/kit";
import { concatBytes, signCheckpoint, type NoteSigner } from "@deai/proofs";

import { growTree } from "../domain/tree-growth.js";
import { enqueueCheckpointPublished } from "../events/checkpoint-published.js";
import { leafHashesFrom } from "../store/entries.js";
import type { LedgerDb } from "../store/tables.js";
import {
  insertCheckpoint,
  latestCheckpoint,
  lockIntegrator,
  readTiles,
  readTreeState,
  writeTiles,
  writeTreeState,
  type CheckpointRow,
} from "../store/tree.js";
import { waitUntil } from "./wake-or-poll.js";

export interface IntegratorOptions {
  readonly db: Kysely<LedgerDb>;
  readonly origin: string;
  /** The log key; without one this replica never signs (it sequences and serves reads). */
  readonly signer: NoteSigner | undefined;
  readonly outbox: OutboxRelay;
  readonly logger: Logger;
  /** The service's scheduler; the integration loop is registered on it (and its clock used). */
  readonly scheduler: Scheduler;
  /** Publish period of the schedule. */
  readonly intervalMs: number;
  /** Most entries integrated per checkpoint. @default 65536 */
  readonly maxBatch?: number;
  /**
   * Entries sequenced by this replica since the last pass that trigger a pass before the
   * schedule does, bounding integration lag under load. @default 8192
   */
  readonly backlog?: number;
}

/** Name of the integration loop. */
export const INTEGRATOR_LOOP = "ledger.integrator";

export class Integrator {
  private readonly loop: ScheduledLoop | undefined;
  private readonly listeners = new Set<() => void>();
  private sequencedSince = 0;

  constructor(private readonly o: IntegratorOptions) {
    // Without a key this replica never signs, so it runs no loop.
    this.loop = o.signer
      ? o.scheduler.register({
          name: INTEGRATOR_LOOP,
          intervalMs: o.intervalMs,
          jitter: 0,
          persist: false,
          // A fresh log publishes the empty tree's checkpoint; a restarted one signs what was sequenced.
          runOnStart: true,
          run: async () => {
            this.sequencedSince = 0;
            await this.integrateAll(false);
          },
        })
      : undefined;
  }

  get canSign(): boolean {
    return this.o.signer !== undefined;
  }

  /** Runs an integration pass now, or right after the one in progress. */
  requestSoon(): void {
    this.loop?.kick();
  }

  /** Calls `listener` after each checkpoint this replica signs; returns the unsubscribe. */
  onPublished(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Notes `n` entries sequenced here; past the backlog, integrates without waiting for the schedule. */
  noteSequenced(n: number): void {
    this.sequencedSince += n;
    if (this.sequencedSince >= (this.o.backlog ?? 8192)) {
      this.sequencedSince = 0;
      this.requestSoon();
    }
  }

  /** Integrates everything sequenced so far, waiting for the lock; returns the newest checkpoint. */
  async publishNow(): Promise<{ checkpoint: CheckpointRow; published: boolean }> {
    return this.integrateAll(true) as Promise<{ checkpoint: CheckpointRow; published: boolean }>;
  }

  private async integrateAll(wait: boolean): Promise<{ checkpoint: CheckpointRow; published: boolean } | undefined> {
    let result: { checkpoint: CheckpointRow; published: boolean } | undefined;
    let published = false;
    for (;;) {
      const r = await this.integrateOnce(wait);
      if (r === undefined) return result;
      published ||= r.published;
      result = { checkpoint: r.checkpoint, published };
      if (!r.more) return result;
    }
  }

  /** One transaction: lock, extend, sign, commit. Undefined when another replica holds the lock. */
  private async integrateOnce(wait: boolean): Promise<{ checkpoint: CheckpointRow; published: boolean; more: boolean } | undefined> {
    const signer = this.o.signer;
    if (!signer) throw new Error("no signing key");
    const max = this.o.maxBatch ?? 65_536;
    const r = await this.o.db.transaction().execute(async (trx) => {
      if (!(await lockIntegrator(trx, wait))) return undefined;
      const state = await readTreeState(trx);
      const latest = await latestCheckpoint(trx);
      const leaves = await leafHashesFrom(trx, state.size, max);
      if (leaves.length === 0 && latest !== undefined) return { checkpoint: latest, published: false, more: false };
      if (latest !== undefined && latest.tree_size !== state.size) {
        throw new Error(
          `tree state (size ${state.size}) does not match the latest checkpoint (size ${latest.tree_size}); refusing to sign`,
        );
      }
      const { frontier, tiles } = growTree(state.size, state.frontier, leaves);
      const partial = tiles.filter((t) => t.first > 0);
      const stored = await readTiles(trx, partial);
      const rows = tiles.map((t) => {
        const before = t.first > 0 ? stored.get(`${t.level}/${t.index}`) : Buffer.alloc(0);
        if (before === undefined || before.length !== t.first * 32) {
          throw new Error(`tile ${t.level}/${t.index} holds ${before?.length ?? 0} bytes, expected ${t.first * 32}; refusing to sign`);
        }
        return { level: t.level, index: t.index, hashes: Buffer.concat([before, ...t.hashes]) };
      });
      await writeTiles(trx, rows);
      const root = frontier.root();
      const note = signCheckpoint({ origin: this.o.origin, size: frontier.size, rootHash: root, extensions: [] }, [signer]);
      await writeTreeState(trx, { size: frontier.size, root: Buffer.from(root), frontier: Buffer.from(concatBytes(...frontier.hashes())) });
      const checkpoint = await insertCheckpoint(trx, { treeSize: frontier.size, rootHash: root, note });
      await enqueueCheckpointPublished(trx as unknown as Kysely<unknown>, {
        origin: this.o.origin,
        treeSize: frontier.size,
        rootHash: root,
        note,
        previousTreeSize: latest?.tree_size ?? 0,
        publishedAt: checkpoint.published_at,
      });
      return { checkpoint, published: true, more: leaves.length === max };
    });
    if (r?.published) {
      this.o.outbox.kick();
      this.o.logger.debug({ size: r.checkpoint.tree_size }, "checkpoint published");
      for (const l of [...this.listeners]) l();
    }
    return r;
  }

  /**
   * Waits until a checkpoint covers `size` leaves (signed here or by another replica);
   * returns false at the deadline.
   */
  async waitForSize(size: number, timeoutMs: number): Promise<boolean> {
    const reached = await waitUntil(
      async () => ((await readTreeState(this.o.db)).size >= size ? true : undefined),
      this.listeners,
      timeoutMs,
      this.o.scheduler.clock,
    );
    return reached === true;
  }

  /** Stops the loop; a pass in flight finishes. */
  async stop(): Promise<void> {
    await this.loop?.stop();
  }
}
