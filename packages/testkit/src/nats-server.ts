import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { connect as tcpConnect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A private nats-server with JetStream (its own port and store), for tests that restart NATS. */
export interface PrivateNats {
  /** nats://127.0.0.1:<port> (the same across restarts). */
  readonly url: string;
  readonly port: number;
  /** Kills the server (SIGKILL: connections drop as in a crash); the store is kept. */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same store (streams and consumers survive). */
  start(): Promise<void>;
  /** Stops it and deletes its store. */
  close(): Promise<void>;
}

const NATS_SERVER = process.env.TEST_NATS_SERVER ?? "/usr/sbin/nats-server";

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function accepting(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = tcpConnect(port, "127.0.0.1");
    c.once("connect", () => (c.destroy(), resolve(true)));
    c.once("error", () => resolve(false));
  });
}

/** Starts /usr/sbin/nats-server (TEST_NATS_SERVER overrides) with JetStream on a free loopback port. */
export async function startPrivateNats(): Promise<PrivateNats> {
  const port = await freePort();
  const store = await mkdtemp(join(tmpdir(), "deai-nats-"));
  let proc: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    if (proc) return;
    const p = spawn(NATS_SERVER, ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", store], { stdio: "ignore" });
    proc = p;
    const until = Date.now() + 20_000;
    while (!(await accepting(port))) {
      if (p.exitCode !== null) throw new Error(`nats-server exited with ${p.exitCode} (port ${port})`);
      if (Date.now() > until) throw new Error(`nats-server did not accept connections on ${port} within 20 s`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const stop = async (): Promise<void> => {
    const p = proc;
    if (!p) return;
    proc = undefined;
    if (p.exitCode === null) {
      const exited = new Promise((r) => p.once("exit", r));
      p.kill("SIGKILL");
      await exited;
    }
  };
  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    stop,
    start,
    close: async () => {
      await stop();
      await rm(store, { recursive: true, force: true });
    },
  };
}
