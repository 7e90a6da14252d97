// The leaf hash pool lives in the kit (da-sampler's repair hashes with it too).
export { INLINE_HASH_BYTES, LEAF_HASH_WORKER_SOURCE, LeafHashPool, leafHashSync, type LeafHashPoolOptions } from "@deai/kit";
