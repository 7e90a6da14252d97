// The log's gauges, read from the database at each metric collection (so every replica reports
// the shared log, whichever one signs): tree size, integration lag (age of the oldest entry not
// yet in a signed checkpoint; 0 when none) and the age of the newest checkpoint.
import type { Kysely } from "kysely";

import { meter, type Clock } from "@deai/kit";

import type { LedgerDb } from "../store/tables.js";
import { logProgress } from "../store/tree.js";

/** Registers the ledger's gauges; returns the function that removes them. */
export function observeLog(db: Kysely<LedgerDb>, clock: Clock): () => void {
  const m = meter("@deai/ledger");
  const treeSize = m.createObservableGauge("deai.ledger.tree_size", { description: "Entries in the signed tree", unit: "{entry}" });
  const lag = m.createObservableGauge("deai.ledger.integration_lag", {
    description: "Age of the oldest entry not yet in a signed checkpoint (0 when none)",
    unit: "s",
  });
  const age = m.createObservableGauge("deai.ledger.checkpoint_age", { description: "Age of the newest signed checkpoint", unit: "s" });
  const callback = async (r: { observe(g: typeof treeSize, v: number): void }): Promise<void> => {
    const p = await logProgress(db).catch(() => undefined);
    if (!p) return;
    const now = clock.nowMs();
    r.observe(treeSize, p.size);
    r.observe(lag, p.oldestPending ? Math.max(0, (now - p.oldestPending.getTime()) / 1000) : 0);
    if (p.latestCheckpoint) r.observe(age, Math.max(0, (now - p.latestCheckpoint.getTime()) / 1000));
  };
  m.addBatchObservableCallback(callback, [treeSize, lag, age]);
  return () => m.removeBatchObservableCallback(callback, [treeSize, lag, age]);
}
