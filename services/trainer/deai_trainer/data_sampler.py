"""Deterministic batches: batch(step) depends only on (seed, group, step), so every
stage of a group sees the same batch, every method sees the same data, and a resumed
run continues the same stream."""
from __future__ import annotations

import hashlib

import torch


def _seed(*parts: int) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "little") >> 1


class BatchSampler:
    def __init__(self, data: bytes, seed: int, group: int, batch_size: int, context: int) -> None:
        if len(data) < context + 2:
            raise ValueError(f"dataset of {len(data)} bytes is shorter than one context window")
        self.data = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        self.seed, self.group, self.batch_size, self.context = seed, group, batch_size, context

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(_seed(self.seed, self.group, step))
        offs = torch.randint(0, self.data.numel() - self.context - 1, (self.batch_size,), generator=g)
        chunk = self.data[offs[:, None] + torch.arange(self.context + 1)].long()
        return chunk[:, :-1], chunk[:, 1:]


def held_out_windows(data: bytes, context: int, tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping windows from the start of the held-out set: fixed for every method."""
    t = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    n = min(tokens // context, (t.numel() - 1) // context)
    if n < 1:
        raise ValueError("held-out set shorter than one context window")
    x = t[: n * context].view(n, context).long()
    y = t[1: n * context + 1].view(n, context).long()
    return x, y
