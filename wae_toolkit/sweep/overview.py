"""What ``wae sweep show`` tells: the study's trials by state, its best trials and the
importance of each searched setting (Optuna's :func:`optuna.importance.get_param_importances`,
over the complete trials)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TrialRow", "Overview", "trial_row", "study_overview"]


@dataclass(frozen=True)
class TrialRow:
    """One trial as the command line shows it.

    Attributes:
        number: the trial's number in its study.
        state: ``COMPLETE``, ``PRUNED``, ``FAIL``, ``RUNNING`` or ``WAITING``.
        value: the objective (mean over the seeds) of a complete trial, else None.
        std: the standard deviation of the objective over the seeds (two or more), else None.
        params: the searched settings' values, as Optuna stores them.
        run_dirs: the trial's run folders (one per seed).
        note: why a trial ended as it did (pruned after epoch N, interrupted, an error).
        pid: the process that ran it.
    """

    number: int
    state: str
    value: float | None
    std: float | None
    params: dict[str, Any]
    run_dirs: list[str] = field(default_factory=list)
    note: str = ""
    pid: int | None = None


def trial_row(trial: Any) -> TrialRow:
    """The row of an Optuna ``FrozenTrial``."""
    attrs = trial.user_attrs
    state = trial.state.name
    value = trial.value if state == "COMPLETE" else None
    if "pruned_at_epoch" in attrs:
        note = f"pruned after epoch {attrs['pruned_at_epoch']}"
    elif attrs.get("interrupted"):
        note = "interrupted; not counted, a later session runs another trial"
    elif attrs.get("error"):
        note = str(attrs["error"])
    elif state == "FAIL":
        note = "stopped without finishing (its process ended); not counted"
    else:
        note = ""
    return TrialRow(
        trial.number, state, value, attrs.get("std"), dict(trial.params),
        list(attrs.get("run_dirs", [])), note, attrs.get("pid"),
    )  # fmt: skip


@dataclass(frozen=True)
class Overview:
    """A study at a glance (see :func:`study_overview`)."""

    name: str
    objective: str
    counts: dict[str, int]
    best: list[TrialRow]
    importances: dict[str, float]
    importance_note: str | None


def study_overview(study: Any, top: int = 5) -> Overview:
    """The ``top`` complete trials (lowest objective first), the trials by state, and the
    importance of each setting that took different values among the complete trials (or, in
    ``importance_note``, why none is given)."""
    trials = study.get_trials(deepcopy=False)
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    done = [t for t in trials if t.state.name == "COMPLETE" and t.value is not None]
    done = [t for t in done if math.isfinite(t.value)]
    best = [trial_row(t) for t in sorted(done, key=lambda t: (t.value, t.number))[:top]]
    importances, note = _importances(study, done)
    objective = str(study.user_attrs.get("objective", "the objective"))
    return Overview(study.study_name, objective, counts, best, importances, note)


def _importances(study: Any, done: list[Any]) -> tuple[dict[str, float], str | None]:
    if len(done) < 2:
        return {}, f"importances need at least 2 complete trials; the study has {len(done)}."
    names = sorted({n for t in done for n in t.params})
    varying = [n for n in names if len({repr(t.params.get(n)) for t in done}) > 1]
    if not varying:
        return {}, "importances need settings that differ among the complete trials; none do."
    import optuna

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = optuna.importance.get_param_importances(study, params=varying)
    except Exception as exc:  # Optuna refuses this study's trials (e.g. a conditional space)
        return {}, f"Optuna could not compute importances: {exc}"
    return {k: float(v) for k, v in found.items()}, None
