/**
 * One budget for the buffers of every upload session on this instance (stripe buffers, part
 * buffers, streamed-part queues). A session reserves before it allocates and gives everything
 * back when it ends (abort, finish, expiry, idle eviction, shutdown), so a few idle uploads
 * with large parameters cannot take the process's memory: the next session, or a session's
 * next buffer, that would go over gets RESOURCE_EXHAUSTED instead.
 */
import { ResourceExhaustedError } from "@deai/kit/errors";

export class MemoryBudget {
  private used = 0;

  constructor(readonly limitBytes: number) {}

  /** Bytes reserved now. */
  get usedBytes(): number {
    return this.used;
  }

  /** Reserves `bytes` for `what`, or throws ResourceExhausted saying how much is in use. */
  reserve(bytes: number, what: string): void {
    if (this.used + bytes > this.limitBytes) {
      throw new ResourceExhaustedError(
        `upload sessions on this instance hold ${mib(this.used)} of their ${mib(this.limitBytes)} memory budget (INGESTION_SESSION_MEMORY_BYTES); ` +
          `${what} needs ${mib(bytes)} more: retry later, declare spec.size (streamed parts need far less memory), or use a smaller shard size`,
      );
    }
    this.used += bytes;
  }

  release(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }
}

/** A session's share of the budget: what it reserved, given back at once by close(). */
export class MemoryLease {
  private held = 0;

  constructor(
    private readonly budget: MemoryBudget,
    private readonly owner: string,
  ) {}

  get heldBytes(): number {
    return this.held;
  }

  reserve(bytes: number, what: string): void {
    this.budget.reserve(bytes, `${this.owner}: ${what}`);
    this.held += bytes;
  }

  /** Gives back everything this lease holds. */
  close(): void {
    this.budget.release(this.held);
    this.held = 0;
  }
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
