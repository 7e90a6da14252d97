// A C2SP tlog-witness that follows one log by polling: it fetches the newest log-signed
// checkpoint, checks the log's signature, proves it consistent with the last checkpoint it
// cosigned (GetConsistencyProof), saves its new state atomically, cosigns (type 0x04
// timestamped Ed25519, C2SP tlog-cosignature) and submits the cosignature with a signed
// AddCosignature request. It never cosigns a checkpoint that is not an extension of the last
// one it cosigned: it refuses loudly and stops instead.
import { existsSync, readFileSync } from "node:fs";
import { open, readFile, rename } from "node:fs/promises";
import { dirname } from "node:path";
import { parseArgs } from "node:util";

import { actorKeyFromSeed, signRequest, type ActorKey } from "@deai/kit";
import {
  base64Decode,
  base64Encode,
  bytesEqual,
  COSIGNATURE_V1_TYPE,
  formatSignatureLine,
  openCheckpoint,
  parseDecimal,
  parseSignerKey,
  parseVerifierKey,
  utf8Encode,
  verifyConsistency,
  type NoteSigner,
  type NoteVerifier,
} from "@deai/proofs";

/** What the witness remembers: the last checkpoint it cosigned. */
export interface WitnessState {
  readonly origin: string;
  readonly size: number;
  /** base64 root hash. */
  readonly rootHash: string;
  /** The log-signed checkpoint note it cosigned. */
  readonly checkpoint: string;
}

/** The log showed a checkpoint that does not extend the last cosigned one: evidence, not a retry. */
export class WitnessRefusal extends Error {
  override readonly name = "WitnessRefusal";
}

export interface WitnessOptions {
  /** Base URL of the log's REST API (and its tlog-tiles paths). */
  readonly log: string;
  readonly logVerifier: NoteVerifier;
  /** The witness's cosignature (type 0x04) key. */
  readonly signer: NoteSigner;
  /** The actor key (same Ed25519 key) that signs AddCosignature requests. */
  readonly actor: ActorKey;
  readonly statePath: string;
}

/** Loads the witness's state; undefined when it has cosigned nothing yet. */
export async function loadWitnessState(path: string): Promise<WitnessState | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  const s = JSON.parse(text) as WitnessState;
  if (typeof s.origin !== "string" || !Number.isSafeInteger(s.size) || s.size < 0 || base64Decode(s.rootHash)?.length !== 32) {
    throw new Error(`witness state ${path} is malformed`);
  }
  return s;
}

/** Writes the state atomically: a temporary file, fsync, rename, fsync of the directory. */
export async function saveWitnessState(path: string, state: WitnessState): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  const f = await open(tmp, "w", 0o600);
  try {
    await f.writeFile(JSON.stringify(state, null, 2) + "\n");
    await f.sync();
  } finally {
    await f.close();
  }
  await rename(tmp, path);
  const dir = await open(dirname(path), "r");
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

async function fetchText(url: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { headers: { accept: "text/plain, application/json" } });
  return { status: res.status, text: await res.text() };
}

/** The newest log-signed checkpoint: `/log-checkpoint` (this ledger), else the tlog-tiles `/checkpoint`. */
async function fetchCheckpoint(log: string): Promise<string> {
  let r = await fetchText(`${log}/log-checkpoint`);
  if (r.status === 404) r = await fetchText(`${log}/checkpoint`);
  if (r.status !== 200) throw new Error(`GET checkpoint from ${log}: HTTP ${r.status}: ${r.text.trim().slice(0, 200)}`);
  return r.text;
}

async function fetchConsistency(log: string, first: number, second: number): Promise<Uint8Array[]> {
  const r = await fetchText(`${log}/v1/ledger/proofs/consistency?first=${first}&second=${second}`);
  if (r.status !== 200) throw new Error(`GetConsistencyProof ${first} → ${second}: HTTP ${r.status}: ${r.text.trim().slice(0, 200)}`);
  const body = JSON.parse(r.text) as { consistencyProof?: string[] };
  return (body.consistencyProof ?? []).map((h) => base64Decode(h) ?? new Uint8Array());
}

/** One round: fetch, verify, prove consistent, save, cosign, submit. Throws WitnessRefusal on an inconsistent log. */
export async function witnessOnce(o: WitnessOptions): Promise<{ size: number; cosigned: true; state: WitnessState }> {
  const log = o.log.replace(/\/+$/, "");
  const note = await fetchCheckpoint(log);
  const verified = openCheckpoint(note, { log: o.logVerifier });
  const { size, rootHash, origin } = verified.checkpoint;
  const last = await loadWitnessState(o.statePath);
  if (last !== undefined) {
    const lastRoot = base64Decode(last.rootHash)!;
    if (last.origin !== origin) throw new WitnessRefusal(`the state file is for log ${last.origin}, not ${origin}`);
    if (size < last.size) {
      throw new WitnessRefusal(`log ${origin} rolled back: checkpoint of size ${size} after the cosigned size ${last.size}`);
    }
    if (size === last.size && !bytesEqual(rootHash, lastRoot)) {
      throw new WitnessRefusal(`log ${origin} forked: two different roots for size ${size}`);
    }
    if (size > last.size && last.size > 0) {
      const proof = await fetchConsistency(log, last.size, size);
      try {
        verifyConsistency(last.size, size, proof, lastRoot, rootHash);
      } catch (e) {
        throw new WitnessRefusal(
          `log ${origin}: checkpoint of size ${size} is not consistent with the cosigned checkpoint of size ${last.size}: ${(e as Error).message}`,
        );
      }
    }
  }
  const state: WitnessState = { origin, size, rootHash: base64Encode(rootHash), checkpoint: note };
  // Saved before the cosignature leaves: a crash can lose a cosignature, never the state it vouches for.
  await saveWitnessState(o.statePath, state);
  const line = formatSignatureLine({
    name: o.signer.name,
    keyId: o.signer.keyId,
    signature: o.signer.sign(utf8Encode(verified.note.text)!),
  });
  const path = "/v1/ledger/checkpoints/cosignatures";
  const body = utf8Encode(JSON.stringify({ treeSize: String(size), rootHash: base64Encode(rootHash), signatureLine: line }))!;
  const res = await fetch(`${log}${path}`, {
    method: "POST",
    body,
    headers: { "content-type": "application/json", ...signRequest({ key: o.actor, method: "POST", url: `${log}${path}`, body }) },
  });
  if (res.status !== 200) throw new Error(`AddCosignature for size ${size}: HTTP ${res.status}: ${(await res.text()).slice(0, 300)}`);
  return { size, cosigned: true, state };
}

/** Key text given inline, or the path of a file holding it. */
function keyText(value: string, looksLike: (s: string) => boolean): string {
  if (looksLike(value)) return value;
  if (existsSync(value)) return readFileSync(value, "utf8").trim();
  return value;
}

/** The witness's cosignature signer and its actor key (the same Ed25519 seed). */
export function witnessKeys(signerKey: string): { signer: NoteSigner; actor: ActorKey } {
  const signer = parseSignerKey(signerKey);
  if (signer.type !== COSIGNATURE_V1_TYPE)
    throw new Error("--witness-key must be a cosignature (type 0x04) signer key: use witness-keygen");
  const seed = base64Decode(signerKey.split("+").slice(4).join("+"))!.subarray(1);
  return { signer, actor: actorKeyFromSeed(Buffer.from(seed).toString("base64url")) };
}

const USAGE = `usage: main.js witness --log URL --log-key KEY --witness-key SIGNER_KEY --state FILE [--interval-ms N] [--once]
  KEY and SIGNER_KEY are key text or files holding it (witness keys come from main.js witness-keygen <name>).
  exit 0: done (--once) or stopped; 1: error; 3: refused an inconsistent checkpoint.`;

/** `main.js witness ...`: returns the exit code. */
export async function runWitness(argv: readonly string[], signal: AbortSignal): Promise<number> {
  let o: WitnessOptions;
  let once: boolean;
  let intervalMs: number;
  try {
    const { values } = parseArgs({
      args: [...argv],
      options: {
        log: { type: "string" },
        "log-key": { type: "string" },
        "witness-key": { type: "string" },
        state: { type: "string" },
        "interval-ms": { type: "string" },
        once: { type: "boolean", default: false },
      },
      strict: true,
    });
    for (const k of ["log", "log-key", "witness-key", "state"] as const) if (!values[k]) throw new Error(`--${k} is required`);
    const { signer, actor } = witnessKeys(keyText(values["witness-key"]!, (s) => s.startsWith("PRIVATE+KEY+")));
    o = {
      log: values.log!,
      logVerifier: parseVerifierKey(keyText(values["log-key"]!, (s) => s.split("+").length >= 3 && !existsSync(s))),
      signer,
      actor,
      statePath: values.state!,
    };
    once = values.once;
    // Canonical decimal only: Number() would take " 10", "0x10" and "1e3".
    const interval = parseDecimal(values["interval-ms"] ?? "10000");
    if (interval === undefined || interval < 10) throw new Error("--interval-ms must be a decimal integer ≥ 10");
    intervalMs = interval;
  } catch (e) {
    process.stderr.write(`witness: ${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  for (;;) {
    try {
      const r = await witnessOnce(o);
      process.stdout.write(`witness ${o.signer.name}: cosigned ${r.state.origin} size ${r.size} root ${r.state.rootHash}\n`);
      if (once) return 0;
    } catch (e) {
      if (e instanceof WitnessRefusal) {
        process.stderr.write(
          `\nwitness ${o.signer.name}: REFUSING TO COSIGN: ${e.message}\nwitness: stopped; the state file is unchanged\n\n`,
        );
        return 3;
      }
      process.stderr.write(`witness ${o.signer.name}: ${(e as Error).message}\n`);
      if (once) return 1;
    }
    if (signal.aborted) return 0;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, intervalMs);
      signal.addEventListener("abort", () => {
        clearTimeout(t);
        resolve();
      });
    });
    if (signal.aborted) return 0;
  }
}
