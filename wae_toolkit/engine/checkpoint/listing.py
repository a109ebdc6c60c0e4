"""Finding checkpoints in a run folder, and checking before training that they can be written."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from wae_toolkit.engine.checkpoint.format import (
    _OVERHEAD_BYTES,
    CheckpointError,
    InvalidCheckpointError,
    _read_document,
)
from wae_toolkit.errors import setting
from wae_toolkit.memory import format_bytes
from wae_toolkit.runs.names import CHECKPOINT_DIR, step_of
from wae_toolkit.runs.safe_io import (
    write_error,
)


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """The files named like checkpoints in ``RUN_DIR/checkpoints``, oldest step first.

    Temporary files of an interrupted write are hidden (their names start with a dot and end in
    ``.tmp``) and never listed. The files are not opened: use :func:`latest_checkpoint` for the
    newest one that is valid.
    """
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found: list[tuple[int, Path]] = []
    for path in folder.iterdir():
        step = step_of(path)
        if step is not None and path.is_file() and not path.is_symlink():  # never a user's link
            found.append((step, path))
    return [p for _, p in sorted(found)]


def newest_checkpoint(run_dir: str | Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest *valid* checkpoint of the run folder (``None`` when there is none), and the
    newer files that were skipped, each with the reason (cut short, damaged, not a checkpoint).

    Only headers are read, never the tensors, and nothing is unpickled.
    """
    skipped: list[tuple[Path, str]] = []
    try:
        paths = list_checkpoints(run_dir)
    except OSError:
        return None, skipped
    for path in reversed(paths):
        try:
            _read_document(path)
        except InvalidCheckpointError as exc:
            skipped.append((path, str(exc).partition(": ")[2].rstrip(".") or str(exc)))
            continue
        except OSError as exc:
            skipped.append((path, f"it cannot be read ({exc.strerror or exc})"))
            continue
        return path, skipped
    return None, skipped


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest *valid* checkpoint of the run folder, or ``None`` when there is none.

    Files are tried from the highest step down; one whose header is not a complete wae-toolkit
    checkpoint (cut short, damaged, or another kind of file under a checkpoint's name) is
    skipped, so a damaged newest file falls back to the previous checkpoint
    (:func:`newest_checkpoint` also says which files were skipped and why). Atomic writes never
    leave such a file; only damage from outside the toolkit does. The check reads the header
    only, never the tensors, and unpickles nothing; it never raises.
    """
    return newest_checkpoint(run_dir)[0]


def estimate_checkpoint_bytes(
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer | None] | None = None,
) -> int:
    """About how many bytes one checkpoint of these objects takes.

    Module state is counted exactly; an optimizer's state is counted exactly once it has some,
    and before its first step as two tensors per parameter (Adam's moments). One MiB is added
    for the RNG states and the header.
    """
    total = _OVERHEAD_BYTES
    for module in modules.values():
        total += sum(t.numel() * t.element_size() for t in module.state_dict().values())
    for opt in (optimizers or {}).values():
        if opt is None:
            continue
        if opt.state:
            total += sum(
                v.numel() * v.element_size()
                for entries in opt.state.values()
                for v in entries.values()
                if isinstance(v, Tensor)
            )
        else:
            total += sum(
                2 * p.numel() * p.element_size() for g in opt.param_groups for p in g["params"]
            )
    return total


def check_writable(run_dir: str | Path, needed_bytes: int) -> None:
    """Check, before training, that checkpoints can be written to ``run_dir``.

    Nothing is left behind: the nearest existing folder on the way to ``RUN_DIR/checkpoints``
    gets a small temporary file, created and removed, and its disk must have ``needed_bytes``
    free. Give room for ``keep + 1`` checkpoints (the new one is written before the oldest is
    deleted), e.g. ``(keep + 1) * estimate_checkpoint_bytes(...)``.

    Raises:
        CheckpointError: the folder cannot be created or written, or the disk has less than
            ``needed_bytes`` free.
    """
    target = Path(run_dir) / CHECKPOINT_DIR
    probe = target
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    what = f"checkpoints to '{target}'"
    if not probe.is_dir():
        raise CheckpointError(
            f"Cannot write {what}: '{probe}' is a file, so the folder cannot be created; choose "
            f"another {setting('out')}."
        )
    test = probe / f".wae-write-test.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(test, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"\0")
        finally:
            os.close(fd)
    except OSError as exc:
        raise write_error(exc, probe, what, cls=CheckpointError) from exc
    finally:
        try:
            test.unlink(missing_ok=True)
        except OSError:
            pass
    free = shutil.disk_usage(probe).free
    if free < needed_bytes:
        raise CheckpointError(
            f"Cannot write {what}: the disk holding '{probe}' has {format_bytes(free)} free and "
            f"the checkpoints need about {format_bytes(needed_bytes)}; free some space, keep fewer "
            f"checkpoints, or choose another {setting('out')}."
        )
