"""GPipe schedule for one group: all micro-batch forwards, then all backwards.

Activations go stage s -> s+1 and their gradients s+1 -> s with point-to-point
send/recv on the default process group (inside a group that is loopback or the
cluster's own fabric, never the slow cross-cluster link). With one stage this is plain
gradient accumulation over micro-batches.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch.nn import functional as F

from .comm import Topology
from .model import Stage


class GPipe:
    def __init__(self, stage: Stage, topo: Topology, micro_batches: int, d_model: int) -> None:
        self.stage, self.topo, self.micro_batches, self.d_model = stage, topo, micro_batches, d_model
        self.prev = topo.rank - 1 if not topo.first_stage else None
        self.next = topo.rank + 1 if not topo.last_stage else None

    def _split(self, t: torch.Tensor) -> list[torch.Tensor]:
        if t.shape[0] % self.micro_batches:
            raise ValueError(f"batch {t.shape[0]} not divisible by {self.micro_batches} micro-batches")
        return list(t.chunk(self.micro_batches))

    def _act_shape(self, mb: torch.Tensor) -> tuple[int, int, int]:
        return (mb.shape[0], mb.shape[1], self.d_model)

    def train_step(self, inputs: torch.Tensor, targets: torch.Tensor) -> float | None:
        """Forward + backward of one batch; gradients accumulate in the stage's params.

        Returns the mean loss on the last stage, None elsewhere. Every stage receives the
        same (inputs, targets) batch: the first uses inputs, the last targets, the rest
        only their shapes.
        """
        xs, ys = self._split(inputs), self._split(targets)
        pending: list[object] = []
        saved: list[tuple[torch.Tensor | None, torch.Tensor]] = []
        total = 0.0
        for x, y in zip(xs, ys):
            if self.prev is None:
                inp, out = None, self.stage(x)
            else:
                inp = torch.empty(self._act_shape(x))
                dist.recv(inp, src=self.prev)
                inp.requires_grad_(True)
                out = self.stage(inp)
            if self.next is not None:
                sent = out.detach().contiguous()
                pending.append((dist.isend(sent, dst=self.next), sent))
                saved.append((inp, out))
            else:
                loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1)) / self.micro_batches
                total += float(loss.detach())
                saved.append((inp, loss))
        for inp, out in reversed(saved):
            if self.next is None:
                out.backward()
            else:
                grad = torch.empty_like(out)
                dist.recv(grad, src=self.next)
                out.backward(grad)
            if self.prev is not None:
                g = inp.grad.contiguous()
                pending.append((dist.isend(g, dst=self.prev), g))
        for work, _ in pending:
            work.wait()
        return total if self.next is None else None

    @torch.no_grad()
    def eval_loss_sum(self, inputs: torch.Tensor, targets: torch.Tensor) -> float | None:
        """Summed token cross-entropy (last stage), forward only."""
        if self.prev is None:
            out = self.stage(inputs)
        else:
            out = torch.empty(self._act_shape(inputs))
            dist.recv(out, src=self.prev)
            out = self.stage(out)
        if self.next is not None:
            dist.send(out.contiguous(), dst=self.next)
            return None
        return float(F.cross_entropy(out.reshape(-1, out.shape[-1]), targets.reshape(-1), reduction="sum"))
