import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";

import { InvalidArgumentError } from "../errors.js";

/** An actor: an Ed25519 key pair whose id is the base64url public key. */
export interface ActorKey {
  /** base64url of the 32-byte raw public key: the actor id. */
  readonly id: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

/** Creates a new random actor key. */
export function generateActorKey(): ActorKey {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return { id: actorIdOf(publicKey), privateKey, publicKey };
}

/** Loads an actor key from its 32-byte seed (base64url), as stored in key files. */
export function actorKeyFromSeed(seedB64url: string): ActorKey {
  const seed = Buffer.from(seedB64url, "base64url");
  if (seed.length !== 32) throw new InvalidArgumentError("an Ed25519 seed is 32 bytes");
  const privateKey = createPrivateKey({
    key: { kty: "OKP", crv: "Ed25519", d: seed.toString("base64url"), x: derivePublicX(seed) },
    format: "jwk",
  });
  const publicKey = createPublicKey(privateKey);
  return { id: actorIdOf(publicKey), privateKey, publicKey };
}

/** The 32-byte seed of an actor key, base64url: what a key file holds. */
export function actorKeySeed(key: ActorKey): string {
  const jwk = key.privateKey.export({ format: "jwk" });
  if (typeof jwk.d !== "string") throw new Error("not an Ed25519 private key");
  return jwk.d;
}

function derivePublicX(seed: Buffer): string {
  // PKCS#8 DER for Ed25519 is a fixed 16-byte prefix followed by the seed.
  const der = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]);
  const pub = createPublicKey(createPrivateKey({ key: der, format: "der", type: "pkcs8" }));
  return actorIdOf(pub);
}

/** The actor id (base64url raw public key) of an Ed25519 public key. */
export function actorIdOf(publicKey: KeyObject): string {
  const jwk = publicKey.export({ format: "jwk" });
  if (jwk.crv !== "Ed25519" || typeof jwk.x !== "string") throw new Error("not an Ed25519 public key");
  return jwk.x;
}

/** The public key named by an actor id; throws InvalidArgumentError when it is not one. */
export function publicKeyOf(actorId: string): KeyObject {
  if (!/^[A-Za-z0-9_-]{43}$/.test(actorId)) {
    throw new InvalidArgumentError(
      `actor id must be a base64url Ed25519 public key (43 chars), got ${JSON.stringify(actorId.slice(0, 64))}`,
    );
  }
  const key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: actorId }, format: "jwk" });
  // base64url's last character carries 2 spare bits: only the canonical spelling names the
  // key, or one key could act as four different actors.
  if (actorIdOf(key) !== actorId) throw new InvalidArgumentError("actor id is not the canonical base64url encoding of its key");
  return key;
}
