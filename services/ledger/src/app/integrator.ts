// Integration and checkpointing: one integrator at a time (Postgres advisory lock) extends
// the stored tree from its saved frontier with the entries sequenced since, writes the
// completed tile hashes, and signs the new checkpoint, all in one transaction. Because every
// checkpoint is computed from the previous one's frontier under that lock, the log can never
// sign two inconsistent checkpoints, across restarts and replicas.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Kysely } from "kysely";

import { enqueueEvent, type Logger, type OutboxRelay } from "@deai/kit";
import { CheckpointPublishedSchema } from "@deai/contracts/deai/events/v1/ledger_pb";
import { concatBytes, signCheckpoint, type NoteSigner } from "@deai/proofs";

import { growTree } from "../domain/tree-growth.js";
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

export const CHECKPOINT_SUBJECT = "deai.ledger.checkpoint_published";

export interface IntegratorOptions {
  readonly db: Kysely<LedgerDb>;
  readonly origin: string;
  /** The log key; without one this replica never signs (it sequences and serves reads). */
  readonly signer: NoteSigner | undefined;
  readonly outbox: OutboxRelay;
  readonly logger: Logger;
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

export class Integrator {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private again = false;
  private stopped = false;
  private readonly listeners = new Set<() => void>();
  private sequencedSince = 0;

  constructor(private readonly o: IntegratorOptions) {}

  get canSign(): boolean {
    return this.o.signer !== undefined;
  }

  /** Starts the schedule (and publishes the empty tree's checkpoint on a fresh log). */
  start(): void {
    if (!this.o.signer) return;
    this.timer = setInterval(() => this.requestSoon(), this.o.intervalMs);
    this.timer.unref();
    this.requestSoon();
  }

  /** Runs an integration pass now, or right after the one in progress. */
  requestSoon(): void {
    if (this.stopped || !this.o.signer) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.sequencedSince = 0;
    this.running = this.integrateAll(false)
      .catch((e: unknown) => this.o.logger.error({ err: e }, "integration failed; will retry"))
      .finally(() => {
        this.running = undefined;
        if (this.again && !this.stopped) {
          this.again = false;
          this.requestSoon();
        }
      });
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
      await enqueueEvent(
        trx as unknown as Kysely<unknown>,
        CHECKPOINT_SUBJECT,
        CheckpointPublishedSchema,
        {
          $typeName: "deai.events.v1.CheckpointPublished",
          eventId: `ledger/checkpoint/${frontier.size}`,
          occurredAt: timestampFromDate(checkpoint.published_at),
          origin: this.o.origin,
          treeSize: BigInt(frontier.size),
          rootHash: root,
          note,
          previousTreeSize: BigInt(latest?.tree_size ?? 0),
        },
        `ledger/checkpoint/${frontier.size}`,
      );
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
    );
    return reached === true;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }
}
