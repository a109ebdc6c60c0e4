"""A sweep session: prepare it (read the file, open the study), run its workers, say where it
stands; and find a study again for ``wae sweep show``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wae_toolkit.errors import UsageError
from wae_toolkit.sweep.plan import SweepPlan
from wae_toolkit.sweep.study import (
    STUDY_DB,
    SweepInterrupted,
    SweepSettings,
    counted_trials,
    default_storage,
    import_optuna,
    open_storage,
    open_study,
)

__all__ = ["Sweep", "SweepOutcome", "prepare_sweep", "run_sweep", "find_study"]


@dataclass(frozen=True)
class Sweep:
    """A prepared sweep: its plan, how it runs, and the trials that counted when it was opened."""

    plan: SweepPlan
    settings: SweepSettings
    counted: int

    @property
    def name(self) -> str:
        return self.plan.name


@dataclass(frozen=True)
class SweepOutcome:
    """Where a study stands after a session: trials by state, the counted ones and the best."""

    name: str
    storage: str
    folder: Path
    ran: int
    counted: int
    trials: int
    counts: dict[str, int]
    best: Any  # a TrialRow, or None before the first complete trial


def prepare_sweep(
    config_file: str | Path,
    *,
    trials: int | None = None,
    jobs: int = 1,
    storage: str | None = None,
    out: str | Path | None = None,
    prune: bool | None = None,
    optuna_log_level: int | None = None,
) -> Sweep:
    """Read and check the sweep file, create the sweep's folder and open (or create) its study.

    Args:
        config_file: a run configuration file with a ``[sweep]`` table (docs/sweeps.md).
        trials: the study's size (overrides ``[sweep] trials``).
        jobs: worker processes on this machine (each trains with one CPU thread unless the
            file sets ``threads``).
        storage: an Optuna storage URL; default ``sqlite:///FOLDER/study.db``.
        out: the sweep's folder (overrides ``[sweep] out``; default ``runs/sweeps/NAME``).
        prune: prune trials that fall behind (overrides ``[sweep] prune``).
        optuna_log_level: the workers' Optuna log level (``logging.WARNING``...); None keeps
            Optuna's own.

    Raises:
        UsageError: Optuna is not installed; a bad file, option or storage (one sentence).
    """
    from wae_toolkit.runs.safe_io import make_folder
    from wae_toolkit.sweep.plan import read_plan

    optuna = import_optuna()
    if optuna_log_level is not None:
        optuna.logging.set_verbosity(optuna_log_level)
    for key, value in (("trials", trials), ("jobs", jobs)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise UsageError(f"{key} must be a whole number >= 1; got {value!r}.")
    plan = read_plan(config_file)
    folder = Path(out) if out is not None else plan.folder
    make_folder(folder, f"the sweep's folder '{folder}'")
    settings = SweepSettings(
        folder=folder,
        storage=storage or default_storage(folder),
        trials=trials or plan.trials,
        jobs=jobs,
        prune=plan.prune if prune is None else prune,
        threads=1 if jobs > 1 else None,
        optuna_log_level=optuna_log_level,
    )
    study = open_study(plan, open_storage(settings.storage), settings.prune)
    return Sweep(plan, settings, counted_trials(study))


def run_sweep(
    sweep: Sweep | str | Path, *, callback: Any = None, on_trial: Any = None, **options: Any
) -> SweepOutcome:
    """Run a sweep until its study holds ``trials`` counted trials (docs/sweeps.md).

    Args:
        sweep: a :func:`prepare_sweep` result, or a sweep file (then ``options`` are
            :func:`prepare_sweep`'s).
        callback: a :class:`~wae_toolkit.Callback` given to every run (with one job only).
        on_trial: called with a :class:`~wae_toolkit.sweep.overview.TrialRow` as each trial ends.

    Returns:
        where the study stands.

    Raises:
        SweepInterrupted: Ctrl-C or SIGTERM; the interrupted trials are FAIL and not counted,
            and the same call (or command) continues the study.
        UsageError: see :func:`prepare_sweep`; WaeError: a run failed for a reason other than
            its settings diverging.
    """
    from wae_toolkit.engine.faults import TrainingInterrupted
    from wae_toolkit.sweep.overview import study_overview
    from wae_toolkit.sweep.study import work
    from wae_toolkit.sweep.workers import run_workers

    if not isinstance(sweep, Sweep):
        sweep = prepare_sweep(sweep, **options)
    elif options:
        raise UsageError("run_sweep() takes options only with a file, not with a prepared Sweep.")
    plan, settings = sweep.plan, sweep.settings
    if callback is not None and settings.jobs > 1:
        raise UsageError("A callback runs in this process only; give it with jobs=1.")
    try:
        if settings.jobs == 1:
            ran = work(plan, settings, callback=callback, on_trial=on_trial)
        else:
            ran = run_workers(plan, settings, on_trial=on_trial)
    except (TrainingInterrupted, KeyboardInterrupt, SweepInterrupted):
        study = open_study(plan, open_storage(settings.storage), settings.prune)
        raise SweepInterrupted(
            f"Stopped: the interrupted trials are marked FAIL and do not count; the study "
            f"'{plan.name}' holds {counted_trials(study)} of {settings.trials} trials. Run the "
            "same command to continue."
        ) from None
    study = open_study(plan, open_storage(settings.storage), settings.prune)
    view = study_overview(study, top=1)
    return SweepOutcome(
        plan.name, settings.storage, settings.folder, ran, counted_trials(study),
        settings.trials, view.counts, view.best[0] if view.best else None,
    )  # fmt: skip


def find_study(ref: str | Path, storage: str | None = None) -> Any:
    """The Optuna study ``ref`` names: a sweep file (its name and folder), a sweep's folder
    (holding study.db), or a study's name (in ``storage``, else in ``runs/sweeps/NAME``).

    Raises:
        UsageError: no such sweep or study (one sentence, with the studies the storage holds).
    """
    from wae_toolkit.config.configfile import SUFFIXES

    optuna = import_optuna()
    path, name = Path(ref), str(ref)
    if path.suffix.lower() in SUFFIXES and path.is_file():
        from wae_toolkit.sweep.plan import read_plan

        plan = read_plan(path)
        path, name = plan.folder, plan.name
    elif storage is None and not path.is_dir():
        path = Path("runs") / "sweeps" / name
    if storage is None:
        if not (path / STUDY_DB).is_file():
            raise UsageError(
                f"No sweep at '{ref}': give a sweep's folder (it holds {STUDY_DB}), its "
                "configuration file, or a study's name with --storage URL."
            )
        storage = default_storage(path)
    store = open_storage(storage)
    names = optuna.get_all_study_names(store)
    if name not in names:
        if path.is_dir() and len(names) == 1:
            name = names[0]  # a folder's study.db holds one study
        else:
            held = ", ".join(names) if names else "none"
            raise UsageError(f"The storage '{storage}' holds no study '{name}'; it holds: {held}.")
    return optuna.load_study(study_name=name, storage=store)
