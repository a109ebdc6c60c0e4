"""Experiment tracking: log a run to MLflow and/or TensorBoard while it trains.

``wae run --track mlflow --track tensorboard`` (``RunConfig.track``) adds the trackers below to
the training loop's callbacks, in the process that writes the run folder only (rank 0 of a
multi-process run). They log what the run folder records, as it is written:

* every record of ``metrics.jsonl`` as scalars named ``KIND/KEY`` at the record's step:
  ``train/loss`` (the step records), ``epoch/loss`` and ``epoch/lr`` (epoch means),
  ``eval/test_mmd`` (held-out evaluations, the one at step 0 included) and ``pretrain/loss``;
  the trackers read the new lines of the file at each callback, so what they hold equals the
  file;
* the numbers of ``summary.json`` as ``final/KEY`` at the last step;
* the resolved configuration (plugin options with their defaults, and the data set) as
  parameters; the figures as images or artifacts.

A resumed run (``wae run --resume``) continues the same MLflow run (its id is kept in the run
folder's ``tracking.json``) and the same TensorBoard folder; a point a tracker already holds (a
tag at a step) is never logged twice, and points lost with a killed process are logged again
from ``metrics.jsonl``.

MLflow and TensorBoard are optional: ``pip install 'wae-toolkit[mlflow]'``,
``'wae-toolkit[tensorboard]'`` or ``'wae-toolkit[track]'`` for both. They are imported only here,
when a run starts, and :meth:`wae_toolkit.RunConfig.validate` names a missing one before
anything is trained.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from wae_toolkit import __version__
from wae_toolkit.config.settings import DEFAULT_EXPERIMENT, TRACKERS, RunConfig, is_number
from wae_toolkit.engine.faults import TrainingInterrupted
from wae_toolkit.engine.loop import Callback, RunResult
from wae_toolkit.errors import UsageError, WaeError
from wae_toolkit.runs.folder import (
    CONFIG,
    METRICS,
    SUMMARY,
    TENSORBOARD_DIR,
    TRACKING_FILE,
    WEIGHTS,
    write_json,
)

__all__ = [
    "MLflowTracker",
    "TensorBoardTracker",
    "CallbackList",
    "make_trackers",
    "with_trackers",
    "mlflow_store",
    "TRACKING_FILE",
    "TENSORBOARD_DIR",
    "PREFIXES",
]

#: The MLflow artifact folder holding config.json and model.safetensors: a folder wt.load() reads.
MODEL_ARTIFACT = "model"

#: The default MLflow store and artifact folder, beside the run folders.
MLFLOW_DB = "mlflow.db"
MLFLOW_ARTIFACTS = "mlartifacts"
#: ``metrics.jsonl`` record kind -> the prefix of its metrics' names.
PREFIXES = {"step": "train", "epoch": "epoch", "eval": "eval", "pretrain": "pretrain"}
#: Settings that describe where the run goes, not the experiment: no parameters.
_NOT_PARAMS = ("out", "overwrite", "track", "tracking_uri", "experiment")
_RECORD_KEYS = ("kind", "epoch", "step")


def make_trackers(config: RunConfig) -> list[Callback]:
    """The trackers ``config.track`` names, each once, in its order."""
    trackers: list[Callback] = []
    for name in dict.fromkeys(config.track):
        if name == "mlflow":
            trackers.append(MLflowTracker(config.tracking_uri, config.experiment))
        elif name == "tensorboard":
            trackers.append(TensorBoardTracker())
        else:
            raise UsageError(f"Unknown tracker '{name}'; trackers: {', '.join(TRACKERS)}.")
    return trackers


def with_trackers(callback: Callback, config: RunConfig) -> Callback:
    """``callback`` followed by the trackers ``config.track`` names, once each has checked that
    it can log (an MLflow tracking URI that was given is opened here, before the run folder is
    written)."""
    trackers = make_trackers(config)
    for tracker in trackers:
        if isinstance(tracker, _Tracker):
            tracker.check()
    return CallbackList([callback, *trackers])


class CallbackList(Callback):
    """Calls several callbacks in turn."""

    def __init__(self, callbacks: Iterable[Callback]) -> None:
        self.callbacks = list(callbacks)

    def on_start(self, info: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_start(info)

    def on_log(self, step: int, epoch: int, logs: dict[str, float]) -> None:
        for cb in self.callbacks:
            cb.on_log(step, epoch, logs)

    def on_epoch_end(self, epoch: int, step: int, logs: dict[str, float]) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, step, logs)

    def on_end(self, result: RunResult) -> None:
        for cb in self.callbacks:
            cb.on_end(result)

    def on_error(self, error: BaseException) -> None:
        for cb in self.callbacks:
            on_error = getattr(cb, "on_error", None)  # a callback written before it existed
            if on_error is not None:
                on_error(error)


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


def _points(records: list[dict[str, Any]]) -> Iterable[tuple[str, float, int]]:
    """``(tag, value, step)`` for every number of the records."""
    for rec in records:
        kind = str(rec.get("kind"))
        step = rec.get("step")
        if not isinstance(step, int | float) or isinstance(step, bool):
            continue
        prefix = PREFIXES.get(kind, kind)
        for key, value in rec.items():
            if key not in _RECORD_KEYS and is_number(value):
                yield f"{prefix}/{key}", float(value), int(step)


def _final_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The numbers of ``summary.json`` as ``final/KEY``."""
    return {f"final/{k}": float(v) for k, v in summary.items() if is_number(v)}


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


def _text(value: Any) -> str:
    """A parameter's value as text: strings as they are, lists and mappings as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple | dict):
        return json.dumps(value)
    return str(value)


class _Tracker(Callback):
    """Logs the run folder's records to a backend; subclasses say how."""

    name = ""

    def __init__(self) -> None:
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
        record = json.loads((run_dir / CONFIG).read_text(encoding="utf-8"))
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
        assert self._records is not None
        points = []
        for tag, value, step in _points(self._records.read()):
            if step <= self._held.get(tag, -1):
                continue  # already held: logged before a resume
            self._held[tag] = step
            points.append((tag, value, step))
        if points:
            with self._writing():
                self._log(points)


# ---------------------------------------------------------------------------------------------
# MLflow


def mlflow_store(tracking_uri: str | None, run_dir: Path) -> tuple[str, str | None]:
    """The MLflow tracking URI for a run in ``run_dir``, and the artifact location of an
    experiment created there (``None``: the store's own default).

    ``None`` gives an SQLite store beside the run folder, ``<parent>/mlflow.db``, with artifacts
    in ``<parent>/mlartifacts``. ``sqlite:///PATH`` (or a path ending in ``.db``) keeps its
    artifacts in ``mlartifacts`` beside the database; another path is MLflow's file store,
    artifacts inside it; other URIs (``http://``, ``postgresql://``, ``databricks``...) are
    passed on as they are.
    """
    if tracking_uri is None:
        root = run_dir.resolve().parent
        return f"sqlite:///{root / MLFLOW_DB}", (root / MLFLOW_ARTIFACTS).as_uri()
    uri = tracking_uri.strip()
    scheme = urlparse(uri).scheme
    if len(scheme) <= 1:  # no scheme (or a Windows drive letter): a path
        path = Path(uri).expanduser().resolve()
        if path.suffix == ".db":
            return f"sqlite:///{path}", (path.parent / MLFLOW_ARTIFACTS).as_uri()
        return path.as_uri(), None
    if scheme == "sqlite" and uri.startswith("sqlite:///") and len(uri) > len("sqlite:///"):
        db = Path(uri[len("sqlite:///") :]).expanduser().resolve()
        if "?" not in uri:  # absolute, so that a resume from another folder finds it
            uri = f"sqlite:///{db}"
        return uri, (db.parent / MLFLOW_ARTIFACTS).as_uri()
    return uri, None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_tracking(run_dir: Path) -> dict[str, Any]:
    path = run_dir / TRACKING_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise UsageError(f"'{path}' is not valid JSON; delete it to track the run anew.") from None
    return data if isinstance(data, dict) else {}


def _key(name: str) -> str:
    """An MLflow parameter, tag or metric name: letters, digits and ``_-. /`` only."""
    return re.sub(r"[^\w\-. /]", "_", name)[:250]


class MLflowTracker(_Tracker):
    """Logs a run to MLflow: parameters, tags, metrics, the final evaluation and the run's files.

    Args:
        tracking_uri: where to log (see :func:`mlflow_store`); ``None``: ``mlflow.db`` beside
            the run folder.
        experiment: the experiment's name; created when missing.

    Attributes:
        run_id: the MLflow run's id, once the run started.
    """

    name = "MLflow"

    def __init__(
        self, tracking_uri: str | None = None, experiment: str = DEFAULT_EXPERIMENT
    ) -> None:
        super().__init__()
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_id: str | None = None
        self.uri = ""
        self._client: Any = None

    def _connect(self, run_dir: Path) -> tuple[Any, str | None]:
        """An ``MlflowClient`` of the store, and the artifact location of a new experiment."""
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as exc:
            raise UsageError(
                "--track mlflow needs MLflow, which cannot be imported "
                f"({_first_line(exc)}): pip install 'wae-toolkit[mlflow]'."
            ) from exc
        self.uri, artifacts = mlflow_store(self.tracking_uri, run_dir)
        if self.uri.startswith("sqlite:///") and len(self.uri) > len("sqlite:///"):
            Path(self.uri[len("sqlite:///") :]).expanduser().parent.mkdir(
                parents=True, exist_ok=True
            )
        return MlflowClient(tracking_uri=self.uri), artifacts

    def check(self) -> None:
        """Open a tracking URI that was given (the default store, beside the run folder, is
        opened when the run starts)."""
        if self.tracking_uri is None:
            return
        try:
            client, _ = self._connect(Path.cwd())
            client.search_experiments(max_results=1)
        except WaeError:
            raise
        except Exception as exc:
            raise WaeError(f"MLflow tracking at '{self.uri}' failed: {_first_line(exc)}") from exc

    def _open(self, run_dir: Path, record: dict[str, Any], resumed: bool) -> None:
        from mlflow.entities import Param, RunTag

        saved = _read_tracking(run_dir).get("mlflow") if resumed else None
        try:
            client, artifacts = self._connect(run_dir)
            self._client = client
            if isinstance(saved, dict) and saved.get("run_id"):
                run = self._continue(client, str(saved["run_id"]), run_dir)
            else:
                run = self._create(client, run_dir, artifacts, record)
            run_id, have = run.info.run_id, run.data.params
            params = [
                Param(_key(k), _text(v)[:6000])
                for k, v in run_parameters(record).items()
                if _key(k) not in have  # parameters cannot change (a resume may change device)
            ]
            for i in range(0, len(params), 100):
                client.log_batch(run_id, params=params[i : i + 100])
            tags = [RunTag(k, v) for k, v in self._tags(run_dir, record).items()]
            for i in range(0, len(tags), 100):
                client.log_batch(run_id, tags=tags[i : i + 100])
        except WaeError:
            raise
        except Exception as exc:
            raise WaeError(f"MLflow tracking at '{self.uri}' failed: {_first_line(exc)}") from exc

    def _create(
        self, client: Any, run_dir: Path, artifacts: str | None, record: dict[str, Any]
    ) -> Any:
        from mlflow.exceptions import MlflowException

        exp = client.get_experiment_by_name(self.experiment)
        if exp is None:
            try:
                exp_id = client.create_experiment(self.experiment, artifact_location=artifacts)
            except MlflowException:  # created meanwhile by a run beside this one
                exp = client.get_experiment_by_name(self.experiment)
                if exp is None:
                    raise
                exp_id = exp.experiment_id
        elif exp.lifecycle_stage == "deleted":
            raise UsageError(
                f"The MLflow experiment '{self.experiment}' in '{self.uri}' is deleted; restore "
                "it (mlflow experiments restore) or choose another --experiment."
            )
        else:
            exp_id = exp.experiment_id
        run = client.create_run(exp_id, run_name=run_dir.name)
        self.run_id = run.info.run_id
        write_json(
            run_dir / TRACKING_FILE,
            {
                "mlflow": {
                    "tracking_uri": self.uri,
                    "experiment": self.experiment,
                    "experiment_id": exp_id,
                    "run_id": self.run_id,
                }
            },
        )
        return run

    def _continue(self, client: Any, run_id: str, run_dir: Path) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            run = client.get_run(run_id)
        except MlflowException:
            raise UsageError(
                f"The MLflow run {run_id} named in '{run_dir / TRACKING_FILE}' is not in "
                f"'{self.uri}'; give its --tracking-uri, or delete that file to log the rest of "
                "the run to a new MLflow run."
            ) from None
        self.run_id = run_id
        client.update_run(run_id, status="RUNNING")
        for key in run.data.metrics:
            steps = [m.step for m in client.get_metric_history(run_id, key)]
            if steps:
                self._held[key] = max(steps)
        return run

    def _tags(self, run_dir: Path, record: dict[str, Any]) -> dict[str, str]:
        tags = {
            "wae.run_dir": str(run_dir.resolve()),
            "wae.version": __version__,
            "wae.torch_version": str(record.get("torch_version", "")),
            "wae.device": str(record.get("device", "")),
        }
        for kind, plugin in record.get("plugins", {}).items():
            tags[_key(f"wae.plugin.{kind}")] = (
                f"{plugin.get('name')} ({plugin.get('distribution')} {plugin.get('version')})"
            )
        for key, source in record.get("sources", {}).items():
            if source != "default" and key.split(".")[0] not in _NOT_PARAMS:
                tags[_key(f"wae.source.{key}")] = str(source)[:5000]
        return tags

    def _log(self, points: list[tuple[str, float, int]]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(_key(tag), value, now, step) for tag, value, step in points]
        for i in range(0, len(metrics), 1000):
            self._client.log_batch(self.run_id, metrics=metrics[i : i + 1000])

    def _finish(self, result: RunResult) -> None:
        summary = result.summary
        step = int(summary.get("steps", 0))
        self._log([(k, v, step) for k, v in _final_metrics(summary).items()])
        out = result.run_dir
        for name in (CONFIG, SUMMARY, METRICS):
            if (out / name).is_file():
                self._client.log_artifact(self.run_id, str(out / name))
        for path in result.files:
            if path.suffix == ".png" and path.is_file():
                self._client.log_artifact(self.run_id, str(path), "figures")
        # model/ is a loadable folder: `mlflow artifacts download ... -a model`, then wt.load()
        if (out / WEIGHTS).is_file():
            for name in (CONFIG, WEIGHTS):
                self._client.log_artifact(self.run_id, str(out / name), MODEL_ARTIFACT)
        self._client.set_terminated(self.run_id, "FINISHED")

    def _close(self, error: BaseException) -> None:
        interrupted = isinstance(error, TrainingInterrupted | KeyboardInterrupt)
        status = "KILLED" if interrupted else "FAILED"
        try:
            self._client.set_tag(self.run_id, "wae.error", _first_line(error)[:5000])
            self._client.set_terminated(self.run_id, status)
        except Exception as exc:  # the run's own error is the one to report
            warnings.warn(
                f"Could not mark the MLflow run {self.run_id} {status}: {_first_line(exc)}",
                RuntimeWarning,
                stacklevel=3,
            )


# ---------------------------------------------------------------------------------------------
# TensorBoard


def tensorboard_steps(logdir: Path) -> dict[str, int]:
    """The last step of every scalar tag in the event files of ``logdir`` (none: ``{}``)."""
    if not logdir.is_dir() or not any(logdir.glob("events.out.tfevents.*")):
        return {}
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(str(logdir), size_guidance={ea.SCALARS: 0})
    acc.Reload()
    held = {}
    for tag in acc.Tags()["scalars"]:
        steps = [e.step for e in acc.Scalars(tag)]
        if steps:
            held[tag] = max(steps)
    return held


def _hparam(value: Any) -> Any:
    if isinstance(value, bool | int | float | str):
        return value
    return _text(value)


class TensorBoardTracker(_Tracker):
    """Writes TensorBoard event files to ``RUN_DIR/tensorboard/``: scalars, the configuration as
    text, hyper-parameters with the final metrics, and the figures as images."""

    name = "TensorBoard"

    def __init__(self) -> None:
        super().__init__()
        self.writer: Any = None

    def _open(self, run_dir: Path, record: dict[str, Any], resumed: bool) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise UsageError(
                "--track tensorboard needs TensorBoard, which cannot be imported "
                f"({_first_line(exc)}): pip install 'wae-toolkit[tensorboard]'."
            ) from exc
        logdir = run_dir / TENSORBOARD_DIR
        self._record = record
        if resumed:
            self._held = tensorboard_steps(logdir)
        elif logdir.is_dir():
            # A new run in this folder exists only where --overwrite replaced the old run: its
            # event files go with it.
            for old in logdir.glob("events.out.tfevents.*"):
                old.unlink()
        self.writer = SummaryWriter(str(logdir))
        if not resumed:
            text = json.dumps(record, indent=2, default=str)
            self.writer.add_text("config", "    " + text.replace("\n", "\n    "), 0)

    def _log(self, points: list[tuple[str, float, int]]) -> None:
        for tag, value, step in points:
            self.writer.add_scalar(tag, value, step)

    def on_epoch_end(self, epoch: int, step: int, logs: dict[str, float]) -> None:
        super().on_epoch_end(epoch, step, logs)
        self.writer.flush()

    def _finish(self, result: RunResult) -> None:
        import numpy as np
        from PIL import Image
        from torch.utils.tensorboard.summary import hparams

        step = int(result.summary.get("steps", 0))
        final = {k: v for k, v in _final_metrics(result.summary).items() if math.isfinite(v)}
        params = {k: _hparam(v) for k, v in run_parameters(self._record).items()}
        writer = self.writer._get_file_writer()
        for summary in hparams(params, final):  # in this run's folder, not a new one
            writer.add_summary(summary, step)
        self._log([(k, v, step) for k, v in final.items()])
        for path in result.files:
            if path.suffix == ".png" and path.is_file():
                with Image.open(path) as img:
                    pixels = np.asarray(img.convert("RGB"))
                self.writer.add_image(f"figures/{path.stem}", pixels, step, dataformats="HWC")
        self.writer.close()

    def _close(self, error: BaseException) -> None:
        self.writer.close()
