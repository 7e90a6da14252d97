import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";

export interface ServiceProcess {
  readonly proc: ChildProcess;
  readonly port: number;
  /** Every log line the process printed (parsed JSON where possible). */
  readonly logs: unknown[];
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
}

/** Spawns a built service (`node dist/main.js`) and waits for its "listening" log line. */
export async function spawnService(
  mainJs: string,
  env: Record<string, string>,
  opts: { timeoutMs?: number } = {},
): Promise<ServiceProcess> {
  if (!existsSync(mainJs)) throw new Error(`${mainJs} does not exist: build first (make build)`);
  const proc = spawn(process.execPath, [mainJs], {
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
      reject(new Error(`${mainJs} did not start within ${opts.timeoutMs ?? 20000} ms; stderr: ${stderr.join("")}`));
    }, opts.timeoutMs ?? 20000);
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
      logs.push(parsed);
      const p = (parsed as { port?: number; msg?: string }).port;
      if (typeof p === "number" && (parsed as { msg?: string }).msg?.startsWith("listening")) {
        clearTimeout(timer);
        resolve(p);
      }
    });
  });
  return { proc, port, logs, exited, kill: (s = "SIGTERM") => void proc.kill(s) };
}
