"""Adapts the rank cap and the number of inner steps H so communication stays hidden.

The exchange of round t has a compute window of H * step_s seconds to hide in (the next
round's inner steps). Inputs are agreed across all replicas (max over ranks) before they
reach this controller, so every worker takes the same decision and H stays in lockstep.

  comm > hidden_fraction * window  -> halve the rank cap; at min_rank, grow H instead
  comm < hidden_fraction * window/4 -> double the rank cap; at max_rank, shrink H toward h_min
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class AdaptiveConfig:
    enabled: bool = True
    h_min: int = 30
    h_max: int = 400
    hidden_fraction: float = 0.8
    min_rank: int = 1
    max_rank: int = 32


class CommController:
    def __init__(self, h: int, cfg: AdaptiveConfig) -> None:
        self.cfg = cfg
        self.h = h
        self.rank_cap = cfg.max_rank

    def update(self, step_s: float, comm_s: float) -> None:
        if not self.cfg.enabled or step_s <= 0:
            return
        budget = self.cfg.hidden_fraction * self.h * step_s
        if comm_s > budget:
            if self.rank_cap > self.cfg.min_rank:
                self.rank_cap = max(self.cfg.min_rank, self.rank_cap // 2)
            else:
                self.h = min(self.cfg.h_max, math.ceil(self.h * comm_s / budget))
        elif comm_s < budget / 4:
            if self.rank_cap < self.cfg.max_rank:
                self.rank_cap = min(self.cfg.max_rank, self.rank_cap * 2)
            elif self.h > self.cfg.h_min:
                self.h = max(self.cfg.h_min, self.h // 2)
