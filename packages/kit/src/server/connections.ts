/**
 * Connection limits of the kit's server: how long a connection may stay silent, idle or
 * half-sent, and how many connections one address and everyone together may hold. Without
 * them one unauthenticated client opening sockets that never finish a request exhausts the
 * process's file descriptors and every other client, /healthz included, is refused.
 *
 * The rules (all measured on the raw TCP socket, whatever protocol runs over it):
 *
 * - **Sniffing and headers.** A new connection must send its first bytes, and an HTTP/1.1
 *   request its complete headers, within `headersTimeoutMs` (HTTP/1.1 answers 408).
 * - **Idle.** A connection with no request in flight (an idle keep-alive HTTP/1.1 socket, an
 *   HTTP/2 session after its preface or between calls, a stream whose HEADERS never end) is
 *   closed after `idleTimeoutMs`, pings or not: idleness is about requests, not bytes.
 * - **Slow request bodies.** While a request body is still arriving and the server is waiting
 *   for it (nothing unread in its buffer, so the server is not the one behind), the connection
 *   must deliver at least `minBytesPerWindow` bytes in every `inactivityTimeoutMs` window, or
 *   it is closed. A large upload that keeps sending is never cut, however long it takes; a
 *   body trickled at a few bytes a window is.
 * - **Caps.** At most `maxConnections` connections in all and `maxConnectionsPerAddress` per
 *   remote address. At a cap the newcomer takes the place of the connection that has been
 *   idle (or silent) longest; only when every connection has a request in flight is the
 *   newcomer refused. So a flood of half-open sockets cannot keep others (probes of /healthz
 *   included) out, and one address cannot hold more than its share.
 *
 * Responses being written (a long server-streaming download) are never subject to these
 * limits: they are the server's own work.
 */
import { readFileSync } from "node:fs";
import type { Socket } from "node:net";

import { systemClock, type Clock } from "../time/clock.js";

export interface ConnectionLimits {
  /**
   * A new connection's first bytes and an HTTP/1.1 request's complete headers must arrive
   * within this.
   * @default 10_000
   */
  headersTimeoutMs?: number;
  /**
   * A connection with no request in flight is closed after this long.
   * @default 30_000
   */
  idleTimeoutMs?: number;
  /**
   * The window over which a connection still sending a request body must deliver
   * `minBytesPerWindow` bytes.
   * @default 30_000
   */
  inactivityTimeoutMs?: number;
  /**
   * Bytes a connection must deliver per `inactivityTimeoutMs` while a request body is arriving.
   * @default 1024
   */
  minBytesPerWindow?: number;
  /**
   * Connections held at once, all addresses together.
   * @default half the process's open-files limit, between 64 and 4096 (1024 when unknown)
   */
  maxConnections?: number;
  /**
   * Connections held at once per remote address. Behind a reverse proxy that puts every
   * client on its own address, raise it to `maxConnections`.
   * @default a quarter of maxConnections, at least 8
   */
  maxConnectionsPerAddress?: number;
  /**
   * Concurrent streams an HTTP/2 client may open on one session.
   * @default 100
   */
  maxStreamsPerSession?: number;
}

export type ResolvedLimits = Required<ConnectionLimits>;

/** The soft RLIMIT_NOFILE of this process (Linux), or undefined where it cannot be read. */
function openFilesLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export function resolveLimits(l: ConnectionLimits = {}): ResolvedLimits {
  const files = openFilesLimit();
  const maxConnections = l.maxConnections ?? (files === undefined ? 1024 : Math.max(64, Math.min(4096, Math.floor(files / 2))));
  const r: ResolvedLimits = {
    headersTimeoutMs: l.headersTimeoutMs ?? 10_000,
    idleTimeoutMs: l.idleTimeoutMs ?? 30_000,
    inactivityTimeoutMs: l.inactivityTimeoutMs ?? 30_000,
    minBytesPerWindow: l.minBytesPerWindow ?? 1024,
    maxConnections,
    maxConnectionsPerAddress: l.maxConnectionsPerAddress ?? Math.max(8, Math.floor(maxConnections / 4)),
    maxStreamsPerSession: l.maxStreamsPerSession ?? 100,
  };
  for (const [k, v] of Object.entries(r)) {
    if (!Number.isSafeInteger(v) || v <= 0) throw new Error(`server limit ${k} must be a positive integer, got ${v}`);
  }
  return r;
}

/** A request body (the HTTP/1.1 message or the HTTP/2 stream) as the guard watches it. */
interface Receiving {
  readonly readableLength: number;
  readonly readableEnded: boolean;
  /** Internal to node:stream, but the only flag that says "all received" before anyone reads it. */
  readonly _readableState?: { ended?: boolean };
}

/** Whether the whole body has arrived (read by the handler or not). */
function received(r: Receiving): boolean {
  return r.readableEnded || r._readableState?.ended === true;
}

/** One accepted TCP connection as the guard sees it. */
export class Connection {
  /** Until the protocol is known, the connection is "sniffing". */
  protocol: "sniffing" | "h1" | "h2" = "sniffing";
  inFlight = 0;
  /** When the connection last had no request in flight (or was accepted). */
  idleSince: number;
  readonly receiving = new Set<Receiving>();
  /** Bytes read when the connection last became idle: more since means a request is arriving. */
  private bytesAtIdle = 0;
  private windowStart = 0;
  private windowBytes = 0;
  /** How to close it politely (HTTP/2 GOAWAY); destroy is the fallback. */
  close: () => void;

  constructor(
    readonly socket: Socket,
    readonly address: string,
    private readonly clock: Clock,
  ) {
    this.idleSince = clock.nowMs();
    this.close = () => socket.destroy();
  }

  get idle(): boolean {
    return this.inFlight === 0;
  }

  /** Idle, but bytes of a next request (or of the first) have been read since. */
  get arriving(): boolean {
    return this.inFlight === 0 && this.socket.bytesRead > this.bytesAtIdle;
  }

  /** Starts a request; returns the function that ends it. */
  begin(body: Receiving): () => void {
    this.inFlight++;
    if (!received(body)) {
      if (this.receiving.size === 0) this.resetWindow(this.clock.nowMs());
      this.receiving.add(body);
    }
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.receiving.delete(body);
      if (--this.inFlight === 0) {
        this.idleSince = this.clock.nowMs();
        this.bytesAtIdle = this.socket.bytesRead;
      }
    };
  }

  private resetWindow(now: number): void {
    this.windowStart = now;
    this.windowBytes = this.socket.bytesRead;
  }

  /** Why the connection must go now, or undefined. */
  verdict(now: number, l: ResolvedLimits): string | undefined {
    if (this.protocol === "sniffing")
      return now - this.idleSince > l.headersTimeoutMs ? "no request within the headers timeout" : undefined;
    if (this.inFlight === 0) {
      // An HTTP/1.1 request whose headers are arriving is the header timeout's (408); an
      // HTTP/2 session stays idle whatever frames (pings, half a HEADERS) it gets.
      if (this.protocol === "h1" && this.socket.bytesRead > this.bytesAtIdle) return undefined;
      return now - this.idleSince > l.idleTimeoutMs ? "idle" : undefined;
    }
    for (const r of this.receiving) if (received(r)) this.receiving.delete(r);
    if (this.receiving.size === 0) return undefined;
    for (const r of this.receiving) {
      // Bytes wait unread in the server: the server is behind, not the client.
      if (r.readableLength > 0) {
        this.resetWindow(now);
        return undefined;
      }
    }
    if (now - this.windowStart < l.inactivityTimeoutMs) return undefined;
    const moved = this.socket.bytesRead - this.windowBytes;
    this.resetWindow(now);
    return moved < l.minBytesPerWindow ? `request body too slow: ${moved} bytes in ${l.inactivityTimeoutMs} ms` : undefined;
  }
}

const connectionKey = Symbol("deai.connection");

/** Admits, tracks and expires connections by the limits. */
export class ConnectionGuard {
  private readonly all = new Set<Connection>();
  private readonly byAddress = new Map<string, Set<Connection>>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly limits: ResolvedLimits,
    private readonly onClosed: (c: Connection, why: string) => void = () => undefined,
    private readonly clock: Clock = systemClock,
  ) {}

  get size(): number {
    return this.all.size;
  }

  get connections(): Iterable<Connection> {
    return this.all;
  }

  /**
   * The connection a socket, the stream wrapping it or an HTTP/2 session belongs to. A
   * symbol property rather than a WeakMap: http2 hands out a Proxy of the session's socket
   * (a different identity) that forwards property reads to it.
   */
  of(obj: object | undefined | null): Connection | undefined {
    return (obj as { [connectionKey]?: Connection } | undefined | null)?.[connectionKey];
  }

  /** Marks another object (a wrapping Duplex, an HTTP/2 session) as belonging to `c`. */
  alias(obj: object, c: Connection): void {
    Object.defineProperty(obj, connectionKey, { value: c });
  }

  /** Admits a new socket, making room by closing the longest-idle connection at a cap; undefined when refused. */
  admit(socket: Socket): Connection | undefined {
    const address = socket.remoteAddress ?? "unknown";
    const mine = this.byAddress.get(address);
    if (mine && mine.size >= this.limits.maxConnectionsPerAddress && !this.evictIdlest(mine, "per-address cap")) return undefined;
    if (this.all.size >= this.limits.maxConnections && !this.evictIdlest(this.all, "connection cap")) return undefined;
    const c = new Connection(socket, address, this.clock);
    this.all.add(c);
    let set = this.byAddress.get(address);
    if (!set) this.byAddress.set(address, (set = new Set()));
    set.add(c);
    this.alias(socket, c);
    socket.once("close", () => {
      this.all.delete(c);
      const s = this.byAddress.get(address);
      s?.delete(c);
      if (s?.size === 0) this.byAddress.delete(address);
    });
    this.start();
    return c;
  }

  private evictIdlest(among: Iterable<Connection>, why: string): boolean {
    let victim: Connection | undefined;
    for (const c of among) {
      if (!c.idle || c.socket.destroyed) continue;
      // Connections with no bytes of a next request go first; then those still sniffing (they
      // have never made a request); then the longest idle.
      if (
        !victim ||
        (victim.arriving && !c.arriving) ||
        (victim.arriving === c.arriving &&
          ((c.protocol === "sniffing" && victim.protocol !== "sniffing") ||
            (c.protocol === victim.protocol && c.idleSince < victim.idleSince)))
      )
        victim = c;
    }
    if (!victim) return false;
    this.expire(victim, why);
    return true;
  }

  private expire(c: Connection, why: string): void {
    this.onClosed(c, why);
    // Removed from the sets at once, so a cap counts it gone even before its close event.
    this.all.delete(c);
    this.byAddress.get(c.address)?.delete(c);
    c.close();
    c.socket.destroy();
  }

  private start(): void {
    if (this.timer) return;
    const l = this.limits;
    const tick = Math.max(20, Math.min(1000, Math.floor(Math.min(l.headersTimeoutMs, l.idleTimeoutMs, l.inactivityTimeoutMs) / 4)));
    this.timer = setInterval(() => this.sweepSettled(), tick).unref();
  }

  /** Closes every connection whose verdict says so. */
  sweep(now = this.clock.nowMs()): void {
    for (const c of [...this.all]) {
      const why = c.verdict(now, this.limits);
      if (why) this.expire(c, why);
    }
  }

  /**
   * The timer's sweep. Timers run before the event loop polls sockets, so after the process
   * stalled (a loaded machine, a long GC), a request that arrived during the stall is still
   * unread in the kernel and its connection looks idle past its deadline. A connection found
   * idle or silent past its deadline is therefore judged again after the next poll
   * (setImmediate), with the bytes read by then; only a verdict that still holds closes it.
   */
  private sweepSettled(): void {
    const now = this.clock.nowMs();
    const suspects: Connection[] = [];
    for (const c of [...this.all]) {
      const why = c.verdict(now, this.limits);
      if (!why) continue;
      // A body too slow was measured over a whole window (and judging it moves the window).
      if (c.inFlight > 0) this.expire(c, why);
      else suspects.push(c);
    }
    if (suspects.length === 0) return;
    setImmediate(() => {
      const now = this.clock.nowMs();
      for (const c of suspects) {
        if (!this.all.has(c)) continue;
        const why = c.verdict(now, this.limits);
        if (why) this.expire(c, why);
      }
    });
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
