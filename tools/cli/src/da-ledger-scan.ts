// Reads every sampling attestation from a ledger's public tlog-tiles paths (`/checkpoint`,
// `/tile/entries/...`), checks the entries against the signed checkpoint (their RFC 6962 root
// must be its root), verifies each attestation against the known sampler ids, and computes the
// Beta reputation per provider exactly as the da-sampler does, trusting no service.
import {
  computeReputation,
  decodeEntryBundle,
  dsseFromJson,
  entryBundlePath,
  leafHash,
  openCheckpoint,
  parseCheckpoint,
  parseStatementFrame,
  PredicateTypes,
  rootFromLeafHashes,
  TILE_WIDTH,
  verifySamplingAttestation,
  bytesEqual,
  utf8Decode,
  type NoteVerifier,
  type Reputation,
  type VerifiedSamplingAttestation,
} from "@deai/proofs";

import { CheckFailed } from "./cli.js";

export interface LedgerScan {
  readonly treeSize: number;
  /** Verified attestations, in ledger order, with their index. */
  readonly attestations: readonly (VerifiedSamplingAttestation & { readonly index: number })[];
  /** Sampling-attestation entries that did not verify (index, reason). */
  readonly refused: readonly { readonly index: number; readonly reason: string }[];
}

async function fetchOk(url: string): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(30_000) });
  } catch (e) {
    throw new CheckFailed(`could not reach ${url}: ${(e as Error).message}`);
  }
  if (!res.ok) throw new CheckFailed(`${url} answered ${res.status}`);
  return res;
}

/** Scans the ledger at `ledgerUrl` (its tlog-tiles prefix). */
export async function scanLedger(
  ledgerUrl: string,
  known: { samplers: readonly string[]; quorumThreshold: number },
  log?: NoteVerifier,
): Promise<LedgerScan> {
  const base = ledgerUrl.replace(/\/+$/, "");
  const note = await (await fetchOk(`${base}/checkpoint`)).text();
  const cp = log ? openCheckpoint(note, { log }).checkpoint : parseCheckpoint(note.slice(0, note.indexOf("\n\n") + 1));
  const leaves: Uint8Array[] = [];
  for (let n = 0; n * TILE_WIDTH < cp.size; n++) {
    const width = Math.min(TILE_WIDTH, cp.size - n * TILE_WIDTH);
    const bundle = new Uint8Array(await (await fetchOk(`${base}/${entryBundlePath(n, width)}`)).arrayBuffer());
    leaves.push(...decodeEntryBundle(bundle, width));
  }
  if (!bytesEqual(rootFromLeafHashes(leaves.map((l) => leafHash(l))), cp.rootHash))
    throw new CheckFailed(`the ledger's entries do not hash to its checkpoint's root at size ${cp.size}`);
  const attestations: (VerifiedSamplingAttestation & { index: number })[] = [];
  const refused: { index: number; reason: string }[] = [];
  leaves.forEach((leaf, index) => {
    let envelope;
    try {
      envelope = dsseFromJson(JSON.parse(utf8Decode(leaf) ?? "null"));
      if (parseStatementFrame(envelope.payload).predicateType !== PredicateTypes.samplingAttestation) return;
    } catch {
      return;
    }
    try {
      attestations.push({ ...verifySamplingAttestation(envelope, known), index });
    } catch (e) {
      refused.push({ index, reason: (e as Error).message });
    }
  });
  return { treeSize: cp.size, attestations, refused };
}

/** Reputation per provider from a scan. */
export function reputationOf(scan: LedgerScan, lambda: number): Map<string, Reputation> {
  return computeReputation(scan.attestations, { lambda, priorAlpha: 1, priorBeta: 1 });
}
