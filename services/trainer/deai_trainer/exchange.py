"""The cross-group exchange of pseudo-gradients, run on one background thread per worker.

A job: (1) optional max-agreement of controller inputs over all workers, (2) with
compression: local rank choice, max-agreement of ranks across the stage's replicas,
encode (error feedback), all-gather of the int8 payloads, dequantize and average;
without compression: fp32 SUM all-reduce divided by the number of groups.
Jobs run in submission order, so the error-feedback residual is touched by one thread.
"""
from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import torch

from .comm import Collectives
from .compression import ErrorFeedbackCompressor


@dataclass
class ExchangeResult:
    average: list[torch.Tensor]
    agreed_stats: list[float] | None
    ranks: list[int] | None
    payload_bytes: int
    comm_s: float  # wall time in network operations (what the link costs, hidden or not)
    job_s: float   # compression + network + decode, from the moment every peer has submitted


class OuterExchange:
    def __init__(self, stage_coll: Collectives, control_coll: Collectives | None,
                 compressor: ErrorFeedbackCompressor | None) -> None:
        self.stage_coll, self.control_coll, self.compressor = stage_coll, control_coll, compressor
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outer-exchange")

    def submit(self, delta: list[torch.Tensor], rank_cap: int, stats: list[float] | None) -> "Future[ExchangeResult]":
        return self.pool.submit(self._run, [d.detach().clone() for d in delta], rank_cap, stats)

    def _run(self, delta: list[torch.Tensor], rank_cap: int, stats: list[float] | None) -> ExchangeResult:
        started = time.perf_counter()
        net = 0.0
        agreed = None
        if stats is not None and self.control_coll is not None:
            t = torch.tensor(stats, dtype=torch.float64)
            t0 = time.perf_counter()
            self.control_coll.all_reduce_max_(t)
            agreed = t.tolist()
            # Everyone has submitted once this returns: time the job from here, so a group
            # that merely finished its round earlier does not count the wait as link cost.
            started = time.perf_counter()
        groups = self.stage_coll.size
        if self.compressor is None:
            flat = torch.cat([d.reshape(-1).float() for d in delta])
            t0 = time.perf_counter()
            self.stage_coll.all_reduce_sum_([flat])
            net += time.perf_counter() - t0
            flat.div_(groups)
            out, off = [], 0
            for d in delta:
                out.append(flat[off: off + d.numel()].view_as(d).clone())
                off += d.numel()
            return ExchangeResult(out, agreed, None, flat.numel() * 4, net, time.perf_counter() - started)
        local = self.compressor.propose_ranks(delta, rank_cap)
        ranks_t = torch.tensor(local, dtype=torch.int64)
        t0 = time.perf_counter()
        self.stage_coll.all_reduce_max_(ranks_t)
        net += time.perf_counter() - t0
        ranks = [int(r) for r in ranks_t.tolist()]
        payload, _own = self.compressor.encode(ranks)
        t0 = time.perf_counter()
        gathered = self.stage_coll.all_gather(payload)
        net += time.perf_counter() - t0
        avg = [torch.zeros_like(d, dtype=torch.float32) for d in delta]
        for g in gathered:  # same order on every replica -> bitwise-identical averages
            for a, part in zip(avg, self.compressor.decode(g, ranks)):
                a.add_(part.view_as(a))
        for a in avg:
            a.div_(groups)
        return ExchangeResult(avg, agreed, ranks, payload.numel(), net, time.perf_counter() - started)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
