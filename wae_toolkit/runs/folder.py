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


#: Files of ``RUN/tensorboard`` that TensorBoard's writer creates (``--overwrite`` removes these).
_TB_EVENTS = "events.out.tfevents."


def is_run_record(path: Path) -> bool:
    """Whether ``path`` (a ``config.json``) is a plain file written by ``wae run``: a JSON object
    with the toolkit's version and a ``run`` section. Never follows a symbolic link."""
    from wae_toolkit.runs.safe_io import link_problem

    if not path.is_file() or link_problem(path, "file") is not None:
        return False
    try:
        if path.stat().st_size > 10_000_000:
            return False
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError, UnicodeDecodeError):
        return False
    return (
        isinstance(record, dict)
        and "wae_toolkit_version" in record
        and isinstance(record.get("run"), dict)
    )


def _name_problem(path: Path) -> str | None:
    """A sentence when a part of ``path`` is longer than the file system allows."""
    try:
        limit = os.pathconf(path.anchor or ".", "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        limit = 255
    for part in path.parts:
        if len(os.fsencode(part)) > limit:
            shown = part if len(part) <= 40 else part[:37] + "..."
            return (
                f"The run folder name '{shown}' is {len(part)} characters long; this file system "
                f"allows at most {limit} per name: choose a shorter --out."
            )
    return None


def check_run_dir(path: Path, overwrite: bool) -> list[str]:
    """Check that ``path`` may receive a new run, without writing anything.

    A folder may receive a run when it is new, empty, or holds a run (a ``config.json`` written
    by ``wae run``) and ``overwrite`` is true. Only the files and folders a run writes are then
    replaced (:data:`RUN_FILES`, :data:`RUN_DIRS`); anything else in the folder is kept. A folder
    that holds other things (a foreign ``config.json``, a ``checkpoints`` folder of another
    tool) is never a run, even with ``overwrite``. Nothing is followed through a symbolic link.

    Returns the names of the old run's files that ``--overwrite`` will replace.

    Raises:
        RunExistsError: ``path`` holds a run and ``overwrite`` is False, or holds other things.
        UsageError: ``path`` is a file, a name is too long, its parent cannot be written, or an
            entry a run writes is a symbolic link or of the wrong kind.
    """
    from wae_toolkit.runs.safe_io import is_temporary, link_problem

    too_long = _name_problem(path)
    if too_long:
        raise UsageError(too_long)
    if path.exists() and not path.is_dir():
        raise UsageError(f"The output path '{path}' is a file; give a folder for the run.")
    if path.is_dir():
        try:
            entries = sorted(p.name for p in path.iterdir())
        except OSError as exc:
            raise UsageError(f"Cannot read the folder '{path}': {exc.strerror or exc}.") from None
        entries = [n for n in entries if not is_temporary(n)]
        if not entries:
            return []
        is_run = CONFIG in entries and is_run_record(path / CONFIG)
        if not is_run:
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise RunExistsError(
                f"The folder '{path}' is not empty and holds no wae run ({shown}); choose a new "
                "or empty folder for --out."
            )
        if not overwrite:
            raise RunExistsError(
                f"The folder '{path}' already holds a run; choose another --out, or pass "
                "--overwrite to replace that run's files."
            )
        old_run = [n for n in entries if n in RUN_FILES or n in RUN_DIRS]
        for name in old_run:
            problem = link_problem(path / name, "folder" if name in RUN_DIRS else "file")
            if problem:
                raise UsageError(f"--overwrite replaces only what a run wrote: {problem}")
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


def _written_by_a_run(folder: Path, name: str) -> bool:
    """Whether ``folder/name``, an entry of a run's subfolder, is a file a run writes."""
    from wae_toolkit.engine.checkpoint import is_checkpoint_file_name
    from wae_toolkit.runs.safe_io import is_temporary

    if folder.name == TENSORBOARD_DIR:
        return name.startswith(_TB_EVENTS)
    return is_checkpoint_file_name(name) or is_temporary(name)


def _remove_run_folder(folder: Path) -> None:
    """Remove what a run wrote in ``folder`` (checkpoints, TensorBoard events: plain files with
    the names it gives them, in plain subfolders), then the folders left empty; keep the rest."""
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink():
            continue
        if entry.is_dir():
            _remove_run_folder(entry)
        elif entry.is_file() and _written_by_a_run(folder, entry.name):
            entry.unlink()
    try:
        folder.rmdir()
    except OSError:  # something that is not the run's stays, and so does its folder
        pass


def prepare_run_dir(path: Path, overwrite: bool, lock: Any = None) -> list[str]:
    """Create ``path`` (after :func:`check_run_dir`) and remove an old run's files if allowed.

    With ``lock`` (a :class:`~wae_toolkit.runs.safe_io.RunLock` of ``path``), the folder is locked
    once it exists and checked again under the lock, so two runs never share a folder.
    Everything is checked before anything is removed, and only what a run wrote is removed;
    symbolic links are never followed.
    """
    replaced = check_run_dir(path, overwrite)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from wae_toolkit.runs.safe_io import write_error

        raise write_error(exc, path, f"the run folder '{path}'") from exc
    if lock is not None:
        lock.acquire()
        replaced = check_run_dir(path, overwrite)
    try:
        for name in replaced:
            if name in RUN_DIRS:
                _remove_run_folder(path / name)
            else:
                (path / name).unlink()
    except OSError as exc:
        from wae_toolkit.runs.safe_io import write_error

        raise write_error(exc, path, f"the run folder '{path}'") from exc
    return replaced


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (a temporary file, then a rename; never through a link)."""
    from wae_toolkit.runs.safe_io import write_json as _write

    _write(path, obj)


class MetricsWriter:
    """Appends one JSON object per line to ``metrics.jsonl`` (never through a symbolic link).

    Args:
        path: the file.
        keep_lines: when given, first cut the file back to its first ``keep_lines`` lines (a
            resumed run drops what was logged after its checkpoint).

    Raises:
        RunWriteError: the file cannot be written (disk full, a link in its place...).
    """

    def __init__(self, path: Path, keep_lines: int | None = None) -> None:
        from wae_toolkit.runs.safe_io import AppendFile

        self.path = path
        self._file = AppendFile(path, keep_lines)

    @property
    def lines(self) -> int:
        return self._file.lines

    def write(self, record: dict[str, Any]) -> None:
        from wae_toolkit.runs.safe_io import to_json

        self._file.write_line(to_json(record, indent=None))

    def close(self) -> None:
        self._file.close()


class RunFileWarning(UserWarning):
    """A file of a run folder that using its model does not need (``summary.json``) could not
    be read; it was treated as missing."""


#: The largest JSON file of a run folder that is read (config.json, summary.json, eval.json).
MAX_JSON_BYTES = 64 * 2**20


def _parse_int(text: str) -> int | float:
    """A JSON integer; beyond 18 digits a float (``inf`` past a float's range). Run files never
    hold such integers, and a float cannot overflow where the value is drawn or formatted."""
    return int(text) if len(text) <= 19 else float(text)


class _TooDeep(ValueError):
    """JSON nested deeper than Python's recursion allows."""


def parse_json(text: str | bytes) -> Any:
    """JSON text as Python values; integers too long for a float are read as floats.

    Raises:
        ValueError: not JSON, or nested too deeply.
    """
    try:
        return json.loads(text, parse_int=_parse_int)
    except RecursionError:
        raise _TooDeep("nested too deeply") from None


class _Unreadable(Exception):
    """Why a run file cannot be read: a few words that follow "could not be read"."""


def _check_plain_file(path: Path, limit: int | None = MAX_JSON_BYTES) -> None:
    """Check that ``path`` is a plain file that can be read (a link is followed; nothing is
    changed).

    Raises:
        FileNotFoundError: there is no entry of that name (not even a broken link).
        _Unreadable: a broken link, a link loop, not a plain file, larger than ``limit`` bytes.
    """
    import stat

    if not os.path.lexists(path):
        raise FileNotFoundError(path)
    try:
        st = path.stat()
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) and path.is_symlink():
            raise _Unreadable("a symbolic link to nothing") from None
        raise _Unreadable(exc.strerror or type(exc).__name__) from None
    if not stat.S_ISREG(st.st_mode):
        raise _Unreadable("not a plain file")
    if limit is not None and st.st_size > limit:
        raise _Unreadable(f"larger than {limit // 2**20} MB")


def _read_bytes(path: Path) -> bytes:
    """The bytes of a JSON file of a run folder (see :func:`_check_plain_file`)."""
    _check_plain_file(path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _Unreadable(exc.strerror or type(exc).__name__) from None


def read_json_file(path: str | Path) -> tuple[Any, str | None]:
    """The JSON value in ``path``, and ``None``; ``(None, None)`` when there is no such entry;
    ``(None, why)`` when it cannot be read or is not JSON (``why``: a few words, such as
    ``"JSONDecodeError"`` or ``"Permission denied"``). Links are followed; nothing is changed.
    Never raises."""
    try:
        data = _read_bytes(Path(path))
        text = data.decode("utf-8")
    except FileNotFoundError:
        return None, None
    except _Unreadable as exc:
        return None, str(exc)
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    try:
        return parse_json(text), None
    except _TooDeep as exc:
        return None, str(exc)
    except ValueError as exc:
        return None, type(exc).__name__


def read_json_object(path: str | Path) -> tuple[dict[str, Any] | None, str | None]:
    """Like :func:`read_json_file`, for a file that must hold a JSON object (``summary.json``,
    ``eval.json``); any other JSON value gives ``(None, "not a JSON object")``."""
    value, why = read_json_file(path)
    if why is None and not isinstance(value, dict) and os.path.lexists(path):
        return None, "not a JSON object"
    return value, why


def file_problem(name: str, why: str) -> str:
    """``"summary.json could not be read (JSONDecodeError)"``: ``why`` from
    :func:`read_json_object` in words, without a final period."""
    if why == "not a JSON object":
        return f"{name} is not a JSON object"
    return f"{name} could not be read ({why})"


def read_metrics_file(path: str | Path) -> tuple[list[dict[str, Any]], int, str | None]:
    """The records of a ``metrics.jsonl`` file: its lines that are JSON objects, how many other
    lines were skipped, and why the file could not be read at all (``None`` when it could, or
    is absent). Bytes that are not UTF-8 are replaced. Never raises."""
    path = Path(path)
    records: list[dict[str, Any]] = []
    bad = 0
    try:
        _check_plain_file(path, limit=None)
        with open(path, "rb") as fh:
            for raw in fh:
                line = raw.decode("utf-8", errors="replace")
                if not line.strip():
                    continue
                try:
                    record = parse_json(line)
                except ValueError:
                    bad += 1
                    continue
                if isinstance(record, dict):
                    records.append(record)
                else:
                    bad += 1
    except FileNotFoundError:
        return [], 0, None
    except _Unreadable as exc:
        return [], 0, str(exc)
    except OSError as exc:
        return records, bad, exc.strerror or type(exc).__name__
    return records, bad, None


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of a run's ``metrics.jsonl``: its lines that are JSON objects (the others
    are skipped; an absent or unreadable file has none). Never raises."""
    return read_metrics_file(Path(run_dir) / METRICS)[0]


def save_weights(path: Path, tensors: dict[str, Any]) -> None:
    """Save tensors as safetensors atomically (never through a link).

    Raises:
        RunWriteError: the file cannot be written (disk full...); the old one is kept.
    """
    from safetensors.torch import save

    from wae_toolkit.runs.safe_io import write_atomic

    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()})
    write_atomic(path, data)


def _check_plugins(path: Path, recorded: dict[str, Any]) -> None:
    """Refuse a run whose plugins are not installed; warn when their provider changed."""
    import warnings

    from wae_toolkit.errors import PluginVersionWarning, UnknownPluginError
    from wae_toolkit.plugins.registry import IN_PROCESS, get_plugin_info

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
    try:
        data = _read_bytes(cfg_path)
    except FileNotFoundError:
        raise UsageError(f"'{path}' is not a run folder: it has no {CONFIG}.") from None
    except _Unreadable as exc:
        raise UsageError(
            f"Cannot read '{cfg_path}' ({exc}); give a run folder written by wae run."
        ) from None
    try:
        try:
            record = parse_json(data.decode("utf-8"))
        except ValueError:  # not UTF-8, not JSON, nested too deeply
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


def _check_finite(weights_path: Path, tensors: dict[str, Any]) -> None:
    """Refuse weights holding NaN or infinite values (a run that diverged, or a damaged file)."""
    import torch

    bad = sorted(
        k for k, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())
    )
    if bad:
        raise UsageError(
            f"The weights in '{weights_path}' hold NaN or infinite values ({len(bad)} of "
            f"{len(tensors)} tensors, the first '{bad[0][:80]}'): the run diverged or the file was "
            "damaged, so its model cannot be used; train it again (a lower --lr or --lambda "
            "usually helps) or use an earlier checkpoint of it."
        )


def load_run(run_dir: str | Path, device: str = "cpu") -> LoadedRun:
    """Load a run folder written by :func:`wae_toolkit.engine.loop.train`.

    Plugins are resolved by name through the registry (so they must be installed); weights are
    read from safetensors; nothing is unpickled.

    Args:
        run_dir: the run folder.
        device: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``, checked as ``--device`` is.

    Raises:
        UsageError: one sentence: a device that is not available, not a run folder, a damaged
            ``config.json`` or ``model.safetensors``, weights holding NaN or infinite values (a
            run that diverged), plugins that are not installed.
    """
    from safetensors.torch import load_file

    from wae_toolkit.build.components import build_components
    from wae_toolkit.config.settings import RunConfig
    from wae_toolkit.devices import resolve_device

    dev = resolve_device(str(device))
    path = Path(run_dir)
    record = _read_record(path)
    config = RunConfig.from_dict(record["run"])
    shape = tuple(record["data"]["sample_shape"])
    vr = record["data"].get("value_range")
    value_range = None if vr is None else (float(vr[0]), float(vr[1]))
    _check_plugins(path, record.get("plugins", {}))
    comps = build_components(config, shape, value_range)
    weights_path = path / WEIGHTS
    try:
        _check_plain_file(weights_path, limit=None)
    except FileNotFoundError:
        raise UsageError(
            f"The run folder '{path}' has no {WEIGHTS}; the run did not finish."
        ) from None
    except _Unreadable as exc:
        raise UsageError(
            f"Cannot read '{weights_path}' ({exc}); the run cannot be loaded."
        ) from None
    try:
        tensors = load_file(str(weights_path))
    except Exception as exc:  # safetensors raises its own error types
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")[:200]
        raise UsageError(f"'{weights_path}' is not a valid safetensors file: {why}.") from None
    _check_finite(weights_path, tensors)
    model_sd = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    pen_sd = {k[8:]: v for k, v in tensors.items() if k.startswith("penalty.")}
    try:
        comps.model.load_state_dict(model_sd)
        comps.penalty.load_state_dict(pen_sd)
    except RuntimeError as exc:  # "Error(s) in loading state_dict for WAE:", then the problems
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or ["?"]
        detail = lines[min(1, len(lines) - 1)][:200].rstrip(".:, ")
        raise UsageError(
            f"The weights in '{weights_path}' do not fit the model its configuration describes "
            f"({detail}); they belong to another run."
        ) from None
    comps.model.to(dev).eval()
    comps.penalty.to(dev).eval()
    return LoadedRun(path, config, record, comps.model, comps.penalty, comps.cost)
