/**
 * Connection limits (issue 9, defect 1): silent, trickling and idle connections are closed
 * within bounded time, caps keep one address from holding every socket, and long transfers
 * that keep moving are never cut. Limits are a few hundred ms so each case is bounded.
 */
import type { ServerResponse } from "node:http";
import { connect as connectH2 } from "node:http2";
import { connect, type Socket } from "node:net";

import { resolveLimits } from "../src/server/connections.js";
import { sleep, startTestServer, type TestServer } from "./server-harness.js";

const limits = {
  headersTimeoutMs: 400,
  idleTimeoutMs: 300,
  inactivityTimeoutMs: 300,
  minBytesPerWindow: 64,
  maxConnections: 12,
  maxConnectionsPerAddress: 6,
};

let t: TestServer;
const chunk = Buffer.alloc(16 * 1024, 7);

beforeAll(async () => {
  t = await startTestServer({
    limits,
    // An upload that counts what it received, and a download of `n` slow chunks.
    http: async (req, res) => {
      const url = new URL(req.url ?? "/", "http://x");
      if (url.pathname === "/upload") {
        let n = 0;
        for await (const c of req as AsyncIterable<Buffer>) n += c.length;
        res.writeHead(200, { "content-type": "text/plain" }).end(String(n));
        return true;
      }
      if (url.pathname === "/download") {
        res.writeHead(200, { "content-type": "application/octet-stream" });
        for (let i = 0; i < Number(url.searchParams.get("n")); i++) {
          await sleep(100);
          (res as ServerResponse).write(chunk);
        }
        res.end();
        return true;
      }
      if (url.pathname === "/hold") {
        await sleep(Number(url.searchParams.get("ms")));
        res.writeHead(200).end("held");
        return true;
      }
      return false;
    },
  });
});
afterAll(async () => t?.close());

/** Opens a socket (from `localAddress`), writes `first`, and resolves when the server closes it, with the elapsed ms. */
function openSocket(
  first: string | Buffer,
  localAddress = "127.0.0.1",
): { socket: Socket; closed: Promise<number>; received: () => string } {
  const started = Date.now();
  let got = "";
  const socket = connect({ port: t.port, host: "127.0.0.1", localAddress }, () => {
    if (first.length > 0) socket.write(first);
  });
  socket.on("data", (d: Buffer) => (got += d.toString("latin1")));
  socket.on("error", () => undefined);
  const closed = new Promise<number>((r) => socket.once("close", () => r(Date.now() - started)));
  return { socket, closed, received: () => got };
}

const within = <T>(p: Promise<T>, ms: number): Promise<T | "still open"> => Promise.race([p, sleep(ms).then(() => "still open" as const)]);

describe("server connection limits", () => {
  it("documents defaults a public service can live with", () => {
    const d = resolveLimits({ maxConnections: 1000 });
    expect(d).toEqual({
      headersTimeoutMs: 10_000,
      idleTimeoutMs: 30_000,
      inactivityTimeoutMs: 30_000,
      minBytesPerWindow: 1024,
      maxConnections: 1000,
      maxConnectionsPerAddress: 250,
      maxStreamsPerSession: 100,
    });
    const auto = resolveLimits();
    expect(auto.maxConnections).toBeGreaterThanOrEqual(64);
    expect(auto.maxConnections).toBeLessThanOrEqual(4096);
    expect(() => resolveLimits({ idleTimeoutMs: 0 })).toThrow(/idleTimeoutMs/);
  });

  it("closes a connection that never sends a byte", async () => {
    const s = openSocket("");
    expect(await within(s.closed, 2000)).toBeLessThan(1000);
  });

  it("closes an HTTP/2 connection that sends its preface and then nothing", async () => {
    const s = openSocket("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    expect(await within(s.closed, 2000)).toBeLessThan(1000);
  });

  it("closes an HTTP/2 session whose stream never finishes its headers", async () => {
    // Preface, empty SETTINGS, then a HEADERS frame without END_HEADERS and no CONTINUATION.
    const settings = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
    const headers = Buffer.from([0, 0, 1, 1, 0, 0, 0, 0, 1, 0x82]);
    const s = openSocket(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), settings, headers]));
    expect(await within(s.closed, 2000)).toBeLessThan(1000);
  });

  it("closes HTTP/1.1 headers trickled a byte at a time with 408", async () => {
    const s = openSocket("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    const trickle = setInterval(() => s.socket.writable && s.socket.write("a"), 100);
    try {
      expect(await within(s.closed, 3000)).toBeLessThan(1500);
      expect(s.received()).toMatch(/^HTTP\/1.1 408/);
    } finally {
      clearInterval(trickle);
    }
  });

  it("closes a slow POST body, and an idle keep-alive connection", async () => {
    const slow = openSocket("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
    const trickle = setInterval(() => slow.socket.writable && slow.socket.write("a"), 50);
    try {
      expect(await within(slow.closed, 3000)).toBeLessThan(1500);
    } finally {
      clearInterval(trickle);
    }
    const idle = openSocket("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    expect(await within(idle.closed, 2000)).toBeLessThan(1200);
    expect(idle.received()).toMatch(/^HTTP\/1.1 200/);
  });

  it("never cuts an upload that keeps sending or a download that keeps receiving, for many windows", async () => {
    // ~1.5 s of upload (5 windows) at a steady pace, well above the minimum rate.
    const up = openSocket(`POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: ${15 * chunk.length}\r\n\r\n`);
    for (let i = 0; i < 15; i++) {
      await sleep(100);
      up.socket.write(chunk);
    }
    for (let i = 0; i < 20 && !up.received().includes("\r\n\r\n"); i++) await sleep(50);
    expect(up.received()).toMatch(/^HTTP\/1.1 200/);
    expect(up.received()).toContain(`\r\n${15 * chunk.length}\r\n`);
    up.socket.destroy();

    // ~1.5 s of HTTP/2 download: the request body ended, the server is the one writing.
    const session = connectH2(t.base);
    const got = await new Promise<number>((resolve, reject) => {
      const s = session.request({ ":path": "/download?n=15" });
      let n = 0;
      s.on("data", (d: Buffer) => (n += d.length));
      s.on("end", () => resolve(n));
      s.on("error", reject);
    });
    session.close();
    expect(got).toBe(15 * chunk.length);

    // A handler slower than every timeout: the client is waiting for the server, not idle.
    const held = await fetch(`${t.base}/hold?ms=900`);
    expect(await held.text()).toBe("held");
  });

  it("caps connections per address, yet a newcomer replaces idle ones and /healthz answers other addresses", async () => {
    // Six silent sockets from one address fill its share; a seventh evicts the oldest silent one.
    const silent = Array.from({ length: 6 }, () => openSocket(""));
    await sleep(50);
    const healthz = await fetch(`${t.base}/healthz`);
    expect(healthz.status).toBe(200);
    expect(await within(silent[0]!.closed, 100)).not.toBe("still open");
    for (const s of silent) s.socket.destroy();
    await sleep(50);

    // Six connections of another address with requests in flight: the seventh is refused quickly,
    // while another address is still served.
    const busy = Array.from({ length: 6 }, () => {
      const s = openSocket("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n", "127.0.0.3");
      s.socket.once("connect", () => s.socket.write(chunk));
      return s;
    });
    const feed = setInterval(() => busy.forEach((s) => s.socket.writable && s.socket.write(chunk)), 50);
    try {
      await sleep(100);
      const refused = openSocket("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "127.0.0.3");
      expect(await within(refused.closed, 500)).not.toBe("still open");
      expect(refused.received()).toBe("");
      const other = openSocket("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "127.0.0.2");
      await within(other.closed, 1000);
      expect(other.received()).toMatch(/^HTTP\/1.1 200/);
      for (const s of busy) expect(s.socket.destroyed).toBe(false);
    } finally {
      clearInterval(feed);
      for (const s of busy) s.socket.destroy();
    }
  });
});
