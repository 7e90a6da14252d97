// Content digests as in-toto DigestSets name them: algorithm + lowercase hex.
import { InvalidArgumentError } from "@deai/kit/errors";

/** An artifact digest: `sha256` + 64 lowercase hex digits, for example. */
export interface Digest {
  readonly algorithm: string;
  readonly hex: string;
}

const HEX_LENGTH: Readonly<Record<string, number>> = { sha256: 64, sha384: 96, sha512: 128, sha1: 40, sha512_256: 64 };

/** Validates and normalises a digest (algorithm lowercase, hex lowercase); throws InvalidArgumentError. */
export function parseDigest(algorithm: string, hex: string, where = "digest"): Digest {
  const alg = algorithm.toLowerCase();
  const h = hex.toLowerCase();
  if (!/^[a-z0-9][a-z0-9_-]{0,31}$/.test(alg))
    throw new InvalidArgumentError(`${where}: invalid digest algorithm ${JSON.stringify(algorithm)}`);
  const want = HEX_LENGTH[alg];
  if (!/^[0-9a-f]+$/.test(h) || h.length % 2 !== 0 || h.length > 256 || (want !== undefined && h.length !== want)) {
    throw new InvalidArgumentError(
      `${where}: ${alg} digest must be ${want ?? "even-length"} lowercase hex digits, got ${JSON.stringify(hex.slice(0, 80))}`,
    );
  }
  return { algorithm: alg, hex: h };
}

/** The stored key of a digest: `<algorithm>:<hex>`. */
export function digestKey(d: Digest): string {
  return `${d.algorithm}:${d.hex}`;
}

/** Inverse of `digestKey`. */
export function digestFromKey(key: string): Digest {
  const colon = key.indexOf(":");
  return { algorithm: key.slice(0, colon), hex: key.slice(colon + 1) };
}
