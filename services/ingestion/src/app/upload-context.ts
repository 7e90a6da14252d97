/**
 * What every part of the upload flow shares: the service's options and the clock. The flow is
 * split by responsibility, each module one step of the lifecycle in domain/upload-states.ts:
 *
 *   upload-create.ts    CreateUpload: the spec's checks, placement, one multipart upload per slot
 *   upload-sessions.ts  the live UploadSession per open upload on this instance (attach, evict)
 *   upload-stream.ts    UploadChunks: bytes into a session, bound to their signed digest
 *   upload-finish.ts    the end of the stream: slot objects completed, digest, root, manifest
 *   upload-anchor.ts    the owner's envelope into the ledger, the dataset recorded (and retried)
 *   upload-ending.ts    abort, expiry and the sweep; the terminal states and object deletion
 *   upload-objects.ts   the slot objects at the providers (keys, initiate, complete, delete)
 *   uploads.ts          the facade the gRPC and REST handlers call
 *
 * SQL lives in store/, events in events/dataset-events.ts.
 */
import type { Kysely } from "kysely";

import {
  systemClock,
  type Clock,
  type LedgerAnchoring,
  type Logger,
  type OutboxRelay,
  type PlacementPolicy,
  type ProviderRegistry,
} from "@deai/kit";

import type { IngestionDb } from "../store/tables.js";
import type { MemoryBudget } from "./memory-budget.js";
import type { ReadOptions } from "./reader.js";

/** Anchors a signed manifest envelope in the ledger (the kit's anchoring client). */
export type LedgerAnchor = LedgerAnchoring;

export interface UploadsOptions {
  readonly db: Kysely<IngestionDb>;
  readonly registry: ProviderRegistry;
  readonly placement: PlacementPolicy;
  readonly outbox: OutboxRelay;
  readonly logger: Logger;
  readonly ledger: LedgerAnchor | undefined;
  readonly ttlS: number;
  readonly partBytes: number;
  readonly maxUploadBytes: number;
  /** Largest entry the ledger accepts (bytes): the manifest statement's bound derives from it. */
  readonly ledgerEntryBytes: number;
  /** Largest leaf table (stripes × n × 32 bytes) of one upload; bounds its size for a given geometry. */
  readonly maxLeafTableBytes: number;
  /** Buffers of every upload session on this instance. */
  readonly memory: MemoryBudget;
  /** A session with no stream attached for this long is dropped (its buffered bytes resend from durable_offset). */
  readonly sessionIdleMs: number;
  /** An upload in `anchoring` untouched this long is retried by the sweep (an instance crashed mid-anchor). */
  readonly anchorRetryAfterMs: number;
  readonly readOptions: Omit<ReadOptions, "codec">;
  readonly clock?: Clock;
}

/** The options plus the clock every step reads time from. */
export class UploadContext {
  readonly clock: Clock;

  constructor(readonly o: UploadsOptions) {
    this.clock = o.clock ?? systemClock;
  }

  now(): Date {
    return this.clock.now();
  }

  /** When a row touched now expires: now + the upload TTL. */
  expiresFromNow(): Date {
    return new Date(this.clock.nowMs() + this.o.ttlS * 1000);
  }
}
