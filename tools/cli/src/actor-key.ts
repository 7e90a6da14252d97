// Actor keys and request signing, from the service kit. The kit is imported lazily: loading
// it costs over a second (it brings Postgres, NATS and OpenTelemetry), and only the commands
// that sign need it, so reads and offline verification stay fast.
import { randomBytes, sign } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";

import type * as Kit from "@deai/kit";
import type { ActorKey } from "@deai/kit";

export type { ActorKey };

/** What a key file holds: `{ "actor": <base64url public key>, "seed": <base64url 32-byte seed> }`. */
export interface KeyFile {
  readonly actor: string;
  readonly seed: string;
}

type Kit = typeof Kit;
const kit = async (): Promise<Kit> => import("@deai/kit");

/** A new random actor key, as key file contents. */
export async function newKeyFile(): Promise<KeyFile> {
  const { generateActorKey, actorKeySeed } = await kit();
  const key = generateActorKey();
  return { actor: key.id, seed: actorKeySeed(key) };
}

/** Writes a key file, refusing to overwrite one (mode 0600). */
export async function writeKeyFile(path: string, key: KeyFile): Promise<void> {
  try {
    await writeFile(path, JSON.stringify(key, null, 2) + "\n", { flag: "wx", mode: 0o600 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") throw new Error(`${path} already exists; not overwriting a key`, { cause: e });
    throw e;
  }
}

/** Reads a key file and checks that its seed is the key of its actor id. */
export async function readKeyFile(path: string): Promise<ActorKey> {
  let parsed: Partial<KeyFile>;
  try {
    parsed = JSON.parse(await readFile(path, "utf8")) as Partial<KeyFile>;
  } catch (e) {
    throw new Error(`cannot read key file ${path}: ${(e as Error).message}`, { cause: e });
  }
  if (typeof parsed.seed !== "string") throw new Error(`key file ${path} has no "seed" (base64url Ed25519 seed)`);
  const { actorKeyFromSeed } = await kit();
  let key: ActorKey;
  try {
    key = actorKeyFromSeed(parsed.seed);
  } catch (e) {
    throw new Error(`key file ${path}: ${(e as Error).message}`, { cause: e });
  }
  if (parsed.actor !== undefined && parsed.actor !== key.id) {
    throw new Error(`key file ${path}: "actor" ${parsed.actor} is not the public key of its seed (${key.id})`);
  }
  return key;
}

/**
 * RFC 9421 signature headers for a request to `path` on the service at `authority` (host[:port]
 * of its URL, which the signature covers), exactly as the kit verifies them.
 */
export async function signHeaders(
  key: ActorKey,
  method: string,
  authority: string,
  path: string,
  body: Uint8Array,
): Promise<Record<string, string>> {
  const { signRequest } = await kit();
  return { ...signRequest({ key, method, authority, path, body }) };
}

/**
 * RFC 9421 signature headers for a request whose body is streamed, from its precomputed RFC 9530
 * `Content-Digest` (`sha-256=:<base64>:`). The kit's signRequest takes the body in memory; this
 * builds the very same signature base (the CLI test checks the two agree byte for byte), so a
 * segment of a large file can be hashed in one read and streamed in a second.
 */
export function signDigestHeaders(
  key: ActorKey,
  method: string,
  authority: string,
  path: string,
  digest: string,
  opts: { created?: number; nonce?: string } = {},
): Record<string, string> {
  const created = opts.created ?? Math.floor(Date.now() / 1000);
  const nonce = opts.nonce ?? randomBytes(16).toString("base64url");
  const params = `("@method" "@authority" "@path" "content-digest");created=${created};nonce="${nonce}";keyid="${key.id}";alg="ed25519"`;
  const base = [
    `"@method": ${method.toUpperCase()}`,
    `"@authority": ${authority.toLowerCase()}`,
    `"@path": ${path}`,
    `"content-digest": ${digest}`,
    `"@signature-params": ${params}`,
  ].join("\n");
  const sig = sign(null, Buffer.from(base, "utf8"), key.privateKey).toString("base64");
  return { "content-digest": digest, "signature-input": `sig1=${params}`, signature: `sig1=:${sig}:` };
}
