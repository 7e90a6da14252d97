"""Checkpoints in object storage, each with its SHA-256 (object metadata + a sidecar)."""
from __future__ import annotations

import hashlib
import io
from typing import Any

import torch

from .blobstore import BlobStore


class CheckpointIntegrityError(Exception):
    pass


def checkpoint_key(prefix: str, round_: int, group: int, stage: int) -> str:
    return f"{prefix.rstrip('/')}/round-{round_:06d}/group-{group}-stage-{stage}.pt"


def save_checkpoint(store: BlobStore, bucket: str, key: str, state: dict[str, Any]) -> tuple[str, int]:
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    store.put(bucket, key, data, {"sha256": digest})
    store.put(bucket, key + ".sha256", (digest + "\n").encode())
    return digest, len(data)


def load_checkpoint(store: BlobStore, bucket: str, key: str) -> dict[str, Any]:
    data = store.get(bucket, key)
    expected = store.get(bucket, key + ".sha256").decode().strip()
    got = hashlib.sha256(data).hexdigest()
    if got != expected:
        raise CheckpointIntegrityError(f"checkpoint {bucket}/{key}: sha256 {got} != recorded {expected}")
    return torch.load(io.BytesIO(data))
