/**
 * grpc.health.v1 per service name, and the one readiness answer behind it and /readyz.
 *
 * Readiness belongs to the process (one pool, one NATS connection, one app), so every
 * registered service has the overall status; what a name adds is whether it is served here
 * at all: Check answers NOT_FOUND for a name this server does not serve, Watch answers
 * SERVICE_UNKNOWN (and keeps the stream open, as the spec says). Watch sends the current
 * status at once and then each change: one poller re-evaluates readiness while anyone
 * watches and broadcasts to every stream, and a drain is broadcast the moment it starts.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";

import {
  Health,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as Status,
  type HealthCheckRequest,
  type HealthCheckResponse,
} from "@deai/contracts/grpc/health/v1/health_pb";

import { systemClock, type Clock } from "../time/clock.js";
import { bind, type ServiceBinding } from "./service-binding.js";

export interface Readiness {
  ready: boolean;
  /** Per dependency: "ok" or what is wrong. */
  checks: Record<string, string>;
}

export interface HealthOptions {
  /** Fully-qualified names of the services this server serves (Health itself is added). */
  services: readonly string[];
  /** The dependency checks; consulted only while not draining. */
  readiness: () => Promise<Readiness>;
  /**
   * How often readiness is re-evaluated while at least one Watch stream is open.
   * @default 1000
   */
  watchIntervalMs?: number;
  clock?: Clock;
}

/** The server's readiness, its health service and its Watch streams. */
export class HealthState {
  private readonly names: Set<string>;
  private draining = false;
  private closed = false;
  private last: Status | undefined;
  private readonly watchers = new Set<() => void>();
  private polling: Promise<void> | undefined;
  private readonly stopPolling = new AbortController();
  private readonly clock: Clock;
  private readonly intervalMs: number;

  constructor(private readonly opts: HealthOptions) {
    this.names = new Set(["", Health.typeName, ...opts.services]);
    this.clock = opts.clock ?? systemClock;
    this.intervalMs = opts.watchIntervalMs ?? 1000;
  }

  /** Readiness as /readyz reports it: "draining" once a drain began, else the dependency checks. */
  async readiness(): Promise<Readiness> {
    if (this.draining) return { ready: false, checks: { server: "draining" } };
    return this.opts.readiness();
  }

  /** Marks the server not-ready from now on and tells every Watch stream at once. */
  setDraining(): void {
    if (this.draining) return;
    this.draining = true;
    this.publish(Status.NOT_SERVING);
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** Ends every Watch stream (they would otherwise hold the drain open) and the poller. */
  close(): void {
    this.closed = true;
    this.stopPolling.abort();
    for (const w of this.watchers) w();
  }

  /** The status of one service name; undefined when this server does not serve it. */
  async status(service: string): Promise<Status | undefined> {
    if (!this.names.has(service)) return undefined;
    return (await this.readiness()).ready ? Status.SERVING : Status.NOT_SERVING;
  }

  /** The grpc.health.v1.Health implementation. */
  binding(): ServiceBinding {
    return bind(Health, {
      check: async (req: HealthCheckRequest): Promise<HealthCheckResponse> => {
        const status = await this.status(req.service);
        if (status === undefined) throw new ConnectError(`service ${JSON.stringify(req.service)} is not served here`, Code.NotFound);
        return create(HealthCheckResponseSchema, { status });
      },
      watch: (req: HealthCheckRequest, ctx: HandlerContext) => this.watch(req.service, ctx.signal),
    });
  }

  private async *watch(service: string, signal: AbortSignal): AsyncGenerator<HealthCheckResponse> {
    const known = this.names.has(service);
    // A change that lands while the stream is yielding is kept in `pending`, not lost.
    let pending = false;
    let wake: (() => void) | undefined;
    const waiter = (): void => {
      pending = true;
      wake?.();
    };
    this.watchers.add(waiter);
    signal.addEventListener("abort", waiter, { once: true });
    try {
      let sent: Status | undefined;
      const current = async (): Promise<Status> =>
        known ? ((await this.status(service)) ?? Status.SERVICE_UNKNOWN) : Status.SERVICE_UNKNOWN;
      let status = await current();
      if (known) this.last = status;
      if (known) this.ensurePolling();
      for (;;) {
        if (status !== sent) {
          yield create(HealthCheckResponseSchema, { status });
          sent = status;
        }
        if (this.closed || signal.aborted) return;
        if (!pending) await new Promise<void>((r) => (wake = r));
        pending = false;
        wake = undefined;
        if (this.closed || signal.aborted) return;
        status = known ? (this.draining ? Status.NOT_SERVING : (this.last ?? (await current()))) : Status.SERVICE_UNKNOWN;
      }
    } finally {
      this.watchers.delete(waiter);
      signal.removeEventListener("abort", waiter);
    }
  }

  private publish(status: Status): void {
    if (status === this.last) return;
    this.last = status;
    for (const w of this.watchers) w();
  }

  /** One poller for all Watch streams, running while any is open. */
  private ensurePolling(): void {
    this.polling ??= (async () => {
      try {
        while (!this.closed && this.watchers.size > 0) {
          await this.clock.sleep(this.intervalMs, this.stopPolling.signal);
          if (this.closed) break;
          const r = await this.readiness().catch((): Readiness => ({ ready: false, checks: {} }));
          this.publish(r.ready && !this.draining ? Status.SERVING : Status.NOT_SERVING);
        }
      } catch {
        // aborted by close()
      } finally {
        this.polling = undefined;
      }
    })();
  }
}
