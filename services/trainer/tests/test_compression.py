import math

import pytest
import torch

from deai_trainer.compression import (
    CompressionConfig, ErrorFeedbackCompressor, dequantize_dense, dequantize_rows, pack, packed_nbytes,
    quantize_dense, quantize_rows, spectral_rank, unpack,
)


def test_int8_rows_error_bound():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 300, generator=g) * torch.logspace(-3, 2, 7)[:, None]
    q, s = quantize_rows(x)
    assert q.dtype == torch.int8
    err = (dequantize_rows(q, s) - x).abs()
    bound = x.abs().amax(dim=1, keepdim=True) / 254 + 1e-7
    assert bool((err <= bound).all())


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_low_bit_rows_pack_round_trip_and_error_bound(bits):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(5, 37, generator=g) * torch.logspace(-2, 1, 5)[:, None]  # odd row length: padding
    q, s = quantize_rows(x, bits)
    lim = (1 << (bits - 1)) - 1
    assert int(q.abs().max()) <= lim
    b = pack(q, bits)
    assert b.dtype == torch.uint8 and b.numel() == packed_nbytes(q.numel(), bits)
    assert torch.equal(unpack(b, q.numel(), bits).view_as(q), q)
    err = (dequantize_rows(q, s) - x).abs()
    assert bool((err <= x.abs().amax(dim=1, keepdim=True) / (2 * lim) + 1e-7).all())


@pytest.mark.parametrize("bits", [4, 2])
def test_packed_factor_payload_size_and_error_feedback(bits):
    """Packed factors: payload size as advertised, decode equals the own copy, and
    transmitted + residual = produced (error feedback holds at any bit width)."""
    shapes = [torch.Size([48, 40]), torch.Size([40])]
    c = ErrorFeedbackCompressor(shapes, CompressionConfig(bits=bits, max_rank=8))
    g = torch.Generator().manual_seed(6)
    produced = [torch.zeros(s) for s in shapes]
    sent = [torch.zeros(s) for s in shapes]
    for _ in range(3):
        d = [torch.randn(s, generator=g) for s in shapes]
        ranks = c.propose_ranks(d, 8)
        payload, own = c.encode(ranks)
        assert payload.numel() == c.payload_nbytes(ranks)
        for a, b in zip(own, c.decode(payload, ranks)):
            assert torch.equal(a, b)
        for p_, s_, d_, o in zip(produced, sent, d, own):
            p_.add_(d_)
            s_.add_(o)
    for p_, s_, e in zip(produced, sent, c.residual):
        assert torch.allclose(s_ + e, p_, atol=1e-4)
    r8 = ErrorFeedbackCompressor(shapes, CompressionConfig(bits=8, max_rank=8)).payload_nbytes([8, 0])
    assert c.payload_nbytes([8, 0]) < r8


def test_int8_dense_blocks_error_bound_and_zero_block():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1000, generator=g)
    x[256:512] = 0.0
    q, s = quantize_dense(x, 256)
    assert q.numel() == 1000 and s.numel() == 4
    y = dequantize_dense(q, s, x.shape, 256)
    assert torch.equal(y[256:512], torch.zeros(256))
    for b in range(4):
        blk = slice(b * 256, min(1000, (b + 1) * 256))
        assert float((y[blk] - x[blk]).abs().max()) <= float(x[blk].abs().max()) / 254 + 1e-7


def test_spectral_rank_choice_and_clamps():
    s = torch.tensor([10.0, 5.0, 1.0, 0.5, 0.1])
    e = s ** 2 / (s ** 2).sum()  # energies: .7921 .198 .0079 ...
    assert float(e[0]) < 0.8 < float(e[:2].sum())
    assert spectral_rank(s, 0.5, 1, 5) == 1
    assert spectral_rank(s, 0.8, 1, 5) == 2
    assert spectral_rank(s, 0.999, 1, 5) == 4
    assert spectral_rank(s, 0.8, 3, 5) == 3      # min clamp
    assert spectral_rank(s, 0.9999, 1, 2) == 2   # max clamp
    assert spectral_rank(torch.zeros(4), 0.9, 2, 4) == 2


def _low_rank_matrix(m, n, r, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, r, generator=g) @ torch.randn(r, n, generator=g)


def test_low_rank_round_trip_error_bound():
    """Relative error <= sqrt(1 - energy) (truncation) + int8 error of the factors."""
    g = torch.Generator().manual_seed(2)
    x = _low_rank_matrix(96, 64, 6, 3) + 0.05 * torch.randn(96, 64, generator=g)
    cfg = CompressionConfig(energy=0.95, min_rank=1, max_rank=64)
    c = ErrorFeedbackCompressor([x.shape], cfg)
    ranks = c.propose_ranks([x], rank_cap=64)
    assert 1 <= ranks[0] <= 8  # an effective rank-6 matrix
    payload, own = c.encode(ranks)
    rel = float((own[0] - x).norm() / x.norm())
    assert rel <= math.sqrt(1 - 0.95) + 0.02
    assert payload.numel() < x.numel() * 4 / 10  # at least 10x smaller than fp32
    # Another replica decodes the same bytes to the same tensor.
    other = ErrorFeedbackCompressor([x.shape], cfg)
    assert torch.equal(other.decode(payload, ranks)[0], own[0])


def test_dense_chosen_when_cheaper_and_1d_never_low_rank():
    cfg = CompressionConfig(energy=0.999, min_rank=1, max_rank=64)
    g = torch.Generator().manual_seed(4)
    full = torch.randn(8, 8, generator=g)
    bias = torch.randn(33, generator=g)
    c = ErrorFeedbackCompressor([full.shape, bias.shape], cfg)
    ranks = c.propose_ranks([full, bias], rank_cap=64)
    assert ranks == [8, 0]
    payload, own = c.encode(ranks)
    assert payload.numel() == c.payload_nbytes(ranks) == 64 + 4 * 1 + 33 + 4 * 1
    assert float((own[1] - bias).abs().max()) <= float(bias.abs().max()) / 254 + 1e-7


def test_error_feedback_residual_invariant():
    """After T rounds: sum(transmitted) + residual == sum(deltas) (nothing is lost)."""
    shapes = [torch.Size([40, 30]), torch.Size([30])]
    cfg = CompressionConfig(energy=0.5, min_rank=1, max_rank=2)  # very lossy on purpose
    c = ErrorFeedbackCompressor(shapes, cfg)
    g = torch.Generator().manual_seed(5)
    sent = [torch.zeros(s) for s in shapes]
    produced = [torch.zeros(s) for s in shapes]
    for _ in range(12):
        deltas = [torch.randn(s, generator=g) for s in shapes]
        ranks = c.propose_ranks(deltas, rank_cap=2)
        _, own = c.encode(ranks)
        for acc, d in zip(produced, deltas):
            acc += d
        for acc, o in zip(sent, own):
            acc += o
        for s_, e, p in zip(sent, c.residual, produced):
            assert torch.allclose(s_ + e, p, atol=1e-4)
    # and the residual stays bounded (compression keeps up): no blow-up over rounds
    assert float(c.residual[0].norm()) < 5 * float(produced[0].norm() / 12 * 12 ** 0.5) + 50


def test_error_feedback_transmits_a_constant_signal_eventually():
    """A fixed direction lost to truncation in one round is sent in later rounds."""
    x = _low_rank_matrix(50, 40, 4, 6)
    cfg = CompressionConfig(energy=0.3, min_rank=1, max_rank=1)
    c = ErrorFeedbackCompressor([x.shape], cfg)
    total = torch.zeros_like(x)
    T = 40
    for _ in range(T):
        ranks = c.propose_ranks([x], rank_cap=1)
        _, own = c.encode(ranks)
        total += own[0]
    # the average transmitted update converges to x; without feedback it would stay rank-1
    assert float((total / T - x).norm() / x.norm()) < 0.15


def test_decode_rejects_wrong_layout():
    c = ErrorFeedbackCompressor([torch.Size([20, 20])], CompressionConfig(max_rank=4))
    c.propose_ranks([torch.randn(20, 20)], 4)
    payload, _ = c.encode([3])
    with pytest.raises(ValueError):
        c.decode(payload, [4])


def test_randomized_svd_recovers_leading_spectrum_reproducibly():
    from deai_trainer.compression import randomized_svd
    a = _low_rank_matrix(120, 80, 5, 9) + 1e-3 * torch.randn(120, 80, generator=torch.Generator().manual_seed(1))
    exact = torch.linalg.svdvals(a)
    u, s, vh = randomized_svd(a, 12, torch.Generator().manual_seed(3))
    assert u.shape == (120, 12) and vh.shape == (12, 80)
    assert torch.allclose(s[:5], exact[:5], rtol=1e-3)
    u2, s2, vh2 = randomized_svd(a, 12, torch.Generator().manual_seed(3))
    assert torch.equal(s, s2) and torch.equal(u, u2)


def test_budget_allocation_stays_within_the_cap_budget_and_favours_energy():
    """allocation="budget": factor elements <= sum (m+n)*cap; the matrix with the energy
    gets the rank, the flat-spectrum one keeps little."""
    g = torch.Generator().manual_seed(8)
    shapes = [torch.Size([64, 96]), torch.Size([80, 48])]
    strong = _low_rank_matrix(64, 96, 12, 9)
    noise = 0.01 * torch.randn(80, 48, generator=g)
    cap = 4
    c = ErrorFeedbackCompressor(shapes, CompressionConfig(energy=0.99, min_rank=1, max_rank=16, allocation="budget"))
    ranks = c.propose_ranks([strong, noise], rank_cap=cap)
    assert sum((m + n) * r for (m, n), r in zip(shapes, ranks)) <= sum(m + n for m, n in shapes) * cap
    assert ranks[0] > cap and ranks[1] < cap
    payload, own = c.encode(ranks)
    assert payload.numel() == c.payload_nbytes(ranks)
