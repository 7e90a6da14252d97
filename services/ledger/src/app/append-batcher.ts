// Group commit: concurrent appends queue up while the previous batch commits, then go to
// Postgres together as one transaction with one multi-row INSERT. Each caller is answered
// only after its batch committed, so an acknowledged entry is durable.
import type { Kysely } from "kysely";

import { sequenceEntries, type NewEntry, type Sequenced } from "../store/entries.js";
import type { LedgerDb } from "../store/tables.js";

interface Pending {
  readonly entry: NewEntry;
  readonly resolve: (s: Sequenced) => void;
  readonly reject: (e: unknown) => void;
}

export class AppendBatcher {
  private queue: Pending[] = [];
  private inflight = 0;

  /**
   * @param maxBatch most entries per transaction. @default 2000
   * @param concurrency batches committing at once (they serialize on the sequencer row, but
   *   overlapping one batch's round trips with the next one's lock wait helps). @default 2
   */
  constructor(
    private readonly db: Kysely<LedgerDb>,
    private readonly maxBatch = 2000,
    private readonly concurrency = 2,
  ) {}

  /** Sequences one entry; resolves after its batch committed. */
  submit(entry: NewEntry): Promise<Sequenced> {
    return new Promise((resolve, reject) => {
      this.queue.push({ entry, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inflight < this.concurrency && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      this.inflight++;
      sequenceEntries(
        this.db,
        batch.map((p) => p.entry),
      )
        .then(
          (out) => batch.forEach((p, i) => p.resolve(out[i]!)),
          (e: unknown) => batch.forEach((p) => p.reject(e)),
        )
        .finally(() => {
          this.inflight--;
          this.pump();
        });
    }
  }

  /** Resolves when nothing is queued or committing. */
  async drain(): Promise<void> {
    while (this.inflight > 0 || this.queue.length > 0) await new Promise((r) => setTimeout(r, 5));
  }
}
