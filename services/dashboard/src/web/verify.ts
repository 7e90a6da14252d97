// Verification the browser does itself, trusting no service: the checkpoint against the
// pinned log key, every entry of the log against the checkpoint's root (tlog-tiles entry
// bundles), each envelope's signatures, and a node's receipt (c2sp tlog-proof) against the key.
// Pure: @deai/proofs and a fetch function only, so it runs in the browser and in jest alike.
import {
  IN_TOTO_PAYLOAD_TYPE,
  TILE_WIDTH,
  base64Decode,
  bytesEqual,
  decodeEntryBundle,
  dsseFromJson,
  dsseVerify,
  entryBundlePath,
  hexEncode,
  leafHash,
  openCheckpoint,
  parseStatementFrame,
  parseVerifierKey,
  rootFromLeafHashes,
  utf8Decode,
  verifyTlogProof,
  type NoteVerifier,
  type Statement,
} from "@deai/proofs";

export type Fetch = (url: string, init?: { headers?: Record<string, string> }) => Promise<Response>;

/** A check's outcome as shown: verified, or failed with why. */
export type Verdict = { readonly ok: true; readonly detail: string } | { readonly ok: false; readonly detail: string };

const why = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** One log entry as read from the tiles: its statement and signature check. */
export interface LogEntry {
  readonly index: number;
  readonly leaf: Uint8Array;
  readonly leafHashHex: string;
  readonly statement: Statement | undefined;
  readonly signers: readonly string[];
  readonly signature: Verdict;
}

export interface LogScan {
  readonly origin: string;
  readonly size: number;
  readonly rootHex: string;
  /** The checkpoint against the pinned key. */
  readonly checkpoint: Verdict;
  /** The entries served by the tiles hash to the checkpoint's root. */
  readonly contents: Verdict;
  readonly entries: readonly LogEntry[];
  /** Entries beyond the scan limit were not read (the newest `limit` are... none: the first). */
  readonly truncated: boolean;
}

/** The largest log the dashboard reads whole (entry bundles of 256). */
export const MAX_SCAN_ENTRIES = 65_536;

export function pinnedKey(text: string): NoteVerifier {
  return parseVerifierKey(text);
}

async function fetchOk(fetchFn: Fetch, url: string): Promise<Response> {
  const res = await fetchFn(url);
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return res;
}

/** Opens one leaf (RFC 8785 JSON of the DSSE envelope) and checks its signatures. */
export function openLeaf(leaf: Uint8Array): { statement: Statement | undefined; signers: readonly string[]; signature: Verdict } {
  try {
    const text = utf8Decode(leaf);
    if (text === undefined) throw new Error("leaf is not UTF-8");
    const envelope = dsseFromJson(JSON.parse(text));
    const { signers } = dsseVerify(envelope, { expectedPayloadType: IN_TOTO_PAYLOAD_TYPE });
    const statement = parseStatementFrame(envelope.payload);
    return { statement, signers, signature: { ok: true, detail: `signed by ${signers.length} key(s)` } };
  } catch (e) {
    let statement: Statement | undefined;
    try {
      const env = dsseFromJson(JSON.parse(utf8Decode(leaf) ?? ""));
      statement = parseStatementFrame(env.payload);
    } catch {
      statement = undefined;
    }
    return { statement, signers: [], signature: { ok: false, detail: `signature: ${why(e)}` } };
  }
}

/**
 * Reads the checkpoint and every entry bundle up to its size, and checks: the checkpoint's
 * signature by the pinned key, the root over all leaves, each envelope's signatures.
 */
export async function scanLog(fetchFn: Fetch, ledgerBase: string, tilesPrefix: string, key: NoteVerifier): Promise<LogScan> {
  const base = `${ledgerBase}${tilesPrefix}`;
  const note = await (await fetchOk(fetchFn, `${base}/checkpoint`)).text();
  let size: number;
  let root: Uint8Array;
  let origin: string;
  try {
    const opened = openCheckpoint(note, { log: key });
    ({ size, rootHash: root, origin } = opened.checkpoint);
  } catch (e) {
    const failed: Verdict = { ok: false, detail: `checkpoint: ${why(e)}` };
    return { origin: "", size: 0, rootHex: "", checkpoint: failed, contents: failed, entries: [], truncated: false };
  }
  const checkpoint: Verdict = { ok: true, detail: `signed by ${key.name} at size ${size}` };
  const readable = Math.min(size, MAX_SCAN_ENTRIES);
  const leaves: Uint8Array[] = [];
  let contents: Verdict | undefined;
  try {
    const bundles = Math.ceil(readable / TILE_WIDTH);
    for (let n = 0; n < bundles; n++) {
      // A full bundle, or the partial one the checkpoint ends in (only when the whole log is read).
      const width = n < Math.floor(size / TILE_WIDTH) ? TILE_WIDTH : size % TILE_WIDTH;
      const res = await fetchOk(fetchFn, `${base}/${entryBundlePath(n, width)}`);
      leaves.push(...decodeEntryBundle(new Uint8Array(await res.arrayBuffer()), width));
    }
  } catch (e) {
    contents = { ok: false, detail: `entry bundles: ${why(e)}` };
  }
  const hashes = leaves.map(leafHash);
  if (contents === undefined) {
    if (readable < size)
      contents = { ok: false, detail: `log has ${size} entries; only the first ${readable} were read, so its root was not checked` };
    else if (!bytesEqual(rootFromLeafHashes(hashes), root))
      contents = { ok: false, detail: "the entries served do not hash to the checkpoint's root: the log was tampered with" };
    else contents = { ok: true, detail: `all ${size} entries hash to the signed root` };
  }
  const entries = leaves.map((leaf, index): LogEntry => ({ index, leaf, leafHashHex: hexEncode(hashes[index]!), ...openLeaf(leaf) }));
  return { origin, size, rootHex: hexEncode(root), checkpoint, contents, entries, truncated: readable < size };
}

export interface ReceiptCheck {
  readonly receipt: Verdict;
  readonly signature: Verdict;
  /** The entry served by the REST API equals the leaf the tiles gave (when the log was scanned). */
  readonly matchesLog: Verdict | undefined;
  readonly tlogProof: string;
  readonly statement: Statement | undefined;
  readonly overall: Verdict;
}

interface EntryJson {
  entry?: { index?: string; leaf?: string; receipt?: { tlogProof?: string } };
}

/** Fetches entry `index` from the ledger's REST API and verifies its receipt and signatures offline. */
export async function checkReceipt(
  fetchFn: Fetch,
  ledgerBase: string,
  index: number,
  key: NoteVerifier,
  fromLog?: Uint8Array,
): Promise<ReceiptCheck> {
  let body: EntryJson;
  try {
    body = (await (await fetchOk(fetchFn, `${ledgerBase}/v1/ledger/entries/${index}?includeReceipt=true`)).json()) as EntryJson;
  } catch (e) {
    const failed: Verdict = { ok: false, detail: why(e) };
    return { receipt: failed, signature: failed, matchesLog: undefined, tlogProof: "", statement: undefined, overall: failed };
  }
  const leaf = typeof body.entry?.leaf === "string" ? base64Decode(body.entry.leaf) : undefined;
  const tlogProof = body.entry?.receipt?.tlogProof ?? "";
  let receipt: Verdict;
  if (leaf === undefined) receipt = { ok: false, detail: "the entry has no leaf" };
  else if (tlogProof === "") receipt = { ok: false, detail: "the entry has no receipt (not integrated yet?)" };
  else {
    try {
      const v = verifyTlogProof(tlogProof, { entry: leaf }, { log: key });
      receipt =
        v.index === index
          ? { ok: true, detail: `included at ${v.index} in the tree of size ${v.checkpoint.size} signed by ${key.name}` }
          : { ok: false, detail: `the receipt is for index ${v.index}, not ${index}` };
    } catch (e) {
      receipt = { ok: false, detail: `receipt: ${why(e)}` };
    }
  }
  const opened = leaf ? openLeaf(leaf) : undefined;
  const signature: Verdict = opened?.signature ?? { ok: false, detail: "no leaf" };
  const matchesLog: Verdict | undefined =
    fromLog === undefined || leaf === undefined
      ? undefined
      : bytesEqual(fromLog, leaf)
        ? { ok: true, detail: "same bytes as the log's entry bundle" }
        : { ok: false, detail: "the API served other bytes than the log's entry bundle" };
  const checks = [receipt, signature, ...(matchesLog ? [matchesLog] : [])];
  const failed = checks.find((c) => !c.ok);
  return {
    receipt,
    signature,
    matchesLog,
    tlogProof,
    statement: opened?.statement,
    overall: failed ?? { ok: true, detail: "receipt and signatures verified in this browser" },
  };
}

/** A ledger Receipt as the services embed it in their REST answers (proto3 JSON). */
export interface ReceiptJson {
  readonly index?: string;
  readonly leafHash?: string;
  readonly tlogProof?: string;
}

/**
 * Checks a receipt a service hands out with its record (a dataset's manifest, a lease, a
 * slash): the tlog-proof against the pinned key for the receipt's leaf hash, and, when the log
 * was scanned, that the log's entry at that index has that leaf hash. What the entry says is
 * then readable on the lineage page, from the log itself.
 */
export function checkServiceReceipt(receipt: ReceiptJson | undefined, key: NoteVerifier, scan?: LogScan): Verdict {
  if (!receipt?.tlogProof || !receipt.leafHash) return { ok: false, detail: "no receipt" };
  const hash = base64Decode(receipt.leafHash);
  if (hash === undefined) return { ok: false, detail: "receipt leafHash is not base64" };
  try {
    const v = verifyTlogProof(receipt.tlogProof, { leafHash: hash }, { log: key });
    if (receipt.index !== undefined && receipt.index !== String(v.index)) {
      return { ok: false, detail: `the receipt proves index ${v.index}, the service says ${receipt.index}` };
    }
    const logged = scan?.contents.ok ? scan.entries[v.index] : undefined;
    if (logged && logged.leafHashHex !== hexEncode(hash)) return { ok: false, detail: `the log's entry ${v.index} has another leaf hash` };
    return { ok: true, detail: `entry #${v.index}, in the tree of size ${v.checkpoint.size} signed by ${key.name}` };
  } catch (e) {
    return { ok: false, detail: `receipt: ${why(e)}` };
  }
}
