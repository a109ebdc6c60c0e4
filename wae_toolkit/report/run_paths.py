"""Which run folders ``wae report PATH...`` reports on.

A path is a run folder (it holds a ``config.json``), or a folder of run folders (``runs/``:
every folder in it that holds a ``config.json``, by name). Among several paths (``runs/*``),
one that is neither (the MLflow store ``runs/mlartifacts``, ``runs/mlflow.db``, a run whose
``config.json`` is damaged) is left out with a note; a single path that is neither is refused,
as is a path that does not exist.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from wae_toolkit.errors import UsageError
from wae_toolkit.runs.names import CONFIG
from wae_toolkit.runs.read import RunFolder, check_run_folder, read_run

__all__ = ["SkippedPathWarning", "find_runs", "resolved"]


class SkippedPathWarning(UserWarning):
    """A path given to ``wae report`` that holds no run was left out (the page says so too)."""


def resolved(path: Path) -> Path:
    """``path`` with its links resolved, or as an absolute path when they cannot be (a loop)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # Python < 3.13 raises RuntimeError on a link loop
        return path.absolute()


def _runs_inside(folder: Path) -> list[Path]:
    """The folders in ``folder`` that hold a ``config.json``, by name (none when unreadable)."""
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError:
        return []
    return [p for p in entries if p.is_dir() and os.path.lexists(p / CONFIG)]


def _why_not(path: Path) -> tuple[str, UsageError] | None:
    """Why ``path`` is not a run folder that can be reported on, in a few words and as the
    error that refuses it alone (None when it is a run folder)."""
    try:
        check_run_folder(path)
        _ = read_run(path).record  # a damaged config.json: one sentence
    except UsageError as exc:
        if path.is_file():
            return "a file, not a run folder", exc
        if not (path / CONFIG).is_file():
            return f"not a run folder: no {CONFIG}", exc
        return f"its {CONFIG} is damaged", exc
    return None


def find_runs(paths: Sequence[str | Path]) -> tuple[list[RunFolder], list[str]]:
    """The runs named by ``paths`` (run folders, or folders of runs), and the paths left out
    because they hold no run, each as ``'PATH' (why)``.

    Raises:
        UsageError: no path, a path that does not exist, a path given twice, a single path that
            holds no run, or no run among all the paths (one sentence).
    """
    given = [Path(p) for p in paths]
    if not given:
        raise UsageError("Give at least one run folder to report on.")
    seen: set[Path] = set()
    for p in given:
        if not p.exists() and not p.is_symlink():
            check_run_folder(p)  # "does not exist": a typo is never left out
        if resolved(p) in seen:
            raise UsageError(f"The run '{p}' is given twice; name each run folder once.")
        seen.add(resolved(p))
    found: list[Path] = []
    skipped: list[str] = []
    problems: list[UsageError] = []
    for p in given:
        inside = _runs_inside(p) if p.is_dir() and not (p / CONFIG).exists() else []
        for q in inside or [p]:
            problem = _why_not(q)
            if problem is None:
                found.append(q)
            elif inside or len(given) > 1:
                skipped.append(f"'{q}' ({problem[0]})")
                problems.append(problem[1])
            else:
                raise problem[1]
    unique: list[Path] = []
    keys: set[Path] = set()
    for q in found:  # a run named both by itself and through its folder counts once
        if resolved(q) not in keys:
            keys.add(resolved(q))
            unique.append(q)
    if not unique:
        if len(problems) == 1:
            raise problems[0]
        raise UsageError(
            f"None of the {len(given)} paths holds a run folder written by 'wae run' "
            f"({'; '.join(skipped[:3])}{'; ...' if len(skipped) > 3 else ''})."
        )
    labels = _labels(unique)
    return [read_run_labelled(q, label) for q, label in zip(unique, labels, strict=True)], skipped


def read_run_labelled(path: Path, label: str) -> RunFolder:
    from wae_toolkit.engine.checkpoint import latest_checkpoint

    return read_run(path, label, latest_checkpoint=latest_checkpoint)


def _labels(paths: Sequence[Path]) -> list[str]:
    """Short names of the runs: the folder names, or the paths when names repeat."""
    names = [resolved(p).name or str(p) for p in paths]
    if len(set(names)) == len(names):
        return names
    return [str(p) for p in paths]
