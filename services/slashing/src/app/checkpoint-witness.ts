// Whether an unavailability attestation's challenge seed was a real tree head of the ledger.
// The verifier (packages/proofs) checks that the trigger's stripe was due under the seed the
// attestation names (tree size + root); only the ledger can say that seed existed. Without this
// a sampler quorum could name any root and pick the stripes it wanted. The witness asks the
// ledger for its latest checkpoint (verified under the pinned log key) and a consistency proof
// from the named size to it (RFC 9162): a root that is not a prefix of the signed tree is
// refused. The ledger unreachable is Unavailable (retried), never a refusal.
import { InvalidArgumentError, UnavailableError } from "@deai/kit/errors";
import { base64Decode, bytesEqual, hexDecode, openCheckpoint, ProofError, verifyConsistency, type NoteVerifier } from "@deai/proofs";

/** Throws InvalidArgument unless (size, root) is a tree head of the log; Unavailable if it cannot tell. */
export type CheckpointWitness = (size: number, rootHex: string) => Promise<void>;

export function ledgerCheckpointWitness(o: { baseUrl: string; log: NoteVerifier; timeoutMs: number }): CheckpointWitness {
  const base = o.baseUrl.replace(/\/$/, "");
  const get = async (path: string): Promise<unknown> => {
    let res: Response;
    try {
      res = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(o.timeoutMs) });
    } catch (e) {
      throw new UnavailableError(`the ledger could not be asked about the challenge seed: ${(e as Error).message}`);
    }
    if (!res.ok) throw new UnavailableError(`the ledger answered ${res.status} for ${path}`);
    return res.json();
  };
  return async (size, rootHex) => {
    const root = hexDecode(rootHex);
    if (!root || root.length !== 32)
      throw new InvalidArgumentError(`the challenge seed's root ${JSON.stringify(rootHex)} is not 32 bytes of hex`);
    if (size < 1) throw new InvalidArgumentError("the challenge seed names an empty tree");
    const latest = (await get("/v1/ledger/checkpoint")) as { checkpoint?: { note?: string } };
    let head;
    try {
      head = openCheckpoint(latest.checkpoint?.note ?? "", { log: o.log, witnessThreshold: 0 }).checkpoint;
    } catch (e) {
      throw new UnavailableError(`the ledger's latest checkpoint does not verify under the pinned log key: ${(e as Error).message}`);
    }
    if (size > head.size)
      throw new InvalidArgumentError(`the challenge seed names tree size ${size}, beyond the log's latest checkpoint (size ${head.size})`);
    if (size === head.size) {
      if (!bytesEqual(root, head.rootHash))
        throw new InvalidArgumentError(`the challenge seed's root is not the log's root at tree size ${size}`);
      return;
    }
    const r = (await get(`/v1/ledger/proofs/consistency?first=${size}&second=${head.size}`)) as { consistencyProof?: string[] };
    const proof = (r.consistencyProof ?? []).map((b) => base64Decode(b));
    if (proof.some((p) => p?.length !== 32)) throw new UnavailableError("the ledger's consistency proof is malformed");
    try {
      verifyConsistency(size, head.size, proof as Uint8Array[], root, head.rootHash);
    } catch (e) {
      if (!(e instanceof ProofError)) throw e;
      throw new InvalidArgumentError(
        `the challenge seed (tree size ${size}, root ${rootHex.slice(0, 16)}…) is not a tree head of the log: ${e.message}`,
      );
    }
  };
}
