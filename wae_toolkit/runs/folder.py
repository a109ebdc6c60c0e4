"""Run folders: what a run writes, and where it writes it.

A run folder holds (:mod:`~wae_toolkit.runs.names` names them)::

    config.json        the resolved configuration: every plugin's name, options, distribution
                       and version, the data set's shape, the toolkit and torch versions
    metrics.jsonl      one JSON object per line: step losses, epoch summaries, evaluations
    model.safetensors  the weights (model, prior, penalty critic), never a pickle
    summary.json       final metrics and the list of files
    *.png              figures

Reading a run folder back is :func:`wae_toolkit.runs.read.read_run`'s; loading its model,
:func:`wae_toolkit.runs.restore.load_run`'s (both importable from here as well).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from wae_toolkit.errors import RunExistsError, UsageError, setting
from wae_toolkit.runs.names import (
    CHECKPOINT_DIR,
    CONFIG,
    EVAL_FILE,
    METRICS,
    REPORT_FILE,
    SUMMARY,
    TENSORBOARD_DIR,
    TRACKING_FILE,
    WEIGHTS,
)
from wae_toolkit.runs.read import read_json_object, read_metrics, read_run_config
from wae_toolkit.runs.restore import LoadedRun, load_run

__all__ = [
    "RUN_FILES",
    "prepare_run_dir",
    "default_run_dir",
    "MetricsWriter",
    "LoadedRun",
    "load_run",
    # where the engine, the trackers and older code find them (runs.names, runs.read)
    "CONFIG",
    "METRICS",
    "WEIGHTS",
    "SUMMARY",
    "REPORT_FILE",
    "TRACKING_FILE",
    "TENSORBOARD_DIR",
    "read_metrics",
    "read_run_config",
]

#: Files a run writes; ``--overwrite`` removes exactly these and nothing else.
RUN_FILES = (
    CONFIG,
    METRICS,
    WEIGHTS,
    SUMMARY,
    EVAL_FILE,
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
RUN_DIRS = (CHECKPOINT_DIR, TENSORBOARD_DIR)


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

    if link_problem(path, "file") is not None:
        return False
    record, _ = read_json_object(path)
    return (
        record is not None
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
                f"allows at most {limit} per name: choose a shorter {setting('out')}."
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
                f"or empty folder for {setting('out')}."
            )
        if not overwrite:
            raise RunExistsError(
                f"The folder '{path}' already holds a run; choose another {setting('out')}, or "
                f"pass {setting('overwrite', True)} to replace that run's files."
            )
        old_run = [n for n in entries if n in RUN_FILES or n in RUN_DIRS]
        for name in old_run:
            problem = link_problem(path / name, "folder" if name in RUN_DIRS else "file")
            if problem:
                raise UsageError(
                    f"{setting('overwrite', True)} replaces only what a run wrote: {problem}"
                )
        return old_run
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(
            f"Cannot create the run folder '{path}': '{parent}' is a file; choose another "
            f"{setting('out')}."
        )
    if not os.access(parent, os.W_OK):
        raise UsageError(f"Cannot create the run folder '{path}': '{parent}' is not writable.")
    return []


def _written_by_a_run(folder: Path, name: str) -> bool:
    """Whether ``folder/name``, an entry of a run's subfolder, is a file a run writes."""
    from wae_toolkit.runs.names import is_checkpoint_file_name
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


def save_weights(path: Path, tensors: dict[str, Any]) -> None:
    """Save tensors as safetensors atomically (never through a link).

    Raises:
        RunWriteError: the file cannot be written (disk full...); the old one is kept.
    """
    from safetensors.torch import save

    from wae_toolkit.runs.safe_io import write_atomic

    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()})
    write_atomic(path, data)
