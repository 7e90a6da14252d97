"""Process topology, collectives with byte accounting, and the in-process rate limiter.

Ranks: rank = group * stages + stage. Process groups (gloo on CPU, NCCL on GPU):
  world        default group: pipeline send/recv between neighbouring stages of a group
  stage_pg[s]  the replicas of stage s across groups: the outer (cross-cluster) collectives
  group_pg[g]  the stages of group g: small loopback reductions (grad norm, stats)
  control_pg   all ranks; used only by the background exchange thread for the tiny
               max-agreement that keeps adaptive H identical on every worker
Every cross-group collective goes through `Collectives`, which counts payload bytes sent
by this rank (ring all-reduce: 2(W-1)/W * n; all-gather: (W-1) * n) and, when no real
rate-limited link exists, sleeps so the op takes at least bytes/rate.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Topology:
    groups: int
    stages: int
    group: int
    stage: int

    @property
    def world(self) -> int:
        return self.groups * self.stages

    @property
    def rank(self) -> int:
        return self.group * self.stages + self.stage

    @property
    def first_stage(self) -> bool:
        return self.stage == 0

    @property
    def last_stage(self) -> bool:
        return self.stage == self.stages - 1

    def rank_of(self, group: int, stage: int) -> int:
        return group * self.stages + stage


@dataclass
class ProcessGroups:
    stage: object
    group: object
    control: object


def make_process_groups(topo: Topology) -> ProcessGroups:
    """new_group is collective over the world: every rank creates every group, same order."""
    stage_pgs = [dist.new_group([topo.rank_of(g, s) for g in range(topo.groups)]) for s in range(topo.stages)]
    group_pgs = [dist.new_group([topo.rank_of(g, s) for s in range(topo.stages)]) for g in range(topo.groups)]
    control = dist.new_group(list(range(topo.world)))
    return ProcessGroups(stage=stage_pgs[topo.stage], group=group_pgs[topo.group], control=control)


class RateLimiter:
    """Token bucket emulating a link of `bits_per_s` for this process's sends.

    Fallback only (when network namespaces cannot be made): each worker gets the link
    rate divided by the number of stages sharing it.
    """

    def __init__(self, bits_per_s: float) -> None:
        self.bytes_per_s = bits_per_s / 8.0
        self._free_at = 0.0
        self._lock = threading.Lock()

    def throttle(self, nbytes: float, started: float) -> None:
        with self._lock:
            begin = max(started, self._free_at)
            self._free_at = begin + nbytes / self.bytes_per_s
            until = self._free_at
        delay = until - time.perf_counter()
        if delay > 0:
            time.sleep(delay)


@dataclass
class LinkMeter:
    """Cross-group payload bytes sent by this rank and time spent in those ops."""
    bytes_sent: float = 0.0
    comm_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, nbytes: float, seconds: float) -> None:
        with self._lock:
            self.bytes_sent += nbytes
            self.comm_s += seconds


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


class Collectives:
    def __init__(self, pg: object, limiter: RateLimiter | None = None) -> None:
        self.pg = pg
        self.size = dist.get_world_size(pg)
        self.limiter = limiter
        self.meter = LinkMeter()

    def _account(self, sent: float, started: float) -> None:
        if self.limiter is not None:
            self.limiter.throttle(sent, started)
        self.meter.add(sent, time.perf_counter() - started)

    def all_reduce_sum_(self, tensors: list[torch.Tensor]) -> None:
        """In-place SUM of each tensor (launched together, waited together)."""
        started = time.perf_counter()
        works = [dist.all_reduce(t, op=dist.ReduceOp.SUM, group=self.pg, async_op=True) for t in tensors]
        for w in works:
            w.wait()
        w_ = self.size
        self._account(sum(2 * (w_ - 1) / w_ * _nbytes(t) for t in tensors), started)

    def all_reduce_max_(self, t: torch.Tensor) -> None:
        started = time.perf_counter()
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.pg)
        self._account(2 * (self.size - 1) / self.size * _nbytes(t), started)

    def all_gather(self, t: torch.Tensor) -> list[torch.Tensor]:
        started = time.perf_counter()
        out = [torch.empty_like(t) for _ in range(self.size)]
        dist.all_gather(out, t, group=self.pg)
        self._account((self.size - 1) * _nbytes(t), started)
        return out


def flatten_buckets(tensors: list[torch.Tensor], bucket_bytes: int) -> list[list[int]]:
    """Indices of `tensors` grouped into buckets of about `bucket_bytes` (DDP-style),
    in reverse order: the last layers' gradients are ready first in backward."""
    buckets: list[list[int]] = [[]]
    size = 0
    for i in reversed(range(len(tensors))):
        nb = _nbytes(tensors[i])
        if buckets[-1] and size + nb > bucket_bytes:
            buckets.append([])
            size = 0
        buckets[-1].append(i)
        size += nb
    return buckets


def bucketed_mean_(coll: Collectives, tensors: list[torch.Tensor], bucket_bytes: int) -> None:
    """Average `tensors` across coll's group: flatten into buckets, SUM, divide (gloo has no AVG)."""
    flats, index = [], flatten_buckets(tensors, bucket_bytes)
    for idx in index:
        flats.append(torch.cat([tensors[i].reshape(-1) for i in idx]))
    coll.all_reduce_sum_(flats)
    for idx, flat in zip(index, flats):
        flat.div_(coll.size)
        off = 0
        for i in idx:
            n = tensors[i].numel()
            tensors[i].copy_(flat[off: off + n].view_as(tensors[i]))
            off += n
