/**
 * Clients that hold connections without finishing a request: an HTTP/2 preface then
 * silence, HTTP/1.1 headers one byte at a time, a POST body one byte at a time, and idle
 * sockets beyond the connection cap. Each must be closed by the server within a bound, and
 * a fresh client must get /healthz answered while they are open.
 */
import { connect, type Socket } from "node:net";

import { sendHttp } from "./transports.js";

export type SlowClientKind = "h2-preface-then-silence" | "h1-headers-byte-by-byte" | "slow-post-body" | "idle-socket";

/** The HTTP/2 connection preface and an empty SETTINGS frame: a client that said hello and nothing more. */
const H2_PREFACE = Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1"), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);

export interface SlowClientResult {
  readonly kind: SlowClientKind;
  readonly opened: number;
  /** How long each socket stayed open (ms); Infinity when still open at the bound. */
  readonly openMs: readonly number[];
  /** Whether a fresh client's /healthz answered while they were open, and how fast. */
  readonly freshHealthz: { ok: boolean; ms: number; detail: string };
}

function openSocket(baseUrl: string): Promise<Socket> {
  const u = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const s = connect({ host: u.hostname, port: Number(u.port) }, () => resolve(s));
    s.once("error", reject);
  });
}

/** A /healthz on a new connection, retried every 100 ms for up to `withinMs`. */
export async function freshHealthz(baseUrl: string, withinMs: number): Promise<{ ok: boolean; ms: number; detail: string }> {
  const t0 = Date.now();
  let detail = "";
  while (Date.now() - t0 < withinMs) {
    const a = await sendHttp(baseUrl, { method: "GET", target: "/healthz", fresh: true });
    if (a.status === 200) return { ok: true, ms: Date.now() - t0, detail: "" };
    detail = a.broken ?? `HTTP ${a.status}`;
    await new Promise((r) => setTimeout(r, 100));
  }
  return { ok: false, ms: Date.now() - t0, detail };
}

/**
 * Opens `count` slow clients of `kind`, checks a fresh /healthz while they are open, and
 * waits up to `boundMs` for the server to close each. Dripping clients send one byte every
 * `dripMs` (shorter than any idle timeout, so only header and request timeouts stop them).
 */
export async function runSlowClients(
  baseUrl: string,
  kind: SlowClientKind,
  o: { count: number; boundMs: number; dripMs: number; freshWithinMs: number },
): Promise<SlowClientResult> {
  const sockets: Socket[] = [];
  const openMs: number[] = [];
  const timers: NodeJS.Timeout[] = [];
  const closed: Promise<void>[] = [];
  for (let i = 0; i < o.count; i++) {
    let s: Socket;
    try {
      s = await openSocket(baseUrl);
    } catch {
      // Refused at the door: closed at once.
      openMs.push(0);
      continue;
    }
    const t0 = Date.now();
    s.on("error", () => undefined);
    s.on("data", () => undefined);
    closed.push(new Promise<void>((r) => s.once("close", () => (openMs.push(Date.now() - t0), r()))));
    sockets.push(s);
    if (kind === "h2-preface-then-silence") s.write(H2_PREFACE);
    if (kind === "h1-headers-byte-by-byte" || kind === "slow-post-body") {
      const head =
        kind === "slow-post-body"
          ? "POST /v1/system/whoami HTTP/1.1\r\nHost: abuse\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
          : "GET /healthz HTTP/1.1\r\nHost: abuse\r\nX-Slow: ";
      s.write(head);
      const drip = kind === "slow-post-body" ? " " : "X";
      const t = setInterval(() => {
        if (!s.destroyed) s.write(drip);
      }, o.dripMs);
      timers.push(t);
    }
  }
  const fresh = await freshHealthz(baseUrl, o.freshWithinMs);
  const bound = new Promise<void>((r) => setTimeout(r, o.boundMs).unref());
  await Promise.race([Promise.all(closed), bound]);
  for (const t of timers) clearInterval(t);
  const stillOpen = sockets.filter((s) => !s.destroyed && !s.closed).length;
  for (const s of sockets) s.destroy();
  return { kind, opened: o.count, openMs: [...openMs, ...Array<number>(stillOpen).fill(Infinity)], freshHealthz: fresh };
}
