// The compact range [0, size) of an append-only tree: one hash per one bit of size.

import { ProofError } from "./errors.js";
import { emptyRoot, compactRangeHash, nodeHash, requireHash, type NodeId } from "./rfc6962.js";
import { onesCount, pow2, requireCount, trailingZeros } from "./tree-math.js";

/** Called for every node an append completes (the leaf itself included), lowest level first. */
export type NodeVisitor = (node: NodeId, hash: Uint8Array) => void;

/**
 * Appends leaf hashes and yields the root with O(log n) memory: it keeps only the roots of
 * the perfect subtrees that make up the tree (its "frontier", or compact range). A log
 * integrates a batch by restoring the frontier of its last size, appending the batch with
 * a visitor that stores the completed nodes (tile hashes), and signing `root()`.
 */
export class MerkleFrontier {
  #size: number;
  // Roots of the perfect subtrees, left (largest) to right (smallest).
  readonly #hashes: Uint8Array[];

  private constructor(size: number, hashes: Uint8Array[]) {
    this.#size = size;
    this.#hashes = hashes;
  }

  /** An empty tree. */
  static empty(): MerkleFrontier {
    return new MerkleFrontier(0, []);
  }

  /** Restores a frontier saved with `hashes()`: popcount(size) subtree roots, largest first. */
  static restore(size: number, hashes: readonly Uint8Array[]): MerkleFrontier {
    requireCount(size, "tree size");
    if (hashes.length !== onesCount(size)) {
      throw new ProofError("invalid-argument", `a frontier of size ${size} has ${onesCount(size)} hashes, got ${hashes.length}`);
    }
    hashes.forEach((h, i) => requireHash(h, `frontier hash ${i}`));
    return new MerkleFrontier(size, hashes.slice());
  }

  /** A frontier of the given leaf hashes. */
  static of(leafHashes: readonly Uint8Array[]): MerkleFrontier {
    const f = MerkleFrontier.empty();
    for (const h of leafHashes) f.append(h);
    return f;
  }

  /** Number of leaves appended so far. */
  get size(): number {
    return this.#size;
  }

  /** Appends one leaf hash; `visit` sees the leaf and every perfect subtree it completes. */
  append(leafHash: Uint8Array, visit?: NodeVisitor): void {
    requireHash(leafHash, "leaf hash");
    if (!Number.isSafeInteger(this.#size + 1)) throw new ProofError("invalid-argument", "tree is full");
    const newSize = this.#size + 1;
    let hash = leafHash;
    visit?.({ level: 0, index: this.#size }, hash);
    // Each trailing zero bit of the new size is a merge of two equal subtrees.
    const merges = trailingZeros(newSize);
    for (let level = 1; level <= merges; level++) {
      const left = this.#hashes.pop()!;
      hash = nodeHash(left, hash);
      visit?.({ level, index: newSize / pow2(level) - 1 }, hash);
    }
    this.#hashes.push(hash);
    this.#size = newSize;
  }

  /** Appends leaf hashes in order. */
  appendAll(leafHashes: Iterable<Uint8Array>, visit?: NodeVisitor): void {
    for (const h of leafHashes) this.append(h, visit);
  }

  /** The RFC 6962 root of the tree so far. */
  root(): Uint8Array {
    return this.#hashes.length === 0 ? emptyRoot() : compactRangeHash(this.#hashes);
  }

  /** The subtree roots to persist (largest first); restore with `MerkleFrontier.restore(size, hashes)`. */
  hashes(): Uint8Array[] {
    return this.#hashes.slice();
  }

  /** An independent copy, e.g. to compute a tentative root without committing the batch. */
  clone(): MerkleFrontier {
    return new MerkleFrontier(this.#size, this.#hashes.slice());
  }
}
