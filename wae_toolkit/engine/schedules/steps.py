"""The paper's schedule: the base learning rate times a factor from given epochs on."""

from __future__ import annotations

from wae_toolkit.engine.schedules.schedule import Schedule

__all__ = ["StepFactors"]


class StepFactors(Schedule):
    """``lr * factor`` from each ``(epoch, factor)`` of ``config.lr_schedule`` on (by default
    x0.5 at 30% of the epochs and x0.1 at 50%, as in the paper); constant within an epoch. With
    no ``lr_schedule`` the factors follow ``epochs``: a run continued for more epochs moves them
    to 30% and 50% of its new length."""

    def epoch_start(self, epoch: int) -> float:
        return self.set(self.base_lr * self.config.lr_factor(epoch))
