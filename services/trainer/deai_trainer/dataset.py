"""Verified dataset reads: every shard against its leaf, the whole against contentDigest."""
from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

from .blobstore import BlobStore, open_store
from .manifest import Manifest
from .merkle import leaf_hash


class ShardIntegrityError(Exception):
    """A data shard did not match its committed leaf; the read is refused.

    This is evidence against the provider holding the slot, not a transient error.
    """

    def __init__(self, stripe: int, slot: int, provider: str, reason: str) -> None:
        super().__init__(f"shard stripe={stripe} slot={slot} (provider {provider or '?'}) refused: {reason}")
        self.stripe, self.slot, self.provider = stripe, slot, provider


class ContentDigestError(Exception):
    """Every shard verified but the reassembled bytes do not hash to contentDigest."""


def _fetch_verified(manifest: Manifest, store: BlobStore, stripe: int, slot: int) -> bytes:
    p = manifest.placement(slot)
    start = stripe * manifest.shard_size
    try:
        shard = store.get_range(p.bucket, p.key, start, start + manifest.shard_size)
    except (OSError, IOError) as exc:
        raise ShardIntegrityError(stripe, slot, p.provider, f"unreadable: {exc}") from exc
    if len(shard) != manifest.shard_size:
        raise ShardIntegrityError(stripe, slot, p.provider,
                                  f"short shard ({len(shard)} of {manifest.shard_size} bytes)")
    got = leaf_hash(shard).hex()
    if got != manifest.leaf(stripe, slot):
        raise ShardIntegrityError(stripe, slot, p.provider,
                                  f"leaf mismatch (got {got[:16]}…, committed {manifest.leaf(stripe, slot)[:16]}…)")
    return shard


def read_dataset(manifest: Manifest, parallelism: int = 8) -> bytes:
    """Fetch the k systematic shards of every stripe, verify, reassemble, check the digest.

    The whole dataset is held in memory: the corpora this worker trains on here are a few
    MiB. Parity is not read; a bad data shard raises ShardIntegrityError (decoding from
    parity is the ingestion/repair path's job).
    """
    stores = {j: open_store(manifest.placement(j).endpoint) for j in range(manifest.k)}
    jobs = [(i, j) for i in range(manifest.stripes) for j in range(manifest.k)]
    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        shards = list(pool.map(lambda ij: _fetch_verified(manifest, stores[ij[1]], *ij), jobs))
    data = b"".join(shards)[: manifest.size]
    digest = hashlib.sha256(data).hexdigest()
    if digest != manifest.content_digest:
        raise ContentDigestError(f"contentDigest mismatch: got {digest}, manifest {manifest.content_digest}")
    return data
