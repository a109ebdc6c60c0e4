"""Experiment tracking: what every tracker shares (``wae run --track NAME``).

``wae run --track mlflow --track wandb`` (``RunConfig.track``) adds the trackers of
:data:`wae_toolkit.config.trackers.TRACKERS` to the training loop's callbacks, in the process that
writes the run folder only (rank 0 of a multi-process run). They log what the run folder
records, as it is written:

* every record of ``metrics.jsonl`` as scalars named ``KIND/KEY`` at the record's step:
  ``train/loss`` (the step records), ``epoch/loss`` and ``epoch/lr`` (epoch means),
  ``eval/test_mmd`` (held-out evaluations, the one at step 0 included) and ``pretrain/loss``;
  the trackers read the new lines of the file at each callback, so what they hold equals the
  file;
* the numbers of ``summary.json`` as ``final/KEY`` at the last step;
* the resolved configuration (plugin options with their defaults, and the data set) as
  parameters; the figures as images or artifacts.

A resumed run (``wae run --resume``) continues the same tracked run (MLflow's and W&B's ids are
kept in the run folder's ``tracking.json``; TensorBoard writes to the same folder); a point a
tracker already holds (a tag at a step) is never logged twice, and points lost with a killed
process are logged again from ``metrics.jsonl``.

The trackers' packages are optional (``pip install 'wae-toolkit[mlflow]'``, ``[tensorboard]``,
``[wandb]``, or ``[track]`` for all three). They are imported only when a run
starts, and :meth:`wae_toolkit.RunConfig.validate` names a missing one before anything is
trained.

A tracker subclasses :class:`_Tracker` and says how to open, log to, finish and close its
backend; this module reads the run folder for it.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeGuard

from wae_toolkit.engine.callbacks import Callback, CallbackList, RunResult
from wae_toolkit.errors import UsageError
from wae_toolkit.runs.folder import CONFIG, METRICS, TENSORBOARD_DIR, TRACKING_FILE, write_json
from wae_toolkit.runs.read import read_json_object
from wae_toolkit.trackers import DEFAULT_EXPERIMENT, make_trackers, with_trackers

__all__ = [
    "Callback",
    "CallbackList",
    "make_trackers",
    "with_trackers",
    "run_parameters",
    "read_tracking",
    "save_tracking",
    "TRACKING_FILE",
    "TENSORBOARD_DIR",
    "PREFIXES",
]

#: ``metrics.jsonl`` record kind -> the prefix of its metrics' names.
PREFIXES = {"step": "train", "epoch": "epoch", "eval": "eval", "pretrain": "pretrain"}
#: Settings that describe where the run goes, not the experiment: no parameters.
_NOT_PARAMS = ("out", "overwrite", "track", "tracking_uri", "experiment")
_RECORD_KEYS = ("kind", "epoch", "step")

#: Names that moved to the module of their tracker; still importable from here.
_MOVED = {
    "MLflowTracker": "mlflow",
    "mlflow_store": "mlflow",
    "MODEL_ARTIFACT": "mlflow",
    "TensorBoardTracker": "tensorboard",
    "tensorboard_steps": "tensorboard",
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return getattr(importlib.import_module(f"wae_toolkit.trackers.{_MOVED[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _NewRecords:
    """The records appended to ``metrics.jsonl`` since the last call (complete lines only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        return [json.loads(line) for line in data[:end].splitlines() if line.strip()]


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _points(records: list[dict[str, Any]]) -> Iterable[tuple[str, float, int]]:
    """``(tag, value, step)`` for every number of the records."""
    for rec in records:
        kind = str(rec.get("kind"))
        step = rec.get("step")
        if not _is_number(step):
            continue
        prefix = PREFIXES.get(kind, kind)
        for key, value in rec.items():
            if key not in _RECORD_KEYS and _is_number(value):
                yield f"{prefix}/{key}", float(value), int(step)


def final_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The numbers of ``summary.json`` as ``final/KEY``."""
    return {f"final/{k}": float(v) for k, v in summary.items() if _is_number(v)}


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat |= _flatten(value, f"{name}.")
        else:
            flat[name] = value
    return flat


def run_parameters(record: dict[str, Any]) -> dict[str, Any]:
    """The parameters of a run from its ``config.json`` record: every setting of its ``run``
    section (plugin options flattened as ``penalty_opts.hidden``, their defaults included)
    except where the run goes, and the data set's name, shape and sizes as ``dataset.*``."""
    run = {k: v for k, v in record.get("run", {}).items() if k not in _NOT_PARAMS}
    data = record.get("data", {})
    dataset = {k: data[k] for k in ("name", "sample_shape", "train_size", "test_size") if k in data}
    return _flatten(run) | _flatten(dataset, "dataset.")


def as_text(value: Any) -> str:
    """A parameter's value as text: strings as they are, lists and mappings as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple | dict):
        return json.dumps(value)
    return str(value)


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (its type's name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_tracking(run_dir: Path) -> dict[str, Any]:
    """The run folder's ``tracking.json``: tracker name -> what it saved (none: ``{}``), read by
    the run-folder reader; a damaged one is refused (a resumed run must not start a new run in
    the tracker unnoticed)."""
    path = run_dir / TRACKING_FILE
    if not path.exists():
        return {}
    data, why = read_json_object(path)
    if data is None:
        raise UsageError(f"'{path}' cannot be read ({why}); delete it to track the run anew.")
    return data


def save_tracking(run_dir: Path, name: str, entry: dict[str, Any]) -> None:
    """Keep ``entry`` as tracker ``name``'s part of ``tracking.json`` (the others' stay)."""
    write_json(run_dir / TRACKING_FILE, read_tracking(run_dir) | {name: entry})


class _Tracker(Callback):
    """Logs the run folder's records to a backend; subclasses say how.

    :func:`wae_toolkit.trackers.make_trackers` makes a tracker as
    ``Tracker(tracking_uri=..., experiment=...)`` (the run's settings), then calls
    :meth:`check` before the run folder is written. When the run starts, :meth:`_open` gets the
    run folder and its ``config.json``; :meth:`_log` then gets ``(tag, value, step)`` points no
    tag of which the backend holds at that step yet (``self._held``: tag -> its last step, which
    :meth:`_open` fills in for a resumed run); :meth:`_finish` ends a finished run (the final
    metrics: :func:`final_metrics`), :meth:`_close` one that stopped on an error.
    """

    name = ""
    main_process_only = True

    def __init__(
        self, tracking_uri: str | None = None, experiment: str = DEFAULT_EXPERIMENT
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self._records: _NewRecords | None = None
        self._held: dict[str, int] = {}  # tag -> the last step the backend holds

    # -- what a backend does
    def check(self) -> None:
        """Raise a :class:`~wae_toolkit.errors.WaeError` now if logging cannot work."""

    def _open(self, run_dir: Path, record: dict[str, Any], resumed: bool) -> None:
        raise NotImplementedError

    def _log(self, points: list[tuple[str, float, int]]) -> None:
        raise NotImplementedError

    def _finish(self, result: RunResult) -> None:
        raise NotImplementedError

    def _close(self, error: BaseException) -> None:
        raise NotImplementedError

    # -- the callbacks
    def on_start(self, info: dict[str, Any]) -> None:
        run_dir = Path(info["run_dir"])
        record = read_json_object(run_dir / CONFIG)[0] or {}  # the run wrote it just now
        with self._writing():
            self._open(run_dir, record, resumed=info.get("resumed_from_step") is not None)
        self._records = _NewRecords(run_dir / METRICS)
        self._sync()  # a resumed run: whatever the backend lost with a killed process

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """A failed write of the backend (a full disk...) as one sentence, not a traceback."""
        try:
            yield
        except OSError as exc:
            from wae_toolkit.runs.safe_io import RunWriteError

            raise RunWriteError(
                f"{self.name} could not write the run's records: {exc.strerror or exc}."
            ) from exc

    def on_log(self, step: int, epoch: int, logs: dict[str, float]) -> None:
        self._sync()

    def on_epoch_end(self, epoch: int, step: int, logs: dict[str, float]) -> None:
        self._sync()

    def on_end(self, result: RunResult) -> None:
        if self._records is None:
            return
        self._sync()
        self._finish(result)
        self._records = None

    def on_error(self, error: BaseException) -> None:
        if self._records is None:
            return
        try:
            self._sync()  # what the run folder got before the error
        except Exception as exc:
            warnings.warn(f"{self.name}: {exc}", RuntimeWarning, stacklevel=2)
        finally:
            self._records = None
            self._close(error)

    def _sync(self) -> None:
        if self._records is None:
            return
        points = []
        for tag, value, step in _points(self._records.read()):
            if step <= self._held.get(tag, -1):
                continue  # already held: logged before a resume
            self._held[tag] = step
            points.append((tag, value, step))
        if points:
            with self._writing():
                self._log(points)
