"""Learning-rate schedules, built by name from the table in :mod:`wae_toolkit.config.schedules`.

A schedule is told where the loop is and sets the learning rate of the optimizer's groups
(:class:`~wae_toolkit.engine.schedules.schedule.Schedule`). ``steps`` is the paper's (factors from
given epochs); ``cosine`` and ``onecycle`` change the rate after every step through
:class:`torch.optim.lr_scheduler.LambdaLR` and are saved with the checkpoints. Adding one is one
new module in this folder plus one line in the table.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from wae_toolkit.config.schedules import DEFAULT_SCHEDULE, SCHEDULES
from wae_toolkit.errors import UsageError, did_you_mean

if TYPE_CHECKING:
    from wae_toolkit.engine.schedules.schedule import Schedule

__all__ = ["SCHEDULES", "DEFAULT_SCHEDULE", "make_schedule"]


def make_schedule(name: str, optimizer: Any, config: Any, steps_per_epoch: int) -> Schedule:
    """The schedule ``name`` for ``optimizer``, set up from the run's settings."""
    if name not in SCHEDULES:
        raise UsageError(
            f"Unknown learning-rate schedule '{name}'.{did_you_mean(name, SCHEDULES)} "
            f"Schedules: {', '.join(SCHEDULES)}."
        )
    module, _, cls = SCHEDULES[name].partition(":")
    schedule: Schedule = getattr(importlib.import_module(module), cls)(
        optimizer, config, steps_per_epoch
    )
    return schedule
