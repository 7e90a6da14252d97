import { generateActorKey, actorKeyFromSeed, actorKeySeed } from "./keys.js";
import { MemoryNonceStore, contentDigest, parseSignatureInput, signRequest, verifyRequest } from "./http-signature.js";

const body = new TextEncoder().encode('{"a":1}');
const headerOf = (h: Record<string, string>) => (n: string) => h[n];

describe("RFC 9421 request signatures", () => {
  it("round-trips and returns the actor id", async () => {
    const key = generateActorKey();
    const h = signRequest({ key, method: "post", authority: "svc.test", path: "/v1/x", body });
    expect(h["content-digest"]).toBe(contentDigest(body));
    expect(h["signature-input"]).toMatch(
      /^sig1=\("@method" "@authority" "@path" "content-digest"\);created=\d+;nonce="[^"]+";keyid="[^"]+";alg="ed25519"$/,
    );
    const actor = await verifyRequest(
      { method: "POST", authority: "svc.test", path: "/v1/x", body, header: headerOf({ ...h }) },
      { maxAgeS: 300, nonces: new MemoryNonceStore() },
    );
    expect(actor).toBe(key.id);
  });

  it("refuses another path, another method and a future timestamp", async () => {
    const key = generateActorKey();
    const nonces = new MemoryNonceStore();
    const h = signRequest({ key, method: "POST", authority: "svc.test", path: "/v1/x", body });
    await expect(
      verifyRequest({ method: "POST", authority: "svc.test", path: "/v1/y", body, header: headerOf({ ...h }) }, { maxAgeS: 300, nonces }),
    ).rejects.toThrow(/does not verify/);
    await expect(
      verifyRequest({ method: "PUT", authority: "svc.test", path: "/v1/x", body, header: headerOf({ ...h }) }, { maxAgeS: 300, nonces }),
    ).rejects.toThrow(/does not verify/);
    const future = signRequest({
      key,
      method: "POST",
      authority: "svc.test",
      path: "/v1/x",
      body,
      created: Math.floor(Date.now() / 1000) + 3600,
    });
    await expect(
      verifyRequest(
        { method: "POST", authority: "svc.test", path: "/v1/x", body, header: headerOf({ ...future }) },
        { maxAgeS: 300, nonces },
      ),
    ).rejects.toThrow(/in the future/);
  });

  it("does not burn a nonce on a bad signature", async () => {
    const key = generateActorKey();
    const nonces = new MemoryNonceStore();
    const h = signRequest({ key, method: "POST", authority: "svc.test", path: "/v1/x", body, nonce: "fixed-nonce-1" });
    await expect(
      verifyRequest(
        { method: "POST", authority: "svc.test", path: "/v1/other", body, header: headerOf({ ...h }) },
        { maxAgeS: 300, nonces },
      ),
    ).rejects.toThrow();
    await expect(
      verifyRequest({ method: "POST", authority: "svc.test", path: "/v1/x", body, header: headerOf({ ...h }) }, { maxAgeS: 300, nonces }),
    ).resolves.toBe(key.id);
    await expect(
      verifyRequest({ method: "POST", authority: "svc.test", path: "/v1/x", body, header: headerOf({ ...h }) }, { maxAgeS: 300, nonces }),
    ).rejects.toThrow(/replayed/);
  });

  it("rejects malformed Signature-Input precisely", () => {
    expect(() => parseSignatureInput("garbage")).toThrow(/malformed Signature-Input/);
    expect(() => parseSignatureInput('sig1=("@method");created=1;keyid="k"')).toThrow(/nonce/);
    expect(() => parseSignatureInput('sig1=("@method");nonce="abcdefgh";keyid="k"')).toThrow(/created/);
    expect(() => parseSignatureInput('sig1=("@method");created=1;nonce="abcdefgh";created=2;keyid="k"')).toThrow(/repeats/);
  });

  it("restores a key from its seed", () => {
    const key = generateActorKey();
    expect(actorKeyFromSeed(actorKeySeed(key)).id).toBe(key.id);
  });
});

describe("RFC 9421 details", () => {
  it("accepts the covered components in any order the signer lists them", async () => {
    const { sign } = await import("node:crypto");
    const key = generateActorKey();
    const digest = contentDigest(body);
    const created = Math.floor(Date.now() / 1000);
    const params = `("content-digest" "@path" "@authority" "@method");created=${created};nonce="reordered-1";keyid="${key.id}";alg="ed25519"`;
    const base = [
      `"content-digest": ${digest}`,
      `"@path": /v1/x`,
      `"@authority": svc.test`,
      `"@method": POST`,
      `"@signature-params": ${params}`,
    ].join("\n");
    const sig = sign(null, Buffer.from(base), key.privateKey).toString("base64");
    const headers = { "content-digest": digest, "signature-input": `sig1=${params}`, signature: `sig1=:${sig}:` };
    await expect(
      verifyRequest(
        { method: "POST", authority: "svc.test", path: "/v1/x", body, header: headerOf(headers) },
        { maxAgeS: 300, nonces: new MemoryNonceStore() },
      ),
    ).resolves.toBe(key.id);
  });

  it("refuses a non-canonical spelling of an actor id (one key, one actor)", async () => {
    const key = generateActorKey();
    const last = key.id.at(-1)!;
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const alias = key.id.slice(0, -1) + alphabet[alphabet.indexOf(last) ^ 1];
    const h = signRequest({ key: { ...key, id: alias }, method: "POST", authority: "svc.test", path: "/v1/x", body });
    await expect(
      verifyRequest(
        { method: "POST", authority: "svc.test", path: "/v1/x", body, header: headerOf({ ...h }) },
        { maxAgeS: 300, nonces: new MemoryNonceStore() },
      ),
    ).rejects.toThrow(/keyid is not an actor id/);
  });
});
