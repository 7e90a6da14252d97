// The ledger's events: its NATS subjects and their typed publishers. Events go through the
// kit's outbox in the transaction that makes them true, so none is lost while NATS is down.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Kysely } from "kysely";

import { enqueueEvent } from "@deai/kit";
import { CheckpointPublishedSchema } from "@deai/contracts/deai/events/v1/ledger_pb";

/** The JetStream stream holding the ledger's subjects (`deai.ledger.>`). */
export const LEDGER_STREAM = "ledger";

/** Subjects the ledger publishes (each under the deployment's NATS prefix). */
export const LedgerSubjects = {
  /** A new signed checkpoint (deai.events.v1.CheckpointPublished): followers, witnesses, the DA sampler's seed. */
  checkpointPublished: "deai.ledger.checkpoint_published",
} as const;

/** A checkpoint the log just signed, as CheckpointPublished carries it. */
export interface PublishedCheckpoint {
  readonly origin: string;
  readonly treeSize: number;
  readonly rootHash: Uint8Array;
  /** The signed note. */
  readonly note: string;
  readonly previousTreeSize: number;
  readonly publishedAt: Date;
}

/** The event id of a checkpoint's event: one per tree size, so a replayed signing publishes once. */
export function checkpointEventId(treeSize: number): string {
  return `ledger/checkpoint/${treeSize}`;
}

/** Enqueues CheckpointPublished in `trx` (the transaction that stores the checkpoint). */
export async function enqueueCheckpointPublished(trx: Kysely<unknown>, c: PublishedCheckpoint): Promise<void> {
  const eventId = checkpointEventId(c.treeSize);
  await enqueueEvent(
    trx,
    LedgerSubjects.checkpointPublished,
    CheckpointPublishedSchema,
    {
      $typeName: "deai.events.v1.CheckpointPublished",
      eventId,
      occurredAt: timestampFromDate(c.publishedAt),
      origin: c.origin,
      treeSize: BigInt(c.treeSize),
      rootHash: c.rootHash,
      note: c.note,
      previousTreeSize: BigInt(c.previousTreeSize),
    },
    eventId,
  );
}
