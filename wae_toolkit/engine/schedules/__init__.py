"""Learning-rate schedules, as a table of name -> class.

A schedule is told where the loop is and sets the learning rate of the optimizer's groups
(:class:`~wae_toolkit.engine.schedules.schedule.Schedule`). Adding one is one new module in this
folder plus one line in :data:`SCHEDULES`; nothing else changes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from wae_toolkit.errors import UsageError, did_you_mean

if TYPE_CHECKING:
    from wae_toolkit.engine.schedules.schedule import Schedule

__all__ = ["SCHEDULES", "DEFAULT_SCHEDULE", "make_schedule"]

#: name -> ``"module:Class"`` of the schedule (imported when used).
SCHEDULES: dict[str, str] = {
    "steps": "wae_toolkit.engine.schedules.steps:StepFactors",
}
#: The paper's: the learning rate times a factor from given epochs on.
DEFAULT_SCHEDULE = "steps"


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
