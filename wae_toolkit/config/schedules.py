"""The learning-rate schedules a run may name (``schedule``): a table of name -> class.

The settings check the name here (without importing torch); the loop builds the schedule
(:func:`wae_toolkit.engine.schedules.make_schedule`). Adding one is one module in
``wae_toolkit/engine/schedules/`` plus one line here.
"""

from __future__ import annotations

__all__ = ["SCHEDULES", "DEFAULT_SCHEDULE", "WARMUP_FRACTIONS", "paper_factors", "factor_at"]

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


def paper_factors(epochs: int) -> list[tuple[int, float]]:
    """The paper's MNIST schedule in proportion to ``epochs``: ``lr / 2`` from 30% of the epochs
    and ``lr / 10`` from 50% (for 100 epochs exactly ``[(30, 0.5), (50, 0.1)]``)."""
    return [(round(0.3 * epochs), 0.5), (round(0.5 * epochs), 0.1)]


def factor_at(factors: list[tuple[int, float]], epoch: int) -> float:
    """The learning-rate factor in force at ``epoch`` (0-based) under ``[(epoch, factor), ...]``."""
    factor = 1.0
    for start, f in sorted(factors):
        if epoch >= start:
            factor = f
    return factor
