/**
 * The repair part of `make demo` (issue 12): after a storage provider silently dropped a slot's
 * shards and the samplers' quorum proved it, wait until the DA sampler has rebuilt the slot and
 * placed it at a new provider; show the new placement's ledger receipt verified offline (the
 * pinned log key, the entry bytes, the placement/v1 statement against the owner's manifest:
 * same contentDigest and shardRoot) and a download through ingestion, which now follows the
 * new placement, byte-identical to the original.
 *
 * Called from main.ts with the running platform: `failed ||= !(await repairStory({...}))`.
 * The sampler must run with a grace period short enough for a demo (DA_REPAIR_GRACE_MS).
 */
import { createHash } from "node:crypto";

import {
  dsseFromJson,
  leafHash,
  parseTlogProof,
  parseVerifierKey,
  PredicateTypes,
  verifyPlacement,
  verifyTlogProof,
  type PlacementPredicate,
} from "@deai/proofs";

export interface RepairStoryPlatform {
  readonly ingestionUrl: string;
  readonly ledgerUrl: string;
  /** The ledger's pinned verifier key (note format). */
  readonly logVerifierKey: string;
  readonly datasetId: string;
  /** The slot whose provider dropped its shards. */
  readonly slot: number;
  /** sha256 hex of the original bytes (what the download must hash to). */
  readonly contentDigest: string;
  /** Actor ids allowed to sign placements (the samplers); empty: any valid signature. */
  readonly samplers?: readonly string[];
  readonly say?: (line: string) => void;
  /** @default 180000 */
  readonly timeoutMs?: number;
  /** Section number in the demo's output. @default "5" */
  readonly section?: string;
}

type Json = ReturnType<typeof JSON.parse>;

async function getJson(url: string): Promise<{ status: number; json: Json }> {
  const r = await fetch(url);
  const text = await r.text();
  try {
    return { status: r.status, json: JSON.parse(text) };
  } catch {
    return { status: r.status, json: text };
  }
}

/** Runs the story; true when every check passed (each printed with ✓ or ✗). */
export async function repairStory(p: RepairStoryPlatform): Promise<boolean> {
  const say = p.say ?? ((s: string) => void process.stdout.write(`${s}\n`));
  const timeoutMs = p.timeoutMs ?? 180_000;
  say(`\n${p.section ?? "5"}. Repair: slot ${p.slot} of dataset ${p.datasetId} is rebuilt from k others and placed anew`);
  const manifest = (await getJson(`${p.ingestionUrl}/v1/datasets/${p.datasetId}`)).json.dataset?.manifest;
  if (!manifest) {
    say(`   ✗ ingestion does not know dataset ${p.datasetId}`);
    return false;
  }
  const previous = manifest.placements[p.slot]?.providerId as string;
  const shardRootHex = Buffer.from(manifest.shardRoot, "base64").toString("hex");
  say(`   slot ${p.slot} was at ${previous}; waiting for the repair (grace period, rebuild, anchoring)…`);
  // Ingestion follows a repair as soon as it consumed repair_completed: the shard proof names the new provider.
  const until = Date.now() + timeoutMs;
  let now: Json;
  for (;;) {
    now = (await getJson(`${p.ingestionUrl}/v1/datasets/${p.datasetId}/shards/0/${p.slot}/proof`)).json.placement;
    if (now?.providerId && now.providerId !== previous) break;
    if (Date.now() > until) {
      say(`   ✗ no repair of slot ${p.slot} within ${timeoutMs / 1000} s`);
      return false;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  say(`   downloads now read slot ${p.slot} from ${now.providerId} (${now.key})`);
  // The placement statement in the ledger, found by the dataset's shardRoot.
  const search = await getJson(
    `${p.ledgerUrl}/v1/ledger/subjects/sha256/${shardRootHex}/entries?predicateType=${encodeURIComponent(PredicateTypes.placement)}&includeReceipts=true`,
  );
  const entries = ((search.json.entries ?? []) as Json[]).sort((a, b) => Number(b.index) - Number(a.index));
  const entry = entries[0];
  if (!entry?.receipt) {
    say(`   ✗ the ledger has no placement statement with a receipt for shardRoot ${shardRootHex.slice(0, 16)}…`);
    return false;
  }
  let ok = true;
  try {
    // Offline from here: the receipt under the pinned key, the entry bytes, the statement.
    const proof = parseTlogProof(entry.receipt.tlogProof);
    const v = verifyTlogProof(proof, { leafHash: Buffer.from(entry.leafHash, "base64") }, { log: parseVerifierKey(p.logVerifierKey) });
    if (Buffer.from(leafHash(Buffer.from(entry.leaf, "base64"))).toString("base64") !== entry.leafHash)
      throw new Error("the entry bytes do not hash to the receipt's leaf");
    const envelope = dsseFromJson(entry.envelope);
    const statement = JSON.parse(Buffer.from(envelope.payload).toString("utf8")) as { predicate: PlacementPredicate };
    const version = statement.predicate.version;
    const before =
      version === 2
        ? manifest.placements
        : (statement.predicate.placements as Json[]).map((x, slot) => {
            const moved = statement.predicate.moved.find((m) => m.slot === slot);
            return moved ? { slot, providerId: moved.from } : x;
          });
    const placed = verifyPlacement(envelope, {
      datasetId: p.datasetId,
      contentDigest: manifest.contentDigest.hex,
      shardRoot: shardRootHex,
      k: manifest.k,
      m: manifest.m,
      stripes: Number(manifest.stripes),
      previous: { version: version - 1, placements: before },
      signers: p.samplers ?? [],
    }).predicate;
    say(`   ✓ receipt verified offline: ledger index ${v.index}, under the pinned log key`);
    for (const m of placed.moved)
      say(
        `   ✓ placement v${placed.version}: slot ${m.slot} ${m.from} → ${m.to} (${m.reason}), signed by ${envelope.signatures[0]!.keyid.slice(0, 12)}…`,
      );
    say(`   ✓ contentDigest sha256:${placed.contentDigest.slice(0, 16)}… and shardRoot ${placed.shardRoot.slice(0, 16)}… unchanged`);
  } catch (e) {
    say(`   ✗ the placement statement does not verify: ${(e as Error).message}`);
    ok = false;
  }
  const r = await fetch(`${p.ingestionUrl}/v1/datasets/${p.datasetId}/content`);
  const hash = createHash("sha256");
  let bytes = 0;
  if (r.ok && r.body) {
    for await (const chunk of r.body as AsyncIterable<Uint8Array>) {
      hash.update(chunk);
      bytes += chunk.length;
    }
  }
  const identical = r.ok && hash.digest("hex") === p.contentDigest;
  say(`   ${identical ? "✓" : "✗"} download from the new placement: ${bytes} bytes, ${identical ? "byte-identical" : "DIFFERENT"}`);
  return ok && identical;
}
