"""Run folders: what a run writes, and loading it back.

A run folder holds::

    config.json        the resolved configuration: every plugin's name, options, distribution
                       and version, the data set's shape, the toolkit and torch versions
    metrics.jsonl      one JSON object per line: step losses, epoch summaries, evaluations
    model.safetensors  the weights (model, prior, penalty critic), never a pickle
    summary.json       final metrics and the list of files
    *.png              figures

Nothing is unpickled when a run is loaded: weights are safetensors and the rest is JSON.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wae_toolkit.errors import RunExistsError, UsageError

__all__ = [
    "RUN_FILES",
    "prepare_run_dir",
    "default_run_dir",
    "MetricsWriter",
    "LoadedRun",
    "load_run",
]

CONFIG = "config.json"
METRICS = "metrics.jsonl"
WEIGHTS = "model.safetensors"
SUMMARY = "summary.json"
#: ``wae report RUN`` writes the run's report here.
REPORT_FILE = "report.html"
#: With ``--track mlflow``: the MLflow run that ``--resume`` continues.
TRACKING_FILE = "tracking.json"
#: With ``--track tensorboard``: the run's TensorBoard event files.
TENSORBOARD_DIR = "tensorboard"
#: Files a run writes; ``--overwrite`` removes exactly these and nothing else.
RUN_FILES = (
    CONFIG,
    METRICS,
    WEIGHTS,
    SUMMARY,
    "eval.json",
    "reconstructions.png",
    "samples.png",
    "interpolations.png",
    "losses.png",
    "data.png",
    "latent.png",
    REPORT_FILE,
    TRACKING_FILE,
)
#: Folders a run writes (checkpoints, TensorBoard events); ``--overwrite`` removes them too.
#: ``export/`` (wae export) is kept: its export.json says which weights it was made from.
RUN_DIRS = ("checkpoints", TENSORBOARD_DIR)


def default_run_dir(data: str, penalty: str, root: str | Path = "runs") -> Path:
    """A new folder ``runs/<data>-<penalty>-<date>-<time>`` that does not exist yet."""
    stem = Path(data).stem if os.sep in data or "." in data else data
    penalty = penalty.rpartition(":")[2].rpartition(".")[2]  # "module:Class" -> "Class"
    base = Path(root) / f"{stem}-{penalty}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, i = base, 2
    while path.exists():
        path, i = Path(f"{base}-{i}"), i + 1
    return path


def check_run_dir(path: Path, overwrite: bool) -> list[str]:
    """Check that ``path`` may receive a run, without writing anything.

    Returns the names of the old run's files that ``--overwrite`` will replace.

    Raises:
        RunExistsError: ``path`` holds a run and ``overwrite`` is False, or holds other files.
        UsageError: ``path`` is a file, or its parent cannot be written.
    """
    if path.exists() and not path.is_dir():
        raise UsageError(f"The output path '{path}' is a file; give a folder for the run.")
    if path.is_dir():
        entries = [p.name for p in path.iterdir()]
        old_run = [n for n in entries if n in RUN_FILES or n in RUN_DIRS]
        others = [n for n in entries if n not in RUN_FILES and n not in RUN_DIRS]
        if old_run and not overwrite:
            raise RunExistsError(
                f"The folder '{path}' already holds a run; choose another --out, or pass "
                "--overwrite to replace that run's files."
            )
        if others and not old_run:
            shown = ", ".join(sorted(others)[:3]) + (", ..." if len(others) > 3 else "")
            raise RunExistsError(
                f"The folder '{path}' is not empty and holds no run ({shown}); choose a new or "
                "empty folder for --out."
            )
        return old_run
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(
            f"Cannot create the run folder '{path}': '{parent}' is a file; choose another --out."
        )
    if not os.access(parent, os.W_OK):
        raise UsageError(f"Cannot create the run folder '{path}': '{parent}' is not writable.")
    return []


def prepare_run_dir(path: Path, overwrite: bool) -> list[str]:
    """Create ``path`` (after :func:`check_run_dir`) and remove an old run's files if allowed."""
    replaced = check_run_dir(path, overwrite)
    path.mkdir(parents=True, exist_ok=True)
    for name in replaced:
        if name in RUN_DIRS:
            shutil.rmtree(path / name)
        else:
            (path / name).unlink()
    return replaced


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically: a temporary file, then a rename."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=False, default=_json_default)
        fh.write("\n")
    os.replace(tmp, path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, tuple | set):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


class MetricsWriter:
    """Appends one JSON object per line to ``metrics.jsonl``.

    Args:
        path: the file.
        keep_lines: when given, first cut the file back to its first ``keep_lines`` lines (a
            resumed run drops what was logged after its checkpoint).
    """

    def __init__(self, path: Path, keep_lines: int | None = None) -> None:
        self.path = path
        self.lines = 0
        if keep_lines is not None and path.exists():
            with open(path, "rb") as fh:
                kept = fh.readlines()[:keep_lines]
            with open(path, "wb") as fh:
                fh.writelines(kept)
                fh.flush()
                os.fsync(fh.fileno())
        if path.exists():
            with open(path, "rb") as fh:
                self.lines = sum(1 for _ in fh)
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, default=_json_default) + "\n")
        self._fh.flush()
        self.lines += 1

    def close(self) -> None:
        self._fh.close()


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All records of a run's ``metrics.jsonl``."""
    path = Path(run_dir) / METRICS
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def save_weights(path: Path, tensors: dict[str, Any]) -> None:
    """Save tensors as safetensors atomically."""
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def _check_plugins(path: Path, recorded: dict[str, Any]) -> None:
    """Refuse a run whose plugins are not installed; warn when their provider changed."""
    import warnings

    from wae_toolkit.errors import PluginVersionWarning, UnknownPluginError
    from wae_toolkit.registry import IN_PROCESS, get_plugin_info

    found: dict[str, Any] = {}  # kind -> the plugin's metadata now, or None when not installed
    for kind, rec in recorded.items():
        try:
            found[kind] = get_plugin_info(kind, str(rec.get("name")))
        except UnknownPluginError:
            found[kind] = None
    given = {k: r.get("name") for k, r in recorded.items() if r.get("distribution") == IN_PROCESS}
    missing = [k for k in given if found[k] is None]
    if missing:
        raise UsageError(
            f"The run '{path}' was trained with classes given to wae_toolkit.fit() that are not "
            f"installed plugins ({', '.join(f'{k} {given[k]}' for k in missing)}); "
            f"load it from Python, giving them again: wae_toolkit.load(run, "
            f"{', '.join(f'{k}=...' for k in missing)})."
        )
    for kind, rec in recorded.items():
        name, dist, version = rec.get("name"), rec.get("distribution"), rec.get("version")
        now = found[kind]
        if now is None:
            raise UsageError(
                f"The run '{path}' uses the {kind} '{name}' from {dist} {version}, which is not "
                f"installed; install it (pip install {dist}=={version}) to load this run."
            )
        if (now.distribution, now.version) != (dist, version):
            warnings.warn(
                f"The run '{path}' was trained with the {kind} '{name}' from {dist} {version}; "
                f"it is now provided by {now.distribution} {now.version}, so results may differ.",
                PluginVersionWarning,
                stacklevel=3,
            )


@dataclass
class LoadedRun:
    """A run folder loaded back: its configuration, model and penalty, in eval mode on CPU."""

    path: Path
    config: Any  # RunConfig
    record: dict[str, Any]
    model: Any  # WAE
    penalty: Any  # LatentPenalty
    cost: Any  # Cost


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The ``run`` section of a run folder's ``config.json`` (the settings ``wae run`` took).

    Raises:
        UsageError: no such folder or file, or a file that is not a run configuration.
    """
    return _read_record(Path(run_dir))["run"]  # type: ignore[no-any-return]


class _BadRecord(ValueError):
    """One sentence saying what is wrong with a run's config.json."""


def _read_record(path: Path) -> dict[str, Any]:
    """A run folder's ``config.json``, checked to have the sections loading needs.

    Raises:
        UsageError: no such file, not JSON, or a section of the wrong shape; one sentence.
    """
    cfg_path = path / CONFIG
    if not cfg_path.is_file():
        raise UsageError(f"'{path}' is not a run folder: it has no {CONFIG}.")
    try:
        try:
            record = json.loads(cfg_path.read_text(encoding="utf-8"))
        except (ValueError, RecursionError, UnicodeDecodeError):
            raise _BadRecord("it is not a JSON file written by wae run") from None
        if not isinstance(record, dict):
            raise _BadRecord("it is not a JSON object")
        for section in ("run", "data"):
            if not isinstance(record.get(section), dict):
                raise _BadRecord(f"its '{section}' section is missing or not an object")
        plugins = record.get("plugins", {})
        if not isinstance(plugins, dict) or not all(isinstance(v, dict) for v in plugins.values()):
            raise _BadRecord("its 'plugins' section must map each kind to an object")
        shape = record["data"].get("sample_shape")
        if not (
            isinstance(shape, list)
            and shape
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape)
        ):
            raise _BadRecord("its data.sample_shape must be a list of positive integers")
        vr = record["data"].get("value_range")
        if vr is not None and not (
            isinstance(vr, list)
            and len(vr) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in vr)
            and all(math.isfinite(v) for v in vr)
            and vr[0] < vr[1]
        ):
            raise _BadRecord("its data.value_range must be null or two finite numbers, low < high")
    except _BadRecord as exc:
        raise UsageError(f"'{cfg_path}' is not a valid run configuration: {exc}.") from None
    return record


def load_run(run_dir: str | Path, device: str = "cpu") -> LoadedRun:
    """Load a run folder written by :func:`wae_toolkit.train.train`.

    Plugins are resolved by name through the registry (so they must be installed); weights are
    read from safetensors; nothing is unpickled.
    """
    from safetensors.torch import load_file

    from wae_toolkit.components import build_components
    from wae_toolkit.config import RunConfig

    path = Path(run_dir)
    record = _read_record(path)
    config = RunConfig.from_dict(record["run"])
    shape = tuple(record["data"]["sample_shape"])
    vr = record["data"].get("value_range")
    value_range = None if vr is None else (float(vr[0]), float(vr[1]))
    _check_plugins(path, record.get("plugins", {}))
    comps = build_components(config, shape, value_range)
    weights_path = path / WEIGHTS
    if not weights_path.is_file():
        raise UsageError(f"The run folder '{path}' has no {WEIGHTS}; the run did not finish.")
    try:
        tensors = load_file(str(weights_path))
    except Exception as exc:  # safetensors raises its own error types
        raise UsageError(f"'{weights_path}' is not a valid safetensors file: {exc}.") from None
    model_sd = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    pen_sd = {k[8:]: v for k, v in tensors.items() if k.startswith("penalty.")}
    try:
        comps.model.load_state_dict(model_sd)
        comps.penalty.load_state_dict(pen_sd)
    except RuntimeError as exc:
        raise UsageError(
            f"The weights in '{weights_path}' do not fit the model its configuration describes: "
            f"{str(exc).splitlines()[0]}"
        ) from None
    comps.model.to(device).eval()
    comps.penalty.to(device).eval()
    return LoadedRun(path, config, record, comps.model, comps.penalty, comps.cost)
