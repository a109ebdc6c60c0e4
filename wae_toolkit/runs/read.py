"""Reading run folders back: the one reader of the CLI, the report, export and the Python API.

:func:`read_run` gives a :class:`RunFolder`, which reads each file of the folder at most once,
when it is first asked for, and never raises on a damaged file: a file that cannot be read, or
is not what it should be, reads as missing and :attr:`RunFolder.notes` says so. Only
:attr:`RunFolder.record`, the ``config.json`` without which a folder is not a run, refuses with
one sentence (:class:`~wae_toolkit.errors.UsageError`).

The readers of one file under it (:mod:`wae_toolkit.runs.files`: :func:`read_json_file`,
:func:`read_json_object`, :func:`read_metrics_file`...) never raise either, and are importable
from here. Nothing is unpickled: run files are JSON, PNG and safetensors.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any, TypeGuard

from wae_toolkit.config.checks import is_finite_number
from wae_toolkit.data.rules import RANGE_RULE, SHAPE_RULE, shape_ok, value_range_ok
from wae_toolkit.errors import UsageError
from wae_toolkit.runs.files import (
    RunFileWarning,
    as_object,
    file_problem,
    read_json,
    read_json_file,
    read_json_object,
    read_metrics,
    read_metrics_file,
    read_png,
    weights_hash,
)
from wae_toolkit.runs.names import CONFIG, EVAL_FILE, METRICS, SUMMARY, TRACKING_FILE, WEIGHTS

__all__ = [
    "RunFolder",
    "read_run",
    "check_run_folder",
    "read_run_config",
    # the readers of one file it is made of (wae_toolkit.runs.files)
    "read_json_file",
    "read_json_object",
    "read_metrics_file",
    "read_metrics",
    "file_problem",
    "weights_hash",
    "RunFileWarning",
]


def _finite(value: Any) -> TypeGuard[int | float]:
    return is_finite_number(value)


def _not_a_run(path: Path) -> UsageError:
    return UsageError(f"'{path}' is not a run folder: it has no {CONFIG}.")


def check_run_folder(path: str | Path) -> None:
    """Raise :class:`UsageError` unless ``path`` is a folder holding a ``config.json``."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"'{path}' does not exist; give a run folder written by 'wae run'.")
    if not path.is_dir():
        raise UsageError(f"'{path}' is a file; give a run folder written by 'wae run'.")
    if not (path / CONFIG).is_file():
        raise _not_a_run(path)


class _BadRecord(ValueError):
    """One sentence saying what is wrong with a run's config.json."""


def _check_record(record: Any) -> None:
    """Check that ``record`` has the sections that loading a run needs.

    Raises:
        _BadRecord: what is wrong, in words.
    """
    if not isinstance(record, dict):
        raise _BadRecord("it is not a JSON object")
    for section in ("run", "data"):
        if not isinstance(record.get(section), dict):
            raise _BadRecord(f"its '{section}' section is missing or not an object")
    plugins = record.get("plugins", {})
    if not isinstance(plugins, dict) or not all(isinstance(v, dict) for v in plugins.values()):
        raise _BadRecord("its 'plugins' section must map each kind to an object")
    if not shape_ok(record["data"].get("sample_shape")):
        raise _BadRecord(f"its data.sample_shape must be {SHAPE_RULE}")
    if not value_range_ok(record["data"].get("value_range")):
        raise _BadRecord(f"its data.value_range must be {RANGE_RULE}")


class RunFolder:
    """A run folder read back (see :func:`read_run`): each file is read when first asked for,
    and at most once."""

    def __init__(
        self,
        path: str | Path,
        label: str | None = None,
        latest_checkpoint: Callable[[Path], Path | None] | None = None,
    ) -> None:
        self.path = Path(path)
        #: A short name of the run (its folder's name unless given).
        self.label = (self.path.name or str(self.path)) if label is None else label
        self._latest_checkpoint = latest_checkpoint
        self._figures: dict[str, tuple[bytes | None, str | None]] = {}

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # -- config.json ---------------------------------------------------------------------------

    @cached_property
    def _config(self) -> tuple[Any, str | None, str]:
        return read_json(self.path / CONFIG)

    @property
    def config(self) -> dict[str, Any] | None:
        """``config.json`` as it is: any JSON object, ``None`` when absent or damaged."""
        return as_object(*self._config)[0]

    @property
    def config_problem(self) -> str | None:
        """Why ``config.json`` could not be read (as :func:`read_json_object` says)."""
        return as_object(*self._config)[1]

    @cached_property
    def record(self) -> dict[str, Any]:
        """``config.json``, checked to have the sections that loading the run needs.

        Raises:
            UsageError: no such file, not JSON, or a section of the wrong shape; one sentence.
        """
        cfg_path = self.path / CONFIG
        value, why, how = self._config
        if how == "absent":
            raise _not_a_run(self.path)
        if how == "unreadable":
            raise UsageError(
                f"Cannot read '{cfg_path}' ({why}); give a run folder written by wae run."
            )
        try:
            if how == "invalid":  # not UTF-8, not JSON, nested too deeply
                raise _BadRecord("it is not a JSON file written by wae run")
            _check_record(value)
        except _BadRecord as exc:
            raise UsageError(f"'{cfg_path}' is not a valid run configuration: {exc}.") from None
        return value  # type: ignore[no-any-return]

    @property
    def settings(self) -> dict[str, Any]:
        """The ``run`` section of :attr:`record`: the settings ``wae run`` took."""
        return self.record["run"]  # type: ignore[no-any-return]

    # -- the other files: never raise ----------------------------------------------------------

    @cached_property
    def _summary(self) -> tuple[dict[str, Any] | None, str | None]:
        return read_json_object(self.path / SUMMARY)

    @property
    def summary(self) -> dict[str, Any] | None:
        """``summary.json``; ``None`` when the run did not finish or the file is damaged."""
        return self._summary[0]

    @property
    def summary_problem(self) -> str | None:
        """Why ``summary.json`` could not be read (as :func:`read_json_object` says)."""
        return self._summary[1]

    @cached_property
    def _metrics(self) -> tuple[list[dict[str, Any]], int, str | None, bool]:
        file = self.path / METRICS
        return (*read_metrics_file(file), os.path.lexists(file))

    @property
    def records(self) -> list[dict[str, Any]]:
        """The records of ``metrics.jsonl`` (its lines that are JSON objects)."""
        return self._metrics[0]

    @cached_property
    def tracking(self) -> dict[str, Any]:
        """``tracking.json`` (where ``--track`` logged the run); empty when absent or damaged."""
        return read_json_object(self.path / TRACKING_FILE)[0] or {}

    @property
    def weights(self) -> Path:
        """The path of the run's ``model.safetensors`` (written when the run finishes)."""
        return self.path / WEIGHTS

    @cached_property
    def weights_sha256(self) -> str | None:
        """SHA-256 of :attr:`weights`; ``None`` when they cannot be read."""
        try:
            return weights_hash(self.path)
        except OSError:
            return None

    @cached_property
    def _evaluation(self) -> tuple[dict[str, Any] | None, str | None]:
        record, why = read_json_object(self.path / EVAL_FILE)
        if why is not None:
            return None, f"{file_problem(EVAL_FILE, why)}; it is left out"
        if record is None:
            return None, None
        if not isinstance(record.get("metrics"), dict):
            return None, f"{EVAL_FILE} is not an evaluation record; it is left out"
        current = self.weights_sha256
        if current is None or record.get("weights_sha256") != current:
            return None, (
                f"{EVAL_FILE} was computed on other weights than the run's {WEIGHTS}; it is "
                "left out (run 'wae eval' again)"
            )
        return record, None

    @property
    def evaluation(self) -> dict[str, Any] | None:
        """``eval.json`` when it was computed on the run's current weights, else ``None``."""
        return self._evaluation[0]

    def figure(self, name: str) -> tuple[bytes | None, str | None]:
        """The bytes of the PNG figure ``name``, or ``None`` and why (``None`` when absent)."""
        if name not in self._figures:
            self._figures[name] = read_png(self.path / name)
        return self._figures[name]

    @property
    def notes(self) -> list[str]:
        """What was left out of the files other than ``config.json``, and why: a few words
        each, without a final period."""
        notes = []
        if self.summary_problem is not None:
            notes.append(f"{file_problem(SUMMARY, self.summary_problem)}; it is left out")
        _, bad, why, exists = self._metrics
        if not exists:
            notes.append(f"{METRICS} is missing: no per-epoch table and no loss curves")
        if why:
            notes.append(f"{METRICS} could not be read ({why})")
        if bad:
            notes.append(f"{bad} line(s) of {METRICS} are not JSON records and were skipped")
        if self._evaluation[1] is not None:
            notes.append(self._evaluation[1])
        return notes

    # -- where the run is ----------------------------------------------------------------------

    @cached_property
    def checkpoint(self) -> Path | None:
        """The newest valid checkpoint (found by the ``latest_checkpoint`` given to
        :func:`read_run`); ``None`` when there is none, or when none was given."""
        find = self._latest_checkpoint
        return None if find is None else find(self.path)

    @cached_property
    def _state(self) -> tuple[str, bool, int | None]:
        """The status of the run, whether it finished, and the step it reached: a finished run
        has a readable ``summary.json``; one that stopped has a checkpoint; the last step
        logged in ``metrics.jsonl`` says where any other one got to."""
        if self.summary is not None:
            steps = self.summary.get("steps")
            return "finished", True, int(steps) if _finite(steps) else None
        if self.checkpoint is not None:
            step = int(self.checkpoint.stem.split("-")[1])
            return f"stopped at step {step}", False, step
        logged = [r["step"] for r in self.records if _finite(r.get("step"))]
        status = "not finished" + ", no checkpoint" * (self._latest_checkpoint is not None)
        return status, False, int(max(logged)) if logged else None

    @property
    def status(self) -> str:
        """``"finished"``, ``"stopped at step N"`` or ``"not finished, no checkpoint"`` (``"not
        finished"`` when :func:`read_run` was given no ``latest_checkpoint`` to look with)."""
        return self._state[0]

    @property
    def finished(self) -> bool:
        return self._state[1]

    @property
    def step(self) -> int | None:
        """The step the run reached, when known."""
        return self._state[2]

    @property
    def last_eval(self) -> dict[str, Any] | None:
        """The last held-out evaluation logged in ``metrics.jsonl``."""
        evals = [r for r in self.records if r.get("kind") == "eval"]
        return evals[-1] if evals else None

    def final(self) -> tuple[dict[str, Any], str | None]:
        """The final metrics and, for a run without summary.json, where they come from."""
        if self.summary is not None:
            return self.summary, None
        last = self.last_eval
        if last is None:
            return {}, "no evaluation was logged before the run stopped"
        return last, (
            f"the last held-out evaluation in {METRICS} (after {last.get('epoch', '?')} "
            f"epochs, step {last.get('step', '?')}); the run did not finish"
        )

    def total_steps(self) -> int | None:
        """Steps of the whole run, from the first epoch's record."""
        epochs = self.settings.get("epochs")
        first = next((r for r in self.records if r.get("kind") == "epoch"), None)
        if first is None:
            return None
        step, epoch = first.get("step"), first.get("epoch")
        if not (_finite(step) and _finite(epoch) and _finite(epochs)) or epoch < 0:
            return None
        total = step / (int(epoch) + 1) * epochs
        return int(round(total)) if total and math.isfinite(total) else None


def read_run(
    path: str | Path,
    label: str | None = None,
    *,
    latest_checkpoint: Callable[[Path], Path | None] | None = None,
) -> RunFolder:
    """The run folder at ``path``, read lazily; never raises (see :class:`RunFolder`).

    Args:
        path: the run folder.
        label: a short name of the run; its folder's name by default.
        latest_checkpoint: finds a folder's newest valid checkpoint
            (:func:`wae_toolkit.engine.checkpoint.latest_checkpoint`): the status of a run that
            did not finish needs it; without it, checkpoints are not looked at.
    """
    return RunFolder(path, label, latest_checkpoint)


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The ``run`` section of a run folder's ``config.json`` (the settings ``wae run`` took).

    Raises:
        UsageError: no such folder or file, or a file that is not a run configuration.
    """
    return read_run(run_dir).settings
