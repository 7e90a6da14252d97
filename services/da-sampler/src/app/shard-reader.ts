import { ShardMismatchError, shardLeafHash, type Clock, type ProviderRegistry } from "@deai/kit";
import type { SampleOutcomeName } from "@deai/proofs";

import { outcomeOf, type ReadResult } from "../domain/outcomes.js";

/** One shard sample. */
export interface ShardSample {
  readonly stripe: number;
  readonly outcome: SampleOutcomeName;
  readonly observedLeaf: Uint8Array | undefined;
  readonly latencyMs: number;
  readonly sampledAt: Date;
  readonly detail: string;
}

/** A counting semaphore: at most `limit` reads in flight per provider from this process. */
class Gate {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async run<T>(f: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try {
      return await f();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

/**
 * Range-reads shards through the kit's StorageProvider (its read deadline is the timeout) and
 * checks each against its leaf; classifies the answer (outcomes.ts). Never retries: a failed
 * read is a fault to re-check by the quorum, not to hammer.
 */
export class ShardReader {
  private readonly gates = new Map<string, Gate>();

  constructor(
    private readonly registry: ProviderRegistry,
    private readonly o: { clock: Clock; deadlineMs: number; concurrency: number },
  ) {}

  async sample(providerId: string, key: string, stripe: number, shardSize: number, expectedLeaf: Uint8Array): Promise<ShardSample> {
    const sampledAt = this.o.clock.now();
    const t0 = performance.now();
    let r: ReadResult;
    if (!this.registry.has(providerId)) r = { kind: "error", detail: `storage provider ${providerId} is not configured (DA_PROVIDERS)` };
    else {
      const provider = this.registry.get(providerId);
      let gate = this.gates.get(providerId);
      if (!gate) this.gates.set(providerId, (gate = new Gate(this.o.concurrency)));
      r = await gate.run(async () => {
        try {
          const bytes = await provider.readShard(key, stripe, shardSize, expectedLeaf);
          return { kind: "bytes", observedLeaf: shardLeafHash(bytes), matches: true } as const;
        } catch (e) {
          if (e instanceof ShardMismatchError) return { kind: "bytes", observedLeaf: e.observed, matches: false } as const;
          const msg = (e as Error).message;
          if (/did not answer within/.test(msg)) return { kind: "timeout", detail: msg } as const;
          if (/NoSuchKey|NoSuchBucket|InvalidRange|NotFound|returned \d+ of \d+ bytes/i.test(msg))
            return { kind: "missing", detail: msg } as const;
          return { kind: "error", detail: msg } as const;
        }
      });
    }
    const latencyMs = Math.round(performance.now() - t0);
    return {
      stripe,
      outcome: outcomeOf(r, latencyMs, this.o.deadlineMs),
      observedLeaf: r.kind === "bytes" ? r.observedLeaf : undefined,
      latencyMs,
      sampledAt,
      detail: r.kind === "bytes" ? (r.matches ? "" : "bytes do not match the leaf") : r.detail,
    };
  }
}
