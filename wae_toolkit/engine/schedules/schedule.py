"""What a learning-rate schedule implements."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["Schedule"]


class Schedule:
    """Sets the learning rate of every parameter group of ``optimizer``.

    The loop calls :meth:`epoch_start` before each epoch's first step, which returns the learning
    rate now in force (the loop logs it with the epoch), and :meth:`step_end` after every step.

    Args:
        optimizer: the model's optimizer; ``config.lr`` is the base learning rate.
        config: the run's settings (a :class:`~wae_toolkit.config.settings.RunConfig`).
        steps_per_epoch: optimisation steps per epoch.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, config: Any, steps_per_epoch: int):
        self.optimizer, self.config, self.steps_per_epoch = optimizer, config, steps_per_epoch
        self.base_lr = float(config.lr)

    def set(self, lr: float) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def epoch_start(self, epoch: int) -> float:
        """Called before epoch ``epoch`` (0-based) trains; returns the learning rate."""
        return float(self.optimizer.param_groups[0]["lr"])

    def step_end(self, step: int) -> None:
        """Called after step ``step`` (1-based); per-step schedules override it (it runs in the
        hot loop, so the base does nothing)."""
