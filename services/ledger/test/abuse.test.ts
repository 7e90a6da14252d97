// The kit's abuse suite against the ledger's contract, on the built service process, plus
// the ledger's own hostile inputs: strings inside a signed DSSE statement, where the
// contract walk cannot see them (the payload is bytes).
import { LedgerService } from "@deai/contracts/deai/ledger/v1/ledger_pb";
import { generateActorKey, signRequest } from "@deai/kit";
import { runAbuseSuite, sendRest, signedFetch, spawnAbuseTarget, validGet, type AbuseCase, type Outcome } from "@deai/testkit";
import { generateNoteKey } from "@deai/proofs";

import { envelope, sha256Hex, statement } from "./fixtures.js";

const ORIGIN = "ledger.abuse-test/log";
const author = generateActorKey();
const subject = sha256Hex("abuse-suite subject");
const entries = Array.from({ length: 20 }, (_, i) =>
  envelope(statement([sha256Hex(`abuse ${i}`), subject], "https://deai.dev/abuse/v1"), [author]),
);

/** A signed REST append of `env` (JSON form); the REST answer. */
function appendRequest(baseUrl: string, env: unknown): Promise<Outcome> {
  const body = Buffer.from(JSON.stringify({ envelope: env }));
  const sig = signRequest({ key: author, method: "POST", url: `${baseUrl}/v1/ledger/entries`, body });
  return sendRest(baseUrl, {
    method: "POST",
    target: "/v1/ledger/entries",
    headers: { "content-type": "application/json", "content-length": body.length, ...sig },
    body,
  });
}

/**
 * A hostile statement string in a correctly signed envelope, sent while 20 valid appends
 * (duplicates, so they change nothing) run beside it: a group commit must not let the bad
 * member fail the others.
 */
function statementCase(what: string, predicateType: string): AbuseCase {
  const bad = envelope(statement([sha256Hex(`bad ${what}`)], predicateType), [author]);
  return {
    label: `/deai.ledger.v1.LedgerService/Append rest: ${what} in the statement's predicateType, beside 20 valid appends`,
    method: LedgerService.method.append,
    kind: "nul",
    expect: "invalid-argument",
    send: async (w) => {
      const [answer, others] = await Promise.all([
        appendRequest(w.baseUrl, bad),
        Promise.all(entries.slice(0, 20).map((e) => appendRequest(w.baseUrl, e))),
      ]);
      const failed = others.filter((o) => o.status !== 200);
      if (failed.length > 0)
        return { ...answer, broken: `${failed.length} of ${others.length} valid appends beside it failed (HTTP ${failed[0]?.status})` };
      return answer;
    },
  };
}

runAbuseSuite({
  name: "ledger",
  services: [LedgerService],
  start: async () => {
    const keys = generateNoteKey(ORIGIN);
    const target = await spawnAbuseTarget({
      name: "ledger",
      mainJs: new URL("../dist/main.js", import.meta.url).pathname,
      vars: { LEDGER_ORIGIN: ORIGIN, LEDGER_SIGNING_KEY: keys.signerKey, LEDGER_CHECKPOINT_INTERVAL_MS: "100" },
    });
    const baseUrl = target.baseUrl;
    // 20 entries, so that lenient index parsing (`0x10` = 16, `%20` = 0) finds something to return.
    for (const e of entries) {
      const res = await signedFetch(`${baseUrl}/v1/ledger/entries`, author, { body: JSON.stringify({ envelope: e }) });
      if (res.status !== 200) throw new Error(`seed append: ${res.status} ${await res.text()}`);
    }
    // Wait until they are integrated and checkpointed, so the background sequencer is idle.
    for (let i = 0; i < 100; i++) {
      const cp = (await (await fetch(`${baseUrl}/v1/ledger/checkpoint`)).json()) as { checkpoint?: { size?: string } };
      if (cp.checkpoint?.size === String(entries.length)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    return target;
  },
  validRequests: [
    validGet("/v1/ledger/checkpoint"),
    validGet("/v1/ledger/entries/3"),
    validGet(`/v1/ledger/subjects/sha256/${subject}/entries`),
  ],
  seeds: {
    // A duplicate of an existing entry: accepted without a state change, so a replay or a
    // misdirected signature that gets through shows as an acceptance, not a new row.
    Append: { envelope: entries[0]! },
    AppendBatch: { envelopes: [entries[1]!] },
    GetEntry: { index: "3" },
    SearchBySubject: { algorithm: "sha256", hex: subject },
    GetLineage: { algorithm: "sha256", hex: subject },
    GetInclusionProof: { leafIndex: "3", treeSize: "20" },
    GetConsistencyProof: { first: "3", second: "20" },
  },
  extraCases: () => [
    statementCase("NUL", "https://deai.dev/a\u0000b/v1"),
    statementCase("a lone surrogate", "https://deai.dev/a\ud800b/v1"),
  ],
});
