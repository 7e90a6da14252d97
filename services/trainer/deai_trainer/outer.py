"""The outer loop of DiLoCo: anchor weights, Nesterov outer step, optional one-round delay.

Round t (inner steps done, local weights x, round started at s):
    delta_t = s - x                          (pseudo-gradient; computed before anything moves)
  no delay:  avg_t = exchange(delta_t).wait(); outer_step(avg_t); x <- anchor
  delay:     avg_{t-1} = pending.wait(); pending = exchange(delta_t); outer_step(avg_{t-1})
             start="anchor+own" (default): x <- anchor - delta_t
             start="anchor":               x <- anchor
    s <- x
Every delta is applied to the anchor exactly once: in its own round without delay, one
round late with delay (the first round applies nothing; flush() applies the last one and
sets x <- anchor). Round t+1's inner steps run while delta_t is on the wire. The anchor,
the only state the outer step touches, is identical on every replica after every step.

Why "anchor+own": restarting round t+1 from the anchor alone (which lacks delta_t) makes
the workers redo round t's progress, and both deltas are applied. On directions the inner
loop settles within a round that doubles the step; with DiLoCo's (0.7, 0.9) Nesterov the
linearised outer iteration then has spectral radius 1.28 and training diverges (measured:
held-out loss 4.2 vs 1.3 without delay). Starting from anchor - delta_t keeps the worker's
own not-yet-averaged progress; when avg_t arrives it replaces delta_t in the anchor.
"""
from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable

import torch

START_MODES = ("speculative", "anchor+own", "anchor")


@torch.no_grad()
def nesterov_outer_step_(anchor: list[torch.Tensor], momentum: list[torch.Tensor],
                         avg_delta: list[torch.Tensor], lr: float, mu: float) -> None:
    """SGD with Nesterov momentum on the pseudo-gradient (same maths as torch.optim.SGD
    with nesterov=True, dampening=0): m <- mu*m + g; theta <- theta - lr*(g + mu*m)."""
    for theta, m, g in zip(anchor, momentum, avg_delta):
        m.mul_(mu).add_(g)
        theta.sub_(g + mu * m, alpha=lr)


@dataclass
class RoundOutcome:
    exposed_s: float          # time the training thread waited for communication
    applied: Any | None       # the exchange result applied to the anchor this round, if any


class OuterLoop:
    """Owns anchor and outer momentum for one pipeline stage's parameters."""

    def __init__(self, params: list[torch.nn.Parameter], lr: float, momentum: float, delayed: bool,
                 exchange: Callable[[list[torch.Tensor]], "Future[Any]"],
                 average_of: Callable[[Any], list[torch.Tensor]] = lambda r: r,
                 on_result: Callable[[Any], None] = lambda r: None, start: str = "speculative") -> None:
        if start not in START_MODES:
            raise ValueError(f"start must be one of {START_MODES}, got {start!r}")
        self.params = params
        self.start_mode = start
        self.anchor = [p.detach().clone() for p in params]
        self.start = [p.detach().clone() for p in params]
        self.momentum = [torch.zeros_like(p) for p in params]
        self.lr, self.mu, self.delayed = lr, momentum, delayed
        self.exchange, self.average_of, self.on_result = exchange, average_of, on_result
        self.pending: Future[Any] | None = None
        self.outer_steps = 0

    @torch.no_grad()
    def _apply(self, result: Any) -> None:
        nesterov_outer_step_(self.anchor, self.momentum, self.average_of(result), self.lr, self.mu)
        self.outer_steps += 1

    @torch.no_grad()
    def _reset_local(self, own: list[torch.Tensor] | None = None) -> None:
        for p, a in zip(self.params, self.anchor):
            p.copy_(a)
        if own is not None and self.start_mode == "anchor+own":
            for p, d in zip(self.params, own):
                p.sub_(d)
        elif own is not None and self.start_mode == "speculative":
            # the outer step the anchor will take next round if the average equals our own
            # delta; nothing is committed: the anchor and momentum only ever see averages
            for p, m, d in zip(self.params, self.momentum, own):
                p.sub_(d + self.mu * (self.mu * m + d), alpha=self.lr)
        for p, s in zip(self.params, self.start):
            s.copy_(p.detach())

    @staticmethod
    def _wait(fut: "Future[Any]") -> tuple[Any, float]:
        t0 = time.perf_counter()
        res = fut.result()
        return res, time.perf_counter() - t0

    @torch.no_grad()
    def end_round(self) -> RoundOutcome:
        delta = [s - p.detach() for s, p in zip(self.start, self.params)]
        if not self.delayed:
            result, waited = self._wait(self.exchange(delta))
            self.on_result(result)
            self._apply(result)
            self._reset_local()
            return RoundOutcome(waited, result)
        previous, waited = (None, 0.0)
        if self.pending is not None:
            previous, waited = self._wait(self.pending)
            self.on_result(previous)  # before submitting: it may retune the next exchange
        self.pending = self.exchange(delta)
        if previous is not None:
            self._apply(previous)
        self._reset_local(delta)
        return RoundOutcome(waited, previous)

    @torch.no_grad()
    def flush(self) -> RoundOutcome:
        """Apply the pseudo-gradient still in flight (delayed mode's last round)."""
        if self.pending is None:
            return RoundOutcome(0.0, None)
        result, waited = self._wait(self.pending)
        self.pending = None
        self.on_result(result)
        self._apply(result)
        self._reset_local()
        return RoundOutcome(waited, result)
