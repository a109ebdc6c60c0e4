"""The MLflow tracker (``wae run --track mlflow``): parameters, tags, metrics, the final
evaluation and the run's files, in an MLflow tracking store (by default ``mlflow.db`` beside the
run folders); see :mod:`wae_toolkit.trackers.base` for what every tracker logs."""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from wae_toolkit._version import __version__
from wae_toolkit.engine.callbacks import RunResult
from wae_toolkit.engine.faults import TrainingInterrupted
from wae_toolkit.errors import UsageError, WaeError, setting
from wae_toolkit.runs.folder import CONFIG, METRICS, SUMMARY, TRACKING_FILE, WEIGHTS
from wae_toolkit.trackers.base import (
    _NOT_PARAMS,
    _Tracker,
    as_text,
    final_metrics,
    first_line,
    read_tracking,
    run_parameters,
    save_tracking,
)

__all__ = ["MLflowTracker", "mlflow_store", "MODEL_ARTIFACT", "MLFLOW_DB", "MLFLOW_ARTIFACTS"]

#: The MLflow artifact folder holding config.json and model.safetensors: a folder wt.load() reads.
MODEL_ARTIFACT = "model"
#: The default MLflow store and artifact folder, beside the run folders.
MLFLOW_DB = "mlflow.db"
MLFLOW_ARTIFACTS = "mlartifacts"


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
    run_id: str | None = None
    uri = ""
    _client: Any = None

    def _connect(self, run_dir: Path) -> tuple[Any, str | None]:
        """An ``MlflowClient`` of the store, and the artifact location of a new experiment."""
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as exc:
            raise UsageError(
                f"{setting('track', 'mlflow')} needs MLflow, which cannot be imported "
                f"({first_line(exc)}): pip install 'wae-toolkit[mlflow]'."
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
            raise WaeError(f"MLflow tracking at '{self.uri}' failed: {first_line(exc)}") from exc

    def _open(self, run_dir: Path, record: dict[str, Any], resumed: bool) -> None:
        from mlflow.entities import Param, RunTag

        saved = read_tracking(run_dir).get("mlflow") if resumed else None
        try:
            client, artifacts = self._connect(run_dir)
            self._client = client
            if isinstance(saved, dict) and saved.get("run_id"):
                run = self._continue(client, str(saved["run_id"]), run_dir)
            else:
                run = self._create(client, run_dir, artifacts, record)
            run_id, have = run.info.run_id, run.data.params
            params = [
                Param(_key(k), as_text(v)[:6000])
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
            raise WaeError(f"MLflow tracking at '{self.uri}' failed: {first_line(exc)}") from exc

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
                f"it (mlflow experiments restore) or choose another {setting('experiment')}."
            )
        else:
            exp_id = exp.experiment_id
        run = client.create_run(exp_id, run_name=run_dir.name)
        self.run_id = run.info.run_id
        save_tracking(
            run_dir,
            "mlflow",
            {
                "tracking_uri": self.uri,
                "experiment": self.experiment,
                "experiment_id": exp_id,
                "run_id": self.run_id,
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
                f"'{self.uri}'; give its {setting('tracking_uri')}, or delete that file to log "
                "the rest of the run to a new MLflow run."
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
        self._log([(k, v, step) for k, v in final_metrics(summary).items()])
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
            self._client.set_tag(self.run_id, "wae.error", first_line(error)[:5000])
            self._client.set_terminated(self.run_id, status)
        except Exception as exc:  # the run's own error is the one to report
            warnings.warn(
                f"Could not mark the MLflow run {self.run_id} {status}: {first_line(exc)}",
                RuntimeWarning,
                stacklevel=3,
            )
