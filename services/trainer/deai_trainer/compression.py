"""Pseudo-gradient compression with error feedback.

Per tensor, v = delta + residual is compressed to c = C(v), and the residual keeps what
was not sent: residual <- v - D(c). Summed over rounds, what was transmitted plus the
residual equals what was produced, so nothing is lost, only delayed (low-rank and
quantization are biased; without this the model drifts).

* 2-D tensors: truncated SVD (randomized range finder with its own seeded generator:
  ~10x cheaper than a full SVD and reproducible), rank = smallest r whose singular values
  hold `energy` of ||v||_F^2, clamped to [min_rank, rank_cap]; factors P = U_r diag(sigma_r) (m x r) and
  Q = V_r (n x r), sent as P^T and Q^T rows. When (m+n)*r >= m*n the dense tensor is
  cheaper and is sent instead.
* Everything sent is quantized with one float32 absmax scale per row (factors) or per
  block of `block` values (dense tensors). Dense tensors are int8 (|x - dequant(x)| <=
  rowmax/254); low-rank factors use `bits` (8, or 4 / 2 packed two / four to a byte:
  |err| <= rowmax/14 at 4 bits). At a fixed byte budget 4-bit factors buy twice the rank,
  which removes more truncation error than the coarser rounding adds (error feedback
  carries both forward).
* `allocation="budget"` spends the bytes the rank cap would spend on every matrix where
  the energy per byte is highest instead of capping each matrix separately.

Ranks differ per replica; the exchange agrees on max(rank) over replicas first, so every
payload has the same layout (gloo all_gather needs equal sizes) and a replica never sends
less than it chose. Payloads are all-gathered and dequantized, never summed as int8.
Payload layout: all float32 scales, then all int8 values, parts in parameter order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class CompressionConfig:
    low_rank: bool = True
    quantize: bool = True
    energy: float = 0.8
    min_rank: int = 1
    max_rank: int = 32
    block: int = 256
    bits: int = 8  # low-rank factors: 8 (int8) or 4 / 2 (packed); dense tensors are always int8
    # "uniform": every matrix gets its own energy rank, capped at the rank cap.
    # "budget": the cap sets a byte budget (what every matrix at the cap would send); ranks
    # are spread over the matrices greedily by sigma_i^2 / (m + n), energy per byte.
    allocation: str = "uniform"


ALLOCATIONS = ("uniform", "budget")


FACTOR_BITS = (8, 4, 2)


# --- int8 quantization -------------------------------------------------------------------

def quantize_rows(x: torch.Tensor, bits: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric `bits`-bit integers (held in int8) with one absmax scale per row of a 2-D
    tensor: levels -L..L with L = 2^(bits-1) - 1 (127, 7, 1), |x - dequant| <= rowmax/(2L)."""
    x = x.float()
    lim = (1 << (bits - 1)) - 1
    scale = x.abs().amax(dim=1) / lim
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(x / safe[:, None]).clamp_(-lim, lim).to(torch.int8)
    return q, scale


def packed_nbytes(numel: int, bits: int) -> int:
    return -(-numel * bits // 8)


def pack(q: torch.Tensor, bits: int) -> torch.Tensor:
    """int8 values in [-L, L] -> uint8 bytes, 8 // bits values per byte (little end first)."""
    if bits == 8:
        return q.reshape(-1).view(torch.uint8)
    per = 8 // bits
    lim = (1 << (bits - 1)) - 1
    u = (q.reshape(-1).to(torch.int16) + lim).to(torch.uint8)
    pad = (-u.numel()) % per
    if pad:
        u = torch.cat([u, u.new_zeros(pad)])
    u = u.view(-1, per)
    out = torch.zeros(u.shape[0], dtype=torch.uint8)
    for j in range(per):
        out |= u[:, j] << (bits * j)
    return out


def unpack(b: torch.Tensor, numel: int, bits: int) -> torch.Tensor:
    """Inverse of pack: uint8 bytes -> numel int8 values."""
    if bits == 8:
        return b.reshape(-1)[:numel].view(torch.int8)
    per = 8 // bits
    lim = (1 << (bits - 1)) - 1
    mask = (1 << bits) - 1
    cols = [((b >> (bits * j)) & mask) for j in range(per)]
    u = torch.stack(cols, dim=1).reshape(-1)[:numel]
    return (u.to(torch.int16) - lim).to(torch.int8)


def dequantize_rows(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return q.float() * scale[:, None]


def _blocks(flat: torch.Tensor, block: int) -> torch.Tensor:
    pad = (-flat.numel()) % block
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    return flat.view(-1, block)


def quantize_dense(x: torch.Tensor, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Block-wise int8: returns (q of x.numel() values, one scale per block)."""
    q, scale = quantize_rows(_blocks(x.reshape(-1).float(), block))
    return q.reshape(-1)[: x.numel()], scale


def dequantize_dense(q: torch.Tensor, scale: torch.Tensor, shape: torch.Size, block: int) -> torch.Tensor:
    numel = math.prod(shape)
    full = dequantize_rows(_blocks(q.reshape(-1), block), scale)
    return full.reshape(-1)[:numel].reshape(shape)


# --- low rank ----------------------------------------------------------------------------

def spectral_rank(singular_values: torch.Tensor, energy: float, min_rank: int, max_rank: int,
                  total_energy: float | None = None) -> int:
    """Smallest r with sum_{i<r} s_i^2 >= energy * total, clamped to [min_rank, max_rank].

    `total` defaults to sum s_i^2 (all singular values given); pass ||v||_F^2 when only the
    leading ones were computed.
    """
    k = singular_values.numel()
    e = singular_values.double() ** 2
    total = float(e.sum()) if total_energy is None else float(total_energy)
    if total <= 0.0:
        r = min_rank
    else:
        cum = torch.cumsum(e, 0) / total
        r = int((cum < energy - 1e-12).sum()) + 1  # k+1 when the leading k hold too little
    return max(1, min(k, max(min_rank, min(r, max_rank))))


def randomized_svd(a: torch.Tensor, q: int, generator: torch.Generator, power_iters: int = 2
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Leading q singular triplets of `a` (Halko et al.): U (m x q), S (q), Vh (q x n)."""
    m, n = a.shape
    q = min(q, m, n)
    y = a @ torch.randn(n, q, generator=generator)
    for _ in range(power_iters):
        y, _ = torch.linalg.qr(y)
        y = a @ (a.t() @ y)
    basis, _ = torch.linalg.qr(y)
    ub, s, vh = torch.linalg.svd(basis.t() @ a, full_matrices=False)
    return basis @ ub, s, vh


def is_dense_cheaper(shape: torch.Size, rank: int) -> bool:
    m, n = shape
    return (m + n) * rank >= m * n


# --- error-feedback compressor -------------------------------------------------------------

@dataclass
class _Pending:
    v: torch.Tensor
    svd: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None


class ErrorFeedbackCompressor:
    """Compresses one list of tensors (a pipeline stage's parameters) round after round.

    Use: ranks = propose_ranks(deltas, cap); agree on max across replicas;
    payload, own = encode(agreed); all-gather payloads; decode(each).
    """

    def __init__(self, shapes: list[torch.Size], cfg: CompressionConfig) -> None:
        self.shapes = [torch.Size(s) for s in shapes]
        self.cfg = cfg
        self.residual = [torch.zeros(s) for s in self.shapes]
        self.calls = 0  # seeds the randomized SVD: same inputs, same factors (and resumable)
        self._pending: list[_Pending] | None = None

    def _low_rank_ok(self, shape: torch.Size) -> bool:
        return self.cfg.low_rank and len(shape) == 2 and min(shape) > 1

    def propose_ranks(self, deltas: list[torch.Tensor], rank_cap: int) -> list[int]:
        """Local rank choice per tensor; 0 means 'dense'. Stores v = delta + residual."""
        pending, ranks = [], []
        self.calls += 1
        cap = max(self.cfg.min_rank, min(rank_cap, self.cfg.max_rank))
        budget = self.cfg.allocation == "budget"
        for i, (d, e, shape) in enumerate(zip(deltas, self.residual, self.shapes)):
            v = d.detach().float().reshape(shape) + e
            if self._low_rank_ok(shape):
                gen = torch.Generator().manual_seed(self.calls * 1_000_003 + i)
                u, s, vh = randomized_svd(v, (2 * cap if budget else cap) + 8, gen)
                r = spectral_rank(s, self.cfg.energy, self.cfg.min_rank, 2 * cap if budget else cap,
                                  total_energy=float(v.pow(2).sum()))
                # A dense tensor is a legal, larger choice; encode it as min(m, n) so that
                # max-agreement across replicas picks dense if anyone needs it.
                ranks.append(min(shape) if is_dense_cheaper(shape, r) else r)
                pending.append(_Pending(v, (u, s, vh)))
            else:
                ranks.append(0)
                pending.append(_Pending(v, None))
        self._pending = pending
        if budget:
            ranks = self._allocate(pending, ranks, cap)
        return ranks

    def defer(self) -> None:
        """The proposed round went without us (elastic exchange, late): nothing was sent, so
        the residual keeps the whole v = delta + residual for the next round."""
        if self._pending is None:
            raise RuntimeError("defer() called without propose_ranks()")
        for e, p in zip(self.residual, self._pending):
            e.copy_(p.v)
        self._pending = None

    def _allocate(self, pending: list[_Pending], energy_ranks: list[int], cap: int) -> list[int]:
        """Budget mode: total factor elements <= sum over matrices of (m + n) * cap; each
        matrix gets min_rank, then singular directions are bought greedily by energy per
        element sigma^2 / (m + n), never beyond the matrix's energy rank or 2 * cap."""
        idx = [i for i, p in enumerate(pending) if p.svd is not None]
        cost = {i: sum(self.shapes[i]) for i in idx}
        left = sum(cost[i] for i in idx) * cap
        out = list(energy_ranks)
        cands = []
        for i in idx:
            lo = min(self.cfg.min_rank, energy_ranks[i])
            out[i] = lo
            left -= cost[i] * lo
            s = pending[i].svd[1].double()
            for k in range(lo, min(energy_ranks[i], s.numel())):
                cands.append((-float(s[k]) ** 2 / cost[i], i, k))
        cands.sort()
        for _, i, k in cands:  # s is sorted per matrix, so each matrix's picks stay contiguous
            if cost[i] <= left and out[i] == k:
                out[i] += 1
                left -= cost[i]
        for i in idx:
            if is_dense_cheaper(self.shapes[i], out[i]):
                out[i] = min(self.shapes[i])
        return out

    def _parts(self, ranks: list[int]) -> list[tuple[str, tuple[int, ...], int]]:
        """(kind, int8 shape, number of scales) for every part of the payload, in order."""
        parts = []
        for shape, r in zip(self.shapes, ranks):
            if r > 0 and self._low_rank_ok(shape) and not is_dense_cheaper(shape, r):
                m, n = shape
                parts.append(("P", (r, m), r))
                parts.append(("Q", (r, n), r))
            else:
                numel = math.prod(shape)
                nblocks = -(-numel // self.cfg.block)
                parts.append(("D", (numel,), nblocks))
        return parts

    def _bits(self, kind: str) -> int:
        return self.cfg.bits if kind != "D" else 8

    def _value_nbytes(self, kind: str, shape: tuple[int, ...]) -> int:
        if not self.cfg.quantize:
            return 4 * math.prod(shape)
        return packed_nbytes(math.prod(shape), self._bits(kind))

    def payload_nbytes(self, ranks: list[int]) -> int:
        return sum(self._value_nbytes(k, s) + (4 * ns if self.cfg.quantize else 0) for k, s, ns in self._parts(ranks))

    def encode(self, ranks: list[int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Payload (flat uint8) for the agreed ranks, and this replica's own decoded tensors.

        Updates the residual: residual <- v - decoded.
        """
        if self._pending is None:
            raise RuntimeError("encode() called without propose_ranks()")
        values: list[torch.Tensor] = []
        scales: list[torch.Tensor] = []
        for p, shape, r in zip(self._pending, self.shapes, ranks):
            if r > 0 and p.svd is not None and not is_dense_cheaper(shape, r):
                u, s, vh = p.svd
                factors = [(u[:, :r] * s[:r]).t().contiguous(), vh[:r, :].contiguous()]  # P^T, Q^T
                for f in factors:
                    if self.cfg.quantize:
                        q, sc = quantize_rows(f, self.cfg.bits)
                        values.append(pack(q, self.cfg.bits))
                        scales.append(sc)
                    else:
                        values.append(f.reshape(-1).float())
            elif self.cfg.quantize:
                q, sc = quantize_dense(p.v, self.cfg.block)
                values.append(q.view(torch.uint8))
                scales.append(sc)
            else:
                values.append(p.v.reshape(-1).float())
        if self.cfg.quantize:
            # float32 scales first so they stay 4-byte aligned inside the byte buffer
            payload = torch.cat([torch.cat(scales).float().view(torch.uint8), torch.cat(values)])
        else:
            payload = torch.cat(values).view(torch.uint8)
        own = self.decode(payload, ranks)
        for e, p, o in zip(self.residual, self._pending, own):
            e.copy_(p.v - o)
        self._pending = None
        return payload, own

    def decode(self, payload: torch.Tensor, ranks: list[int]) -> list[torch.Tensor]:
        parts = self._parts(ranks)
        if payload.numel() != self.payload_nbytes(ranks):
            raise ValueError(f"payload has {payload.numel()} bytes, layout needs {self.payload_nbytes(ranks)}")
        n_scales = sum(ns for _, _, ns in parts) if self.cfg.quantize else 0
        scl = payload[: 4 * n_scales].view(torch.float32) if self.cfg.quantize else None
        value_bytes = payload[4 * n_scales:]
        decoded_parts: list[torch.Tensor] = []
        vo = so = 0
        for kind, s, ns in parts:
            numel = math.prod(s)
            nb = self._value_nbytes(kind, s)
            raw = value_bytes[vo: vo + nb]
            vo += nb
            v = unpack(raw, numel, self._bits(kind)) if self.cfg.quantize else raw.view(torch.float32)
            if self.cfg.quantize:
                sc = scl[so: so + ns]
                so += ns
                if kind == "D":
                    decoded_parts.append(dequantize_dense(v, sc, torch.Size(s), self.cfg.block))
                else:
                    decoded_parts.append(dequantize_rows(v.view(*s), sc))
            else:
                decoded_parts.append(v.float().view(*s))
        out: list[torch.Tensor] = []
        it = iter(zip(parts, decoded_parts))
        for shape in self.shapes:
            (kind, _, _), t = next(it)
            if kind == "P":
                (_, _, _), qt = next(it)
                out.append((t.t() @ qt).reshape(shape))
            else:
                out.append(t.reshape(shape).clone())
        return out
