import { LedgerService } from "@deai/contracts/deai/ledger/v1/ledger_pb";
import { serviceClient, UnavailableError, type ActorKey, type Clock } from "@deai/kit";
import { openCheckpoint, parseCheckpoint, type NoteVerifier } from "@deai/proofs";

/** The seed of a round: the ledger's latest signed checkpoint. */
export interface SeedCheckpoint {
  readonly size: number;
  readonly root: Uint8Array;
}

/**
 * The latest checkpoint, fetched at most once per `ttlMs` however many rounds ask (one request
 * in flight, shared). With a pinned log key the note's signature is checked before it is used:
 * a seed nobody can verify would let a sampler pick its own challenges.
 */
export class CheckpointSource {
  private readonly client;
  private cached: { at: number; value: Promise<SeedCheckpoint> } | undefined;

  constructor(private readonly o: { baseUrl: string; key: ActorKey; log?: NoteVerifier; clock: Clock; ttlMs?: number; timeoutMs: number }) {
    this.client = serviceClient(LedgerService, { baseUrl: o.baseUrl, key: o.key });
  }

  latest(): Promise<SeedCheckpoint> {
    const now = this.o.clock.nowMs();
    if (this.cached && now - this.cached.at < (this.o.ttlMs ?? 1000)) return this.cached.value;
    const value = this.fetch();
    this.cached = { at: now, value };
    value.catch(() => {
      if (this.cached?.value === value) this.cached = undefined;
    });
    return value;
  }

  private async fetch(): Promise<SeedCheckpoint> {
    let note: string;
    try {
      const r = await this.client.getLatestCheckpoint({}, { timeoutMs: this.o.timeoutMs });
      note = r.checkpoint?.note ?? "";
    } catch (e) {
      throw new UnavailableError(`could not read the ledger's latest checkpoint (the round's seed): ${(e as Error).message}`);
    }
    try {
      const text = note.slice(0, note.indexOf("\n\n") + 1);
      const cp = this.o.log ? openCheckpoint(note, { log: this.o.log }).checkpoint : parseCheckpoint(text);
      return { size: cp.size, root: cp.rootHash };
    } catch (e) {
      throw new UnavailableError(`the ledger's latest checkpoint does not verify: ${(e as Error).message}`);
    }
  }
}
