// Service processes: spawn a built service (`node dist/main.js`), wait until it listens, stop
// it. The one implementation: the test kit re-exports it for process-level tests (kill -9,
// conformance), the benchmarks use it for the services they measure.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";

export interface ServiceProcess {
  readonly proc: ChildProcess;
  readonly port: number;
  /** The log lines the process printed (parsed JSON where possible; the first `maxLogLines`). */
  readonly logs: unknown[];
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
}

export interface SpawnOptions {
  /** How long to wait for the "listening" log line. @default 20000 */
  readonly timeoutMs?: number;
  /** Node flags before the script (`--cpu-prof` and others NODE_OPTIONS does not allow). @default [] */
  readonly execArgv?: readonly string[];
  /** Log lines kept in `logs`, so a long benchmark does not hold every line. @default 10000 */
  readonly maxLogLines?: number;
}

/**
 * Spawns a built service (`node <mainJs>`) with only PATH and `env` in its environment and
 * waits for its "listening" log line (LOG_LEVEL is raised to info when silent or unset, so
 * the line is printed). Rejects with its stderr if it exits or times out first.
 */
export async function spawnService(mainJs: string, env: Record<string, string>, opts: SpawnOptions = {}): Promise<ServiceProcess> {
  if (!existsSync(mainJs)) throw new Error(`${mainJs} does not exist: build first (make build)`);
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const maxLogLines = opts.maxLogLines ?? 10_000;
  const proc = spawn(process.execPath, [...(opts.execArgv ?? []), mainJs], {
    env: { PATH: process.env.PATH ?? "", ...env, LOG_LEVEL: env.LOG_LEVEL === "silent" || !env.LOG_LEVEL ? "info" : env.LOG_LEVEL },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: unknown[] = [];
  const stderr: string[] = [];
  proc.stderr?.on("data", (d: Buffer) => stderr.push(d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`${mainJs} did not start within ${timeoutMs} ms; stderr: ${stderr.join("")}`));
    }, timeoutMs);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(
        new Error(`${mainJs} exited with ${code} before listening; stderr: ${stderr.join("")}; logs: ${JSON.stringify(logs.slice(-5))}`),
      );
    });
    createInterface({ input: proc.stdout }).on("line", (line) => {
      let parsed: unknown = line;
      try {
        parsed = JSON.parse(line);
      } catch {
        /* not JSON */
      }
      if (logs.length < maxLogLines) logs.push(parsed);
      const p = parsed as { port?: number; msg?: string };
      if (typeof p.port === "number" && p.msg?.startsWith("listening")) {
        clearTimeout(timer);
        resolve(p.port);
      }
    });
  });
  return { proc, port, logs, exited, kill: (s = "SIGTERM") => void proc.kill(s) };
}

/** Stops a spawned service with SIGTERM (a graceful drain) and waits for it to exit; a no-op if it has. */
export async function stopService(svc: ServiceProcess): Promise<number | null> {
  if (svc.proc.exitCode === null && svc.proc.signalCode === null) svc.kill("SIGTERM");
  return svc.exited;
}

/**
 * Polls `probe` every `pollMs` until it returns a value other than undefined; rejects after
 * `timeoutMs` naming `what`. For readiness beyond "listening" (a first checkpoint, /readyz).
 */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, pollMs = 10): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
