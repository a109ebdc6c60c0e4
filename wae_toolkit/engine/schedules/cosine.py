"""Cosine decay to 0 after a linear warm-up, per step."""

from __future__ import annotations

import math

from wae_toolkit.engine.schedules.schedule import PerStepSchedule

__all__ = ["WarmupCosine"]


class WarmupCosine(PerStepSchedule):
    """For the step after ``t`` of ``T`` steps with ``W`` warm-up steps: ``lr * (t + 1) / W``
    while ``t < W`` (step ``W`` reaches ``lr``), then ``lr * (1 + cos(pi (t - W) / (T - W))) / 2``,
    which falls to 0 at the end."""

    name = "cosine"

    def factor(self, t: int) -> float:
        if t < self.warmup:
            return (t + 1) / self.warmup
        progress = min(1.0, (t - self.warmup) / max(1, self.total - self.warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))
