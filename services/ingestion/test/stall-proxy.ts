// A TCP proxy in front of one S3 server that can stall: in "stall" mode it stops moving bytes
// both ways on every connection (old and new) without closing them, as a provider that
// accepts and then hangs; "holdOpen" stalls only the connections with a request in flight now (idle
// keep-alive connections, and requests after it, pass). It counts HEAD requests (bucket probes) passing through.
import { createServer, connect, type Server, type Socket } from "node:net";

export interface StallProxy {
  readonly endpoint: string;
  /** HEAD requests seen (the liveness probe is a HEAD bucket). */
  readonly heads: number;
  stall(): void;
  /** Stalls the connections open now (a request in flight hangs); new connections pass. */
  holdOpen(): void;
  resume(): void;
  close(): Promise<void>;
}

export async function startStallProxy(target: string): Promise<StallProxy> {
  const u = new URL(target);
  // `busy`: the client sent bytes the upstream has not answered yet (a request in flight); an
  // idle keep-alive connection is not busy, so holdOpen leaves it (and the next request on it) alone.
  const pairs = new Set<{ client: Socket; upstream: Socket; busy: boolean }>();
  let stalled = false;
  let heads = 0;
  const server: Server = createServer((client) => {
    const upstream = connect(Number(u.port), u.hostname);
    const pair = { client, upstream, busy: false };
    pairs.add(pair);
    client.on("data", (d: Buffer) => {
      heads += d.toString("latin1").match(/(^|\r\n)HEAD \//g)?.length ?? 0;
      pair.busy = true;
      upstream.write(d);
    });
    upstream.on("data", (d: Buffer) => {
      pair.busy = false;
      client.write(d);
    });
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on("close", end).on("error", end);
    upstream.on("close", end).on("error", end);
    if (stalled) {
      client.pause();
      upstream.pause();
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    get heads() {
      return heads;
    },
    stall: () => {
      stalled = true;
      for (const p of pairs) {
        p.client.pause();
        p.upstream.pause();
      }
    },
    holdOpen: () => {
      for (const p of pairs) {
        if (!p.busy) continue;
        p.client.pause();
        p.upstream.pause();
      }
    },
    resume: () => {
      stalled = false;
      for (const p of pairs) {
        p.client.resume();
        p.upstream.resume();
      }
    },
    close: async () => {
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
