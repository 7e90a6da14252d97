// A TCP proxy in front of one server (an S3 provider) that holds every answer back by `delayMs` (settable
// while running): a provider that is slow but serving. Chunks keep their order.
import { connect, createServer, type Server, type Socket } from "node:net";

export interface DelayProxy {
  readonly endpoint: string;
  delayMs: number;
  close(): Promise<void>;
}

export async function startDelayProxy(target: string): Promise<DelayProxy> {
  const u = new URL(target);
  const sockets = new Set<Socket>();
  const proxy = { delayMs: 0 };
  const server: Server = createServer((client) => {
    const upstream = connect(Number(u.port), u.hostname);
    sockets.add(client).add(upstream);
    client.on("data", (d: Buffer) => upstream.write(d));
    upstream.on("data", (d: Buffer) => {
      const ms = proxy.delayMs;
      if (ms <= 0) client.write(d);
      else setTimeout(() => client.writable && client.write(d), ms);
    });
    const end = (): void => {
      // Let delayed chunks go out before closing.
      setTimeout(() => (client.destroy(), upstream.destroy()), proxy.delayMs + 10);
    };
    client.on("close", end).on("error", end);
    upstream.on("close", end).on("error", end);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return Object.assign(proxy, {
    endpoint: `http://127.0.0.1:${port}`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  });
}
