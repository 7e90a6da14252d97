// What every command gets: parsed options, output helpers and the usage error type.
import { existsSync, readFileSync } from "node:fs";

import { parseVerifierKey, type NoteVerifier } from "@deai/proofs";

/** A mistake in how the command was called: exit 2 with the usage text. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** A check that failed (verification, a missing integration): exit 1 with the reason. */
export class CheckFailed extends Error {
  override readonly name = "CheckFailed";
  /** With --json: fields added to the one `{"ok": false, "error"}` document (e.g. every check's outcome). */
  readonly detail: Record<string, unknown> | undefined;

  constructor(message: string, opts: { detail?: Record<string, unknown>; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.detail = opts.detail;
  }
}

export type Values = Record<string, string | boolean | string[] | undefined>;

export interface Context {
  readonly server: string;
  readonly json: boolean;
  readonly values: Values;
  readonly positionals: readonly string[];
  /** Human output (suppressed with --json). */
  say(line: string): void;
  /** Writes the one JSON document of --json mode. */
  emit(value: unknown): void;
  warn(line: string): void;
}

export function str(ctx: Context, name: string): string | undefined {
  const v = ctx.values[name];
  return typeof v === "string" ? v : undefined;
}

export function requireStr(ctx: Context, name: string): string {
  const v = str(ctx, name);
  if (v === undefined) throw new UsageError(`--${name} is required`);
  return v;
}

export function list(ctx: Context, name: string): string[] {
  const v = ctx.values[name];
  return Array.isArray(v) ? v : typeof v === "string" ? [v] : [];
}

export function flag(ctx: Context, name: string): boolean {
  return ctx.values[name] === true;
}

/** A non-negative decimal integer argument. */
export function count(text: string | undefined, what: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^(0|[1-9][0-9]{0,15})$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new UsageError(`${what} must be a non-negative integer, got ${JSON.stringify(text)}`);
  }
  return Number(text);
}

/** 32 bytes from 64 hex digits. */
export function hash32(hex: string, what: string): Buffer {
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new UsageError(`${what} must be 64 hex digits (a SHA-256 hash)`);
  return Buffer.from(hex, "hex");
}

/** A note verifier key given as text, or as the path of a file holding it. */
export function verifierKeyArg(value: string, what: string): NoteVerifier {
  let text = value;
  if (existsSync(value)) text = readFileSync(value, "utf8").trim();
  else if (value.split("+").length < 3) throw new UsageError(`${what}: ${value} is neither verifier key text nor an existing file`);
  try {
    return parseVerifierKey(text);
  } catch (e) {
    throw new UsageError(`${what}: ${(e as Error).message}`);
  }
}
