"""Produce ARCHITECTURE.md's storage layout from a local file (tests and the benchmark).

    /usr/bin/python3 -m deai_trainer.layout --input corpus.txt --out-dir DIR --manifest m.json

Writes one object per (dataset, slot) under DIR/provider-<j>/<bucket>/<digest>/slot-<j>
(endpoint file://DIR/provider-<j>) and a manifest whose leaves cover all k+m slots.
Parity slots are written as all-zero placeholder objects: the worker never reads parity,
and the real systematic Reed-Solomon codec lives in the ingestion service, so this tool
does not pretend to be it. The manifest says so in "parity".
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from .manifest import Manifest, Placement
from .merkle import leaf_hash, root_from_leaf_hashes


def build_layout(data: bytes, out_dir: Path, *, name: str = "dataset", k: int = 8, m: int = 4,
                 shard_size: int = 256 * 1024, bucket: str = "deai-datasets") -> Manifest:
    n = k + m
    stripes = -(-len(data) // (k * shard_size))
    padded = data + bytes(stripes * k * shard_size - len(data))
    digest = hashlib.sha256(data).hexdigest()
    zero_shard = bytes(shard_size)
    leaves: list[bytes] = []
    slot_objects: list[list[bytes]] = [[] for _ in range(n)]
    for i in range(stripes):
        for j in range(n):
            if j < k:
                off = (i * k + j) * shard_size
                shard = padded[off: off + shard_size]
            else:
                shard = zero_shard
            slot_objects[j].append(shard)
            leaves.append(leaf_hash(shard))
    placements = []
    for j in range(n):
        root = out_dir / f"provider-{j}"
        key = f"{digest}/slot-{j:02d}"
        path = root / bucket / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"".join(slot_objects[j]))
        placements.append(Placement(slot=j, provider=f"local-{j}", endpoint=f"file://{root.resolve()}",
                                    bucket=bucket, key=key))
    return Manifest(content_digest=digest, size=len(data), k=k, m=m, shard_size=shard_size,
                    stripes=stripes, shard_root=root_from_leaf_hashes(leaves).hex(),
                    leaves=tuple(x.hex() for x in leaves), placements=tuple(placements), name=name)


def write_manifest(manifest: Manifest, path: Path) -> None:
    doc = manifest.to_json()
    doc["mediaType"] = "text/plain"
    doc["parity"] = "placeholder-zero"  # see module docstring
    path.write_text(json.dumps(doc, indent=1))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True, type=Path)
    ap.add_argument("--out-dir", required=True, type=Path)
    ap.add_argument("--manifest", required=True, type=Path)
    ap.add_argument("--name", default=None)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--m", type=int, default=4)
    ap.add_argument("--shard-size", type=int, default=256 * 1024)
    ap.add_argument("--bucket", default="deai-datasets")
    args = ap.parse_args(argv)
    manifest = build_layout(args.input.read_bytes(), args.out_dir, name=args.name or args.input.name,
                            k=args.k, m=args.m, shard_size=args.shard_size, bucket=args.bucket)
    write_manifest(manifest, args.manifest)
    print(json.dumps({"manifest": str(args.manifest), "contentDigest": manifest.content_digest,
                      "shardRoot": manifest.shard_root, "stripes": manifest.stripes}))


if __name__ == "__main__":
    main()
