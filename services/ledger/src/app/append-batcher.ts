// Group commit: concurrent appends queue up while the previous batch commits, then go to
// Postgres together as one transaction with one multi-row INSERT. Each caller is answered
// only after its batch committed, so an acknowledged entry is durable. A group of entries
// submitted together (a batch append) is never split across transactions.
//
// One member must never fail the others: if a transaction of several members fails, each
// member is retried alone (in order), so only a member whose own rows Postgres refuses fails
// (the domain refuses what it knows cannot be stored, a NUL in a predicate type for one,
// before an entry gets here; this is the guarantee for whatever it does not know).
import type { Kysely } from "kysely";

import { sequenceEntries, type NewEntry, type Sequenced } from "../store/entries.js";
import type { LedgerDb } from "../store/tables.js";

interface Pending {
  readonly entries: readonly NewEntry[];
  readonly resolve: (s: Sequenced[]) => void;
  readonly reject: (e: unknown) => void;
}

export class AppendBatcher {
  private queue: Pending[] = [];
  private inflight = 0;
  /** Members retried alone after their group's transaction failed (a sign of poisoned input). */
  isolatedRetries = 0;

  /**
   * @param maxBatch most entries per transaction (a larger group still commits whole). @default 4000
   * @param concurrency batches committing at once (they serialize on the sequencer row, but
   *   overlapping one batch's round trips with the next one's lock wait helps). @default 2
   * @param onCommitted called with the number of new (not duplicate) entries after each commit.
   */
  constructor(
    private readonly db: Kysely<LedgerDb>,
    private readonly maxBatch = 4000,
    private readonly concurrency = 2,
    private readonly onCommitted?: (fresh: number) => void,
  ) {}

  /** Sequences one entry; resolves after its batch committed. */
  async submit(entry: NewEntry): Promise<Sequenced> {
    return (await this.submitMany([entry]))[0]!;
  }

  /** Sequences entries in one transaction, in order; resolves after it committed. */
  submitMany(entries: readonly NewEntry[]): Promise<Sequenced[]> {
    if (entries.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      this.queue.push({ entries, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inflight < this.concurrency && this.queue.length > 0) {
      let n = 0;
      let take = 0;
      while (take < this.queue.length && (take === 0 || n + this.queue[take]!.entries.length <= this.maxBatch)) {
        n += this.queue[take]!.entries.length;
        take++;
      }
      const batch = this.queue.splice(0, take);
      this.inflight++;
      this.commit(batch)
        .catch((e: unknown) => batch.forEach((p) => p.reject(e)))
        .finally(() => {
          this.inflight--;
          this.pump();
        });
    }
  }

  /** Commits a batch as one transaction; if that fails and it has several members, each alone. */
  private async commit(batch: readonly Pending[]): Promise<void> {
    let out: Sequenced[];
    try {
      out = await sequenceEntries(this.db, batch.length === 1 ? batch[0]!.entries : batch.flatMap((p) => p.entries));
    } catch (e) {
      if (batch.length === 1) throw e;
      this.isolatedRetries += batch.length;
      for (const p of batch) await this.commit([p]).catch((err: unknown) => p.reject(err));
      return;
    }
    let at = 0;
    for (const p of batch) {
      p.resolve(out.slice(at, at + p.entries.length));
      at += p.entries.length;
    }
    const fresh = out.reduce((c, s) => c + (s.duplicate ? 0 : 1), 0);
    if (fresh > 0) this.onCommitted?.(fresh);
  }

  /** Resolves when nothing is queued or committing. */
  async drain(): Promise<void> {
    while (this.inflight > 0 || this.queue.length > 0) await new Promise((r) => setTimeout(r, 5));
  }
}
