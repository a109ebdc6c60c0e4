"""The one-cycle policy (Smith and Topin), per step, as torch's ``OneCycleLR`` lays it out."""

from __future__ import annotations

import math

from wae_toolkit.engine.schedules.schedule import PerStepSchedule

__all__ = ["OneCycle"]

#: The first rate is ``lr / DIV``; the last ``lr / (DIV * FINAL_DIV)`` (torch's defaults).
DIV, FINAL_DIV = 25.0, 1e4


def _cos(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


class OneCycle(PerStepSchedule):
    """The rates of :class:`torch.optim.lr_scheduler.OneCycleLR` with ``max_lr=lr``,
    ``pct_start = W / T`` (``W`` warm-up steps of ``T``), cosine annealing and
    ``cycle_momentum=False`` (the optimizer's betas are the run's): from ``lr / 25`` up to ``lr``
    over the warm-up, then down to ``lr / 250000`` at the last step. Computed here, from the step,
    so that a run continued for more epochs can lay the cycle over its new length."""

    name = "onecycle"

    def factor(self, t: int) -> float:
        up_end = float(self.warmup) - 1  # OneCycleLR: pct_start * total_steps - 1
        down_end = float(self.total) - 1
        start, peak, low = 1.0 / DIV, 1.0, 1.0 / (DIV * FINAL_DIV)
        if t <= up_end:
            return _cos(start, peak, t / up_end) if up_end > 0 else peak
        span = down_end - up_end
        return _cos(peak, low, min(1.0, (t - up_end) / span)) if span > 0 else low
