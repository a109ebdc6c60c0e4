"""The learning-rate schedules a run may name (``schedule``): a table of name -> class.

The settings check the name here (without importing torch); the loop builds the schedule
(:func:`wae_toolkit.engine.schedules.make_schedule`). Adding one is one module in
``wae_toolkit/engine/schedules/`` plus one line here.
"""

from __future__ import annotations

__all__ = ["SCHEDULES", "DEFAULT_SCHEDULE", "WARMUP_FRACTIONS"]

#: ``schedule`` name -> ``"module:Class"`` of the schedule (imported when used).
SCHEDULES: dict[str, str] = {
    "steps": "wae_toolkit.engine.schedules.steps:StepFactors",
    "cosine": "wae_toolkit.engine.schedules.cosine:WarmupCosine",
    "onecycle": "wae_toolkit.engine.schedules.onecycle:OneCycle",
}
#: The paper's: the learning rate times a factor from given epochs on (``lr_schedule``).
DEFAULT_SCHEDULE = "steps"
#: The schedules with a warm-up, and its length as a fraction of the steps by default.
WARMUP_FRACTIONS: dict[str, float] = {"cosine": 0.05, "onecycle": 0.3}
