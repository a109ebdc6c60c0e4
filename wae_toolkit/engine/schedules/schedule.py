"""What a learning-rate schedule implements, and the base of the per-step ones."""

from __future__ import annotations

import math
from typing import Any

import torch

from wae_toolkit.config.schedules import WARMUP_FRACTIONS

__all__ = ["Schedule", "PerStepSchedule"]


class Schedule:
    """Sets the learning rate of every parameter group of ``optimizer``.

    The loop calls :meth:`epoch_start` before each epoch's first step, which returns the learning
    rate now in force (the loop logs it with the epoch), and :meth:`step_end` after every step.
    A schedule with state of its own sets ``stateful`` and implements ``state_dict`` and
    ``load_state_dict``; it is then saved with every checkpoint.

    Args:
        optimizer: the model's optimizer; ``config.lr`` is the base learning rate.
        config: the run's settings (a :class:`~wae_toolkit.config.settings.RunConfig`).
        steps_per_epoch: optimisation steps per epoch.
    """

    #: True when the rate changes within an epoch (the loop then logs it at every log step).
    per_step = False
    #: True when the schedule has a state to save with checkpoints.
    stateful = False

    def __init__(self, optimizer: torch.optim.Optimizer, config: Any, steps_per_epoch: int):
        self.optimizer, self.config, self.steps_per_epoch = optimizer, config, steps_per_epoch
        self.base_lr = float(config.lr)

    @property
    def lr(self) -> float:
        """The learning rate of the next step."""
        return float(self.optimizer.param_groups[0]["lr"])

    def set(self, lr: float) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def epoch_start(self, epoch: int) -> float:
        """Called before epoch ``epoch`` (0-based) trains; returns the learning rate."""
        return self.lr

    def step_end(self, step: int) -> None:
        """Called after step ``step`` (1-based); per-step schedules override it (it runs in the
        hot loop, so the base does nothing)."""


class PerStepSchedule(Schedule):
    """A rate ``lr * factor(t)`` for the step after ``t`` steps, over the run's
    ``epochs * steps_per_epoch`` steps, applied by :class:`torch.optim.lr_scheduler.LambdaLR`.

    ``warmup`` is ``config.warmup_steps``, or the schedule's fraction of the steps
    (:data:`~wae_toolkit.config.schedules.WARMUP_FRACTIONS`). The factor is read from ``total``
    at each step, so a run continued for more epochs follows the curve laid over its new length
    from the step it stopped at.
    """

    per_step = True
    stateful = True
    name = ""

    def __init__(self, optimizer: torch.optim.Optimizer, config: Any, steps_per_epoch: int):
        super().__init__(optimizer, config, steps_per_epoch)
        self.total = max(1, steps_per_epoch * int(config.epochs))
        given = config.warmup_steps
        default = math.ceil(WARMUP_FRACTIONS[self.name] * self.total)
        self.warmup = min(int(given) if given is not None else default, self.total)
        for group in optimizer.param_groups:  # LambdaLR scales each group's initial_lr
            group["initial_lr"] = self.base_lr
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda t: self.factor(t), last_epoch=-1
        )
        #: The learning rate of the last step taken (the loop logs it).
        self.used = self.lr

    def factor(self, t: int) -> float:
        """The learning rate of the step after ``t`` steps, over ``lr``."""
        raise NotImplementedError

    def step_end(self, step: int) -> None:
        self.used = self.lr  # the rate of the step just taken, which the loop logs
        self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return {"steps": int(self.scheduler.last_epoch), "total": self.total}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue after ``state["steps"]`` steps (on the curve of this run's length)."""
        steps = int(state["steps"])
        self.scheduler.last_epoch = steps
        self.scheduler._last_lr = [self.set(self.base_lr * self.factor(steps))]  # type: ignore[attr-defined]
