// How dataset transfers ride out network and server failures: a bounded number of retries with
// exponential backoff (0.5 s, 1 s, 2 s, ... at most 15 s apart), `--retries N` (default 6).
import { count, str, type Context } from "./cli.js";

export const DEFAULT_RETRIES = 6;

/** Wait before retry `attempt` (1-based). */
export const backoffMs = (attempt: number): number => Math.min(500 * 2 ** (attempt - 1), 15_000);

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The --retries option. */
export function retriesOf(ctx: Context): number {
  return count(str(ctx, "retries"), "--retries") ?? DEFAULT_RETRIES;
}
