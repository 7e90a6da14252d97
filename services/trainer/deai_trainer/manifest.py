"""Dataset manifest: the reader's view of ARCHITECTURE.md's data layout.

JSON, camelCase (the ingestion service emits the same fields; extra fields are ignored):

    {
      "contentDigest": "<sha256 hex of the original bytes; a 'sha256:' prefix is accepted>",
      "size": <original length in bytes>,
      "k": 8, "m": 4, "shardSize": 262144, "stripes": <ceil(size / (k*shardSize))>,
      "shardRoot": "<RFC 6962 root over all leaves, hex>",
      "leaves": ["<hex SHA-256(0x00 || shard)>", ...],   # stripes*(k+m), ordered (stripe, slot)
      "placements": [{"slot": 0, "provider": "...", "endpoint": "file:///dir" | "http://host:9000",
                      "bucket": "...", "key": "..."}, ...]   # one per slot 0..k+m-1
    }

Slot j of stripe i is bytes [i*shardSize, (i+1)*shardSize) of the slot-j object.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .merkle import root_from_leaf_hashes


class ManifestError(ValueError):
    """The manifest is malformed or its commitments do not agree with each other."""


@dataclass(frozen=True)
class Placement:
    slot: int
    provider: str
    endpoint: str
    bucket: str
    key: str


@dataclass(frozen=True)
class Manifest:
    content_digest: str
    size: int
    k: int
    m: int
    shard_size: int
    stripes: int
    shard_root: str
    leaves: tuple[str, ...]
    placements: tuple[Placement, ...]
    name: str = ""

    @property
    def n(self) -> int:
        return self.k + self.m

    def leaf(self, stripe: int, slot: int) -> str:
        return self.leaves[stripe * self.n + slot]

    def placement(self, slot: int) -> Placement:
        return self.placements[slot]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "contentDigest": self.content_digest,
            "size": self.size,
            "k": self.k,
            "m": self.m,
            "shardSize": self.shard_size,
            "stripes": self.stripes,
            "shardRoot": self.shard_root,
            "leaves": list(self.leaves),
            "placements": [p.__dict__ for p in self.placements],
        }


def _hex32(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ManifestError(f"{what} must be a hex string")
    value = value.lower().removeprefix("sha256:")
    try:
        raw = bytes.fromhex(value)
    except ValueError as exc:
        raise ManifestError(f"{what} is not hex: {value!r}") from exc
    if len(raw) != 32:
        raise ManifestError(f"{what} must be 32 bytes, got {len(raw)}")
    return value


def _int(doc: dict[str, Any], field: str, minimum: int) -> int:
    value = doc.get(field)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ManifestError(f"{field} must be an integer >= {minimum}, got {value!r}")
    return value


def parse_manifest(doc: dict[str, Any]) -> Manifest:
    """Parse and check internal consistency, including leaves against shardRoot."""
    k, m = _int(doc, "k", 1), _int(doc, "m", 0)
    shard_size, size, stripes = _int(doc, "shardSize", 1), _int(doc, "size", 0), _int(doc, "stripes", 0)
    expected_stripes = -(-size // (k * shard_size))
    if stripes != expected_stripes:
        raise ManifestError(f"stripes={stripes} but size {size} needs {expected_stripes} stripes of k*shardSize")
    leaves = tuple(_hex32(leaf, f"leaves[{i}]") for i, leaf in enumerate(doc.get("leaves") or []))
    if len(leaves) != stripes * (k + m):
        raise ManifestError(f"expected {stripes * (k + m)} leaves (stripes*(k+m)), got {len(leaves)}")
    shard_root = _hex32(doc.get("shardRoot"), "shardRoot")
    computed = root_from_leaf_hashes([bytes.fromhex(x) for x in leaves]).hex()
    if computed != shard_root:
        raise ManifestError(f"leaf table does not match shardRoot: computed {computed}, manifest {shard_root}")
    by_slot: dict[int, Placement] = {}
    for raw in doc.get("placements") or []:
        try:
            p = Placement(slot=int(raw["slot"]), provider=str(raw.get("provider", "")),
                          endpoint=str(raw.get("endpoint") or raw.get("path") or ""),
                          bucket=str(raw.get("bucket", "")), key=str(raw["key"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"bad placement {raw!r}: {exc}") from exc
        if p.slot in by_slot or not 0 <= p.slot < k + m:
            raise ManifestError(f"placement slot {p.slot} duplicated or out of range")
        by_slot[p.slot] = p
    missing = [j for j in range(k) if j not in by_slot]
    if missing:
        raise ManifestError(f"no placement for data slots {missing}")
    return Manifest(
        content_digest=_hex32(doc.get("contentDigest"), "contentDigest"),
        size=size, k=k, m=m, shard_size=shard_size, stripes=stripes, shard_root=shard_root,
        leaves=leaves, placements=tuple(by_slot[j] for j in sorted(by_slot)),
        name=str(doc.get("name", "")),
    )


def load_manifest(path: str | Path) -> Manifest:
    text = Path(str(path).removeprefix("file://")).read_text()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"manifest {path} is not JSON: {exc}") from exc
    return parse_manifest(doc)
