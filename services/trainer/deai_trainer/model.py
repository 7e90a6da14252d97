"""Byte-level GPT small enough for a CPU, cut into pipeline stages.

Every replica builds the *whole* model from the same seed and keeps only its stage's
modules, so identical initial weights on every group follow from construction (and are
checked at start-up by the worker, not assumed).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 256
    context_length: int = 64
    d_model: int = 192
    n_layers: int = 4
    n_heads: int = 4
    mlp_ratio: int = 4


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        mask = torch.tril(torch.ones(cfg.context_length, cfg.context_length, dtype=torch.bool))
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        hd = c // self.n_heads
        q = q.view(b, t, self.n_heads, hd).transpose(1, 2)
        k = k.view(b, t, self.n_heads, hd).transpose(1, 2)
        v = v.view(b, t, self.n_heads, hd).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        att = att.masked_fill(~self.mask[:t, :t], float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(b, t, c)
        return self.proj(y)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.fc = nn.Linear(cfg.d_model, cfg.mlp_ratio * cfg.d_model)
        self.out = nn.Linear(cfg.mlp_ratio * cfg.d_model, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class Stage(nn.Module):
    """One pipeline stage: optional embedding, a run of blocks, optional head.

    Stage 0 maps byte ids (B, T) to activations (B, T, d); the last stage maps
    activations to logits (B, T, 256). With one stage it is the whole model.
    """

    def __init__(self, cfg: ModelConfig, blocks: list[Block], first: bool, last: bool,
                 tok: nn.Embedding | None, pos: nn.Embedding | None,
                 ln_f: nn.LayerNorm | None, head: nn.Linear | None) -> None:
        super().__init__()
        self.cfg = cfg
        self.first, self.last = first, last
        self.tok, self.pos = tok, pos
        self.blocks = nn.ModuleList(blocks)
        self.ln_f, self.head = ln_f, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.first:
            t = x.shape[1]
            x = self.tok(x) + self.pos(torch.arange(t, device=x.device))
        for block in self.blocks:
            x = block(x)
        if self.last:
            x = self.head(self.ln_f(x))
        return x


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)


def stage_block_ranges(n_layers: int, n_stages: int) -> list[range]:
    """Blocks per stage, as even as possible (earlier stages get the remainder)."""
    if not 1 <= n_stages <= n_layers:
        raise ValueError(f"need 1 <= stages ({n_stages}) <= layers ({n_layers})")
    base, extra = divmod(n_layers, n_stages)
    out, start = [], 0
    for s in range(n_stages):
        size = base + (1 if s < extra else 0)
        out.append(range(start, start + size))
        start += size
    return out


def build_stage(cfg: ModelConfig, seed: int, stage: int, n_stages: int) -> Stage:
    """Build the full model from `seed` and return stage `stage` of `n_stages`."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
    pos = nn.Embedding(cfg.context_length, cfg.d_model)
    blocks = [Block(cfg) for _ in range(cfg.n_layers)]
    ln_f = nn.LayerNorm(cfg.d_model)
    head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
    for m in (tok, pos, ln_f, head, *blocks):
        m.apply(_init_weights)
    # GPT-2 style scaled init of residual projections keeps early training stable.
    for b in blocks:
        nn.init.normal_(b.out.weight, std=0.02 / math.sqrt(2 * cfg.n_layers))
        nn.init.normal_(b.attn.proj.weight, std=0.02 / math.sqrt(2 * cfg.n_layers))
    torch.random.set_rng_state(gen_state)
    ranges = stage_block_ranges(cfg.n_layers, n_stages)
    first, last = stage == 0, stage == n_stages - 1
    return Stage(cfg, [blocks[i] for i in ranges[stage]], first, last,
                 tok if first else None, pos if first else None,
                 ln_f if last else None, head if last else None)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
