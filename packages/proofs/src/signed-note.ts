// C2SP signed-note (c2sp.org/signed-note), compatible with golang.org/x/mod/sumdb/note:
//
//   <text ending in "\n">
//   <blank line>
//   — <key name> <base64(4-byte big-endian key ID ‖ signature)>\n   (one or more)

import { sha256 } from "@noble/hashes/sha2.js";

import { base64Decode, base64Encode, concatBytes, utf8Decode, utf8Encode } from "./encoding.js";
import { ProofError } from "./errors.js";

/** One signature line of a note. */
export interface NoteSignature {
  readonly name: string;
  /** The 32-bit key ID (big-endian first four bytes of the line's payload). */
  readonly keyId: number;
  /** The signature proper: the payload after the key ID. */
  readonly signature: Uint8Array;
}

/** A parsed, not yet verified, note. */
export interface Note {
  /** The signed text, including its final newline. */
  readonly text: string;
  readonly signatures: readonly NoteSignature[];
}

/** A key that verifies note signatures: identified by (name, keyId) as the spec requires. */
export interface NoteVerifier {
  readonly name: string;
  readonly keyId: number;
  /** Signature type byte: 0x01 Ed25519, 0x04 timestamped Ed25519 cosignature. */
  readonly type: number;
  /** Whether `signature` (the payload after the key ID) signs the note text `message` (UTF-8 bytes). */
  verify(message: Uint8Array, signature: Uint8Array): boolean;
}

/** A key that signs notes. */
export interface NoteSigner {
  readonly name: string;
  readonly keyId: number;
  readonly type: number;
  /** The signature payload (after the key ID) over the note text `message` (UTF-8 bytes). */
  sign(message: Uint8Array): Uint8Array;
}

/** A note whose signatures from known keys all verified, and at least one did. */
export interface OpenedNote {
  readonly text: string;
  /** Verified signatures, one per known key, with the key that verified each. */
  readonly verified: readonly (NoteSignature & { readonly verifier: NoteVerifier })[];
  /** Signatures from keys the caller did not supply (ignored, as the spec requires). */
  readonly unverified: readonly NoteSignature[];
}

/** Notes with more signature lines are rejected (the spec requires accepting at least 16; Go allows 100). */
export const MAX_NOTE_SIGNATURES = 100;

const EM_DASH_PREFIX = "\u2014 ";
// Go's unicode.IsSpace, plus U+FEFF, which JavaScript's \s also matches.
const SPACE = /[\s\u0085]/u;
// ASCII control characters other than newline.
const CONTROL = /[\u0000-\u0009\u000b-\u001f]/;

/** Whether a key name is valid: non-empty, no Unicode spaces, no "+". */
export function isValidKeyName(name: string): boolean {
  return name.length > 0 && !SPACE.test(name) && !name.includes("+") && utf8Encode(name) !== undefined;
}

function malformed(why: string): ProofError {
  return new ProofError("malformed-note", `malformed note: ${why}`);
}

function asText(input: string | Uint8Array): string {
  if (typeof input === "string") {
    if (utf8Encode(input) === undefined) throw malformed("not valid UTF-8");
    return input;
  }
  const text = utf8Decode(input);
  if (text === undefined) throw malformed("not valid UTF-8");
  return text;
}

function requireNoteText(text: string): void {
  if (!text.endsWith("\n")) throw malformed("text must end with a newline");
  if (CONTROL.test(text)) throw malformed("text holds an ASCII control character");
  if (utf8Encode(text) === undefined) throw malformed("not valid UTF-8");
}

/** Splits a signed note into text and signature lines, checking its form but no signature. */
export function parseNote(input: string | Uint8Array): Note {
  const msg = asText(input);
  if (CONTROL.test(msg)) throw malformed("holds an ASCII control character other than newline");
  // The text ends at the last blank line; the text itself may hold blank lines.
  const split = msg.lastIndexOf("\n\n");
  if (split < 0) throw malformed("no blank line before the signatures");
  const text = msg.slice(0, split + 1);
  const block = msg.slice(split + 2);
  if (block.length === 0) throw malformed("no signature lines");
  if (!block.endsWith("\n")) throw malformed("signature block must end with a newline");
  const lines = block.slice(0, -1).split("\n");
  if (lines.length > MAX_NOTE_SIGNATURES) throw malformed(`more than ${MAX_NOTE_SIGNATURES} signatures`);
  const signatures = lines.map(parseSignatureLine);
  return { text, signatures };
}

function parseSignatureLine(line: string): NoteSignature {
  if (!line.startsWith(EM_DASH_PREFIX)) throw malformed(`signature line must start with "— ": ${JSON.stringify(line)}`);
  const rest = line.slice(EM_DASH_PREFIX.length);
  const space = rest.indexOf(" ");
  if (space < 0) throw malformed("signature line has no signature");
  const name = rest.slice(0, space);
  const b64 = rest.slice(space + 1);
  if (!isValidKeyName(name)) throw malformed(`invalid key name ${JSON.stringify(name)}`);
  const payload = base64Decode(b64);
  if (payload === undefined || payload.length < 5) throw malformed(`invalid signature for ${name}`);
  const keyId = ((payload[0]! << 24) | (payload[1]! << 16) | (payload[2]! << 8) | payload[3]!) >>> 0;
  return { name, keyId, signature: payload.slice(4) };
}

/** The text of one signature line, without its newline. */
export function formatSignatureLine(sig: NoteSignature): string {
  if (!isValidKeyName(sig.name)) throw malformed(`invalid key name ${JSON.stringify(sig.name)}`);
  const id = new Uint8Array([sig.keyId >>> 24, (sig.keyId >>> 16) & 0xff, (sig.keyId >>> 8) & 0xff, sig.keyId & 0xff]);
  return `${EM_DASH_PREFIX}${sig.name} ${base64Encode(concatBytes(id, sig.signature))}`;
}

/** Serializes a note: text, blank line, signature lines. */
export function formatNote(note: Note): string {
  requireNoteText(note.text);
  if (note.signatures.length === 0) throw malformed("a note needs at least one signature");
  return `${note.text}\n${note.signatures.map((s) => formatSignatureLine(s) + "\n").join("")}`;
}

/**
 * Signs note text (or adds signatures to a note) and returns the signed note. Existing
 * signatures are kept, except those by a key one of the signers replaces.
 */
export function signNote(note: string | Note, signers: readonly NoteSigner[]): string {
  const text = typeof note === "string" ? note : note.text;
  const existing = typeof note === "string" ? [] : note.signatures;
  requireNoteText(text);
  if (signers.length === 0) throw new ProofError("invalid-argument", "signNote needs at least one signer");
  const message = utf8Encode(text)!;
  const fresh = signers.map((s) => {
    if (!isValidKeyName(s.name)) throw malformed(`invalid key name ${JSON.stringify(s.name)}`);
    return { name: s.name, keyId: s.keyId, signature: s.sign(message) };
  });
  const kept = existing.filter((e) => !fresh.some((f) => f.name === e.name && f.keyId === e.keyId));
  return formatNote({ text, signatures: [...kept, ...fresh] });
}

/**
 * Parses a note and verifies it against known keys: signatures by unknown keys (name and key
 * ID not both matching) are ignored; a known key's bad signature rejects the note; and at
 * least one known key must have signed. Throws ProofError.
 */
export function openNote(input: string | Uint8Array | Note, verifiers: readonly NoteVerifier[]): OpenedNote {
  const note = typeof input === "object" && !(input instanceof Uint8Array) ? input : parseNote(input);
  requireNoteText(note.text);
  const message = utf8Encode(note.text)!;
  const verified: (NoteSignature & { verifier: NoteVerifier })[] = [];
  const unverified: NoteSignature[] = [];
  for (const sig of note.signatures) {
    const verifier = verifiers.find((v) => v.name === sig.name && v.keyId === sig.keyId);
    if (verifier === undefined) {
      unverified.push(sig);
      continue;
    }
    if (!verifier.verify(message, sig.signature)) {
      throw new ProofError("invalid-signature", `signature by ${sig.name} (key ${keyIdHex(sig.keyId)}) does not verify`);
    }
    // A key signing twice counts once.
    if (!verified.some((v) => v.verifier === verifier)) verified.push({ ...sig, verifier });
  }
  if (verified.length === 0) {
    const names = note.signatures.map((s) => `${s.name}+${keyIdHex(s.keyId)}`).join(", ");
    throw new ProofError("no-verified-signature", `note is not signed by any known key (signed by: ${names})`);
  }
  return { text: note.text, verified, unverified };
}

/** The key ID as the 8 lower-case hex digits used in key text. */
export function keyIdHex(keyId: number): string {
  return (keyId >>> 0).toString(16).padStart(8, "0");
}

/** Key ID per signed-note: first 4 bytes (big-endian) of SHA-256(name ‖ "\n" ‖ type ‖ public key). */
export function noteKeyId(name: string, type: number, publicKey: Uint8Array): number {
  const nameBytes = utf8Encode(name);
  if (nameBytes === undefined || !isValidKeyName(name)) {
    throw new ProofError("malformed-key", `invalid key name ${JSON.stringify(name)}`);
  }
  const h = sha256(concatBytes(nameBytes, new Uint8Array([0x0a, type]), publicKey));
  return ((h[0]! << 24) | (h[1]! << 16) | (h[2]! << 8) | h[3]!) >>> 0;
}
