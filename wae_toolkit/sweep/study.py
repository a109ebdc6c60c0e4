"""The Optuna study of a sweep: its storage, the trials that count, and one worker's loop.

A study lives in an Optuna RDB storage: by default ``sqlite:///FOLDER/study.db`` beside the
trials' run folders; any URL Optuna takes (PostgreSQL, MySQL) lets processes on several
machines work on one study. The study minimises; ``objective`` is recorded in its user
attributes and a later session must ask for the same.

**Counting.** ``trials = N`` is the size of the study, across workers and sessions: a worker
starts a trial only while fewer than N trials count. COMPLETE, PRUNED and RUNNING trials count,
and FAIL trials whose runs diverged (NaN losses, a non-finite objective). A trial interrupted
(Ctrl-C, SIGTERM) or left behind by a process that died does not count: a later session runs
another in its place. Workers sharing the sweep's folder take a lock on it (``flock``) while
they count and create a trial, so they never start more than N; workers on other machines,
which share only the storage, may start one extra trial each when they start one at the same
moment.

**Dead workers.** Each running trial beats a heartbeat into the storage every
:data:`HEARTBEAT_S` seconds; a trial without one for :data:`GRACE_S` seconds (its process was
killed) is marked FAIL by the next worker that starts a trial.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wae_toolkit.errors import UsageError, WaeError
from wae_toolkit.sweep.plan import SweepPlan

__all__ = [
    "OPTUNA_HINT",
    "STUDY_DB",
    "SweepSettings",
    "SweepInterrupted",
    "import_optuna",
    "default_storage",
    "open_storage",
    "open_study",
    "counted_trials",
    "work",
]

OPTUNA_HINT = "wae sweep needs Optuna: pip install 'wae-toolkit[sweep]'."
#: The study's file in the sweep's folder, with the default storage.
STUDY_DB = "study.db"
#: Seconds between a running trial's heartbeats, and without one before it is marked FAIL.
HEARTBEAT_S, GRACE_S = 10, 60


class SweepInterrupted(WaeError):
    """Ctrl-C or SIGTERM stopped the sweep; the study keeps its trials and continues later."""

    exit_code = 130


@dataclass(frozen=True)
class SweepSettings:
    """How a sweep runs (from the command line or :func:`~wae_toolkit.sweep.run_sweep`)."""

    folder: Path
    storage: str
    trials: int
    jobs: int = 1
    prune: bool = True
    threads: int | None = None
    optuna_log_level: int | None = None


def import_optuna() -> Any:
    """The ``optuna`` module; one sentence naming the extra when it is not installed."""
    try:
        import optuna
    except ImportError:
        raise UsageError(OPTUNA_HINT) from None
    return optuna


def default_storage(folder: Path) -> str:
    """``sqlite:///FOLDER/study.db`` with the folder's absolute path."""
    return f"sqlite:///{(Path(folder) / STUDY_DB).resolve()}"


def open_storage(url: str) -> Any:
    """An Optuna RDB storage at ``url`` with heartbeats; one sentence when it cannot open."""
    optuna = import_optuna()
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S
            )
    except Exception as exc:  # a bad URL, a missing database driver, a server that is down
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(
            f"Cannot open the study storage '{url}': {reason.rstrip('.')}. Give an Optuna "
            "storage URL such as sqlite:///path/study.db or postgresql://user@host/db."
        ) from None


def open_study(plan: SweepPlan, storage: Any, prune: bool) -> Any:
    """The study ``plan.name`` in ``storage``, created when missing; refused when it was made
    for another objective or to maximise."""
    optuna = import_optuna()
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
        if prune
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(
        storage=storage, study_name=plan.name, direction="minimize", load_if_exists=True,
        pruner=pruner,
    )  # fmt: skip
    if study.direction != optuna.study.StudyDirection.MINIMIZE:
        raise UsageError(f"The study '{plan.name}' maximises; a sweep minimises its objective.")
    recorded = study.user_attrs.get("objective")
    if recorded is None:
        study.set_user_attr("objective", plan.objective)
    elif recorded != plan.objective:
        raise UsageError(
            f"The study '{plan.name}' minimises {recorded}, and {plan.file} asks for "
            f"{plan.objective}; give the sweep another name, or the objective {recorded}."
        )
    return study


def counted_trials(study: Any) -> int:
    """The trials that count towards ``trials`` (see the module's docstring)."""
    n = 0
    for t in study.get_trials(deepcopy=False):
        state = t.state.name
        if state in ("COMPLETE", "PRUNED", "RUNNING") or (
            state == "FAIL" and t.user_attrs.get("counted")
        ):
            n += 1
    return n


def fail_stale(study: Any) -> None:
    """Mark FAIL the running trials whose process stopped beating (see the docstring)."""
    optuna = import_optuna()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


class FolderLock:
    """A blocking exclusive ``flock`` on a folder (nothing where ``fcntl`` does not exist)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return
        fd = os.open(self.folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the last descriptor releases the lock


def work(
    plan: SweepPlan,
    settings: SweepSettings,
    callback: Any = None,
    on_trial: Any = None,
    ready: Any = None,
) -> int:
    """Run trials of the study until ``settings.trials`` count; returns how many this worker
    ran. ``on_trial`` receives a :class:`~wae_toolkit.sweep.overview.TrialRow` after each;
    ``ready`` is called once the study is open, before the first trial (workers wait there for
    each other, so that they start together).

    Raises:
        TrainingInterrupted, KeyboardInterrupt: Ctrl-C or SIGTERM (the trial is FAIL).
        WaeError: a trial's run failed for a reason its settings do not explain (its data,
            its folder...); a run that diverges only fails its trial.
    """
    optuna = import_optuna()
    from wae_toolkit.engine.faults import NonFiniteError
    from wae_toolkit.sweep.objective import TrialObjective
    from wae_toolkit.sweep.overview import trial_row

    if settings.optuna_log_level is not None:
        optuna.logging.set_verbosity(settings.optuna_log_level)
    study = open_study(plan, open_storage(settings.storage), settings.prune)
    lock = FolderLock(settings.folder)
    objective = TrialObjective(plan, settings.folder, settings.threads, callback, lock.release)
    told = [lambda _study, t: on_trial(trial_row(t))] if on_trial is not None else None
    if ready is not None:
        ready()
    ran = 0
    while True:
        lock.acquire()
        try:
            fail_stale(study)
            if counted_trials(study) >= settings.trials:
                return ran
            study.optimize(objective, n_trials=1, catch=(NonFiniteError,), callbacks=told)
            ran += 1
        finally:
            lock.release()
