"""``wae sweep``: hyper-parameter search with Optuna (``pip install 'wae-toolkit[sweep]'``).

A sweep is a run configuration file with a ``[sweep]`` table naming the settings to search
(:mod:`~wae_toolkit.sweep.plan`, :mod:`~wae_toolkit.sweep.space`). Each trial trains ordinary
run folders (:mod:`~wae_toolkit.sweep.objective`); the Optuna study lives in a storage beside
them, which several workers share (:mod:`~wae_toolkit.sweep.study`,
:mod:`~wae_toolkit.sweep.workers`); :mod:`~wae_toolkit.sweep.overview` tells the best trials and
the importance of each setting. In Python::

    from wae_toolkit.sweep import run_sweep
    outcome = run_sweep("ring-sweep.toml", trials=20, jobs=2)
    print(outcome.best.value, outcome.best.run_dirs)

Importing this package does not import Optuna (nor torch); the functions do, and without
Optuna they raise one sentence naming the extra to install.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wae_toolkit._lazy import lazy_getattr

if TYPE_CHECKING:
    from wae_toolkit.sweep.overview import Overview, TrialRow, study_overview
    from wae_toolkit.sweep.plan import OBJECTIVES, SweepPlan, read_plan
    from wae_toolkit.sweep.session import (
        Sweep,
        SweepOutcome,
        find_study,
        prepare_sweep,
        run_sweep,
    )
    from wae_toolkit.sweep.study import OPTUNA_HINT, SweepInterrupted

__all__ = [
    "OBJECTIVES",
    "OPTUNA_HINT",
    "Overview",
    "Sweep",
    "SweepInterrupted",
    "SweepOutcome",
    "SweepPlan",
    "TrialRow",
    "find_study",
    "prepare_sweep",
    "read_plan",
    "run_sweep",
    "study_overview",
]

__getattr__ = lazy_getattr(
    "wae_toolkit.sweep",
    {
        "OBJECTIVES": "plan",
        "OPTUNA_HINT": "study",
        "Overview": "overview",
        "Sweep": "session",
        "SweepInterrupted": "study",
        "SweepOutcome": "session",
        "SweepPlan": "plan",
        "TrialRow": "overview",
        "find_study": "session",
        "prepare_sweep": "session",
        "read_plan": "plan",
        "run_sweep": "session",
        "study_overview": "overview",
    },
)
