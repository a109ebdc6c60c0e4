"""Resuming a run: the checkpoint to continue from, and the checks that it is the same run.

A resumed run continues from its newest intact checkpoint (a damaged newer one is skipped with a
:class:`~wae_toolkit.engine.checkpoint.CheckpointSkippedWarning`); its settings and data must be
the ones the checkpoint was written with (only where it runs may change).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from wae_toolkit.config.settings import RunConfig
from wae_toolkit.engine.checkpoint import (
    CheckpointSkippedWarning,
    latest_checkpoint,
    newest_checkpoint,
    read_document,
    step_of,
)
from wae_toolkit.errors import UsageError, on_cli, setting
from wae_toolkit.memory import format_bytes
from wae_toolkit.runs.folder import CONFIG, RUN_DIRS, RUN_FILES
from wae_toolkit.runs.safe_io import link_problem

__all__ = [
    "resume_point",
    "settings_record",
    "check_resume_fits",
    "resume_hint",
    "resume_command",
]


#: Settings that may differ between a run and its resumption (where it runs, not what it does).
_MAY_CHANGE_ON_RESUME = ("out", "overwrite", "threads", "device")


def resume_point(out: Path) -> tuple[Path, dict[str, Any]]:
    """The checkpoint to resume ``out`` from and its document; a clear error when there is none.

    Every file and folder a run writes must be a plain file or folder (not a link), and a
    damaged newer checkpoint is skipped with a :class:`CheckpointSkippedWarning` that says how
    many steps are redone.
    """
    if not (out / CONFIG).is_file():
        raise UsageError(f"Cannot resume '{out}': it holds no run (no {CONFIG}).")
    for name in (*RUN_FILES, *RUN_DIRS):
        problem = link_problem(out / name, "folder" if name in RUN_DIRS else "file")
        if problem:
            raise UsageError(f"Cannot resume '{out}': {problem}")
    path, skipped = newest_checkpoint(out)
    if path is None:
        if skipped:
            raise UsageError(
                f"Cannot resume '{out}': it has no checkpoint that can be read ({len(skipped)} "
                f"damaged file(s) skipped, the newest '{skipped[0][0].name}': {skipped[0][1]}); "
                f"start it again with {setting('overwrite', True)}."
            )
        raise UsageError(
            f"Cannot resume '{out}': it has no checkpoint (the run stopped before its first "
            f"one); start it again with {setting('overwrite', True)}."
        )
    if skipped:
        used = step_of(path) or 0
        lost = max((step_of(p) or 0) for p, _ in skipped) - used
        names = ", ".join(f"'{p.name}' ({why})" for p, why in skipped)
        warnings.warn(
            f"Skipped the damaged newer checkpoint(s) {names}; resuming from step {used}, so "
            f"{lost} step(s) are trained again.",
            CheckpointSkippedWarning,
            stacklevel=6,  # the caller of wae_toolkit.train
        )
    return path, read_document(path)


def settings_record(record: dict[str, Any]) -> dict[str, Any]:
    """The settings of a ``config.json`` record that a resumed run must keep, as plain JSON."""
    run = {k: v for k, v in record["run"].items() if k not in _MAY_CHANGE_ON_RESUME}
    return json.loads(json.dumps(run, default=str))


def check_resume_fits(
    path: Path, doc: dict[str, Any], settings: dict[str, Any], data: dict[str, Any]
) -> None:
    """Refuse to resume from ``path`` when the run's settings or data changed since it was
    written, naming what changed."""
    extra: dict[str, Any] = doc["extra"] if isinstance(doc.get("extra"), dict) else {}
    saved = extra.get("settings")
    if isinstance(saved, dict):
        # a setting newer than the checkpoint was, for it, at its default
        saved = {k: v for k, v in _defaults().items() if k in settings and k not in saved} | saved
        _check_epochs(path, saved.get("epochs"), settings.get("epochs"))
        saved = saved | {"epochs": settings.get("epochs")}  # more epochs continue the run
        changed = [
            f"{k}: {_short(saved.get(k))} in the checkpoint, {_short(settings.get(k))} now"
            for k in sorted(set(saved) | set(settings))
            if saved.get(k) != settings.get(k)
        ]
        if changed:
            raise UsageError(
                f"Cannot resume from '{path}': the run's settings in {CONFIG} changed after it "
                f"was written ({'; '.join(changed[:4])}{' ...' if len(changed) > 4 else ''}). "
                f"Training settings cannot change on resume ({_may_change()}): restore "
                f"{CONFIG}, or start a new run {_new_run()}."
            )
    saved_data = extra.get("data")
    if isinstance(saved_data, dict):
        changed = [
            f"{k} {_short(saved_data.get(k))} then, {_short(v)} now"
            for k, v in data.items()
            if k in saved_data and saved_data[k] != v
        ]
        if changed:
            raise UsageError(
                f"Cannot resume from '{path}': the data changed since it was written "
                f"({'; '.join(changed)}); resume with the same data, or start a new run."
            )


def _check_epochs(path: Path, saved: Any, now: Any) -> None:
    """A resumed run may train for more epochs than it was started with, never fewer."""
    if isinstance(saved, int) and isinstance(now, int) and now < saved:
        raise UsageError(
            f"Cannot resume from '{path}': the run's epochs changed after it was written "
            f"(epochs: {saved} in the checkpoint, {now} now); a resumed run may train for more "
            f"epochs ({setting('epochs')}), not fewer."
        )


def _defaults() -> dict[str, Any]:
    """Every setting's default, as :func:`settings_record` writes settings."""
    return settings_record({"run": RunConfig().to_dict()})


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def resume_hint(out: Path, processes: int, needed: int | None) -> str:
    """What to do after a failed write: resume from the newest checkpoint, or start again."""
    newest = latest_checkpoint(out)
    room = f" (the whole run needs about {format_bytes(needed)})" if needed else ""
    if newest is None:
        if not (out / CONFIG).is_file():
            return ""
        return (
            f"No checkpoint was written yet{room}: start the run again with "
            f"{setting('overwrite', True)}."
        )
    return (
        f"The newest checkpoint, '{newest}', is intact{room}: once the problem is fixed, continue "
        f"with {resume_command(out, processes)}."
    )


def resume_command(out: Path, processes: int = 1) -> str:
    """How the reader continues the run in ``out`` (see :func:`wae_toolkit.errors.setting`):
    ``'wae run --resume OUT'`` on the command line, ``train(config, resume=True)`` in Python."""
    if on_cli():
        nproc = f" --nproc {processes}" if processes > 1 else ""
        return f"'wae run --resume {out}{nproc}'"
    return f"wae_toolkit.train(config, resume=True), config.out being {json.dumps(str(out))}"


def _may_change() -> str:
    if on_cli():
        return "only --threads, --device, --nproc and a larger --epochs may"
    return "only threads=, device= and a larger epochs= may"


def _new_run() -> str:
    return "with --config" if on_cli() else "in another out="
