"""The Weights & Biases tracker (``wae run --track wandb``): the run's metrics, configuration,
final evaluation and figures in a W&B run; see :mod:`wae_toolkit.trackers.base` for what every
tracker logs.

W&B keeps its files in ``RUN_DIR/wandb/`` (``offline-run-*`` with ``WANDB_MODE=offline``, which
``wandb sync`` uploads later). The toolkit never chooses the mode: W&B's own settings do
(``WANDB_MODE``, ``wandb offline``, ``wandb login``). Each point is logged with its step as the
``step`` value of its row (W&B's x-axis for every metric), since a run's records do not come in
step order (``pretrain`` steps, then the evaluation at step 0).
"""

from __future__ import annotations

import json
import struct
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wae_toolkit.engine.callbacks import RunResult
from wae_toolkit.errors import UsageError, WaeError, setting
from wae_toolkit.trackers.base import (
    _Tracker,
    final_metrics,
    first_line,
    read_tracking,
    run_parameters,
    save_tracking,
)

__all__ = ["WandbTracker", "wandb_steps", "WANDB_DIR", "STEP"]

#: The folder of the run folder where W&B writes its files.
WANDB_DIR = "wandb"
#: The x-axis of every logged metric: the training step (pre-training steps for ``pretrain/*``).
STEP = "step"
#: Modes in which W&B does not need a login.
_LOCAL_MODES = ("offline", "dryrun", "disabled")
#: The transaction log of a W&B run (``run-ID.wandb``): LevelDB's log format, 32 KiB blocks of
#: chunks (``crc32c:u32 length:u16 type:u8`` then the bytes), after a 7-byte header.
_BLOCK = 32768
_CHUNK_HEADER = struct.Struct("<IHB")
_FILE_HEADER = struct.Struct("<4sHB")
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _import_wandb() -> Any:
    try:
        import wandb
    except ImportError as exc:
        raise UsageError(
            f"{setting('track', 'wandb')} needs W&B, which cannot be imported "
            f"({first_line(exc)}): pip install 'wae-toolkit[wandb]'."
        ) from exc
    # Quiet: W&B's messages go to its own logs, and it never prompts for a login.
    wandb.setup(settings=wandb.Settings(silent=True))
    return wandb


def _transactions(path: Path) -> Iterator[bytes]:
    """The records of a W&B transaction log, up to the first incomplete one (a killed
    process's last chunk)."""
    data = path.read_bytes()
    if len(data) < _FILE_HEADER.size or _FILE_HEADER.unpack_from(data)[0] != b":W&B":
        return
    pos, parts = _FILE_HEADER.size, b""
    while pos + _CHUNK_HEADER.size <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _CHUNK_HEADER.size:  # a block's padding
            pos += left
            continue
        _, length, kind = _CHUNK_HEADER.unpack_from(data, pos)
        start = pos + _CHUNK_HEADER.size
        if kind == 0 or start + length > len(data):
            return
        chunk, pos = data[start : start + length], start + length
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            parts = chunk
        elif kind == _MIDDLE:
            parts += chunk
        elif kind == _LAST:
            yield parts + chunk


def wandb_steps(folder: Path, run_id: str) -> dict[str, int]:
    """The last :data:`STEP` of every metric that W&B's files in ``folder`` (``RUN_DIR/wandb``)
    hold for the run ``run_id`` (none: ``{}``)."""
    from wandb.proto import wandb_internal_pb2 as pb

    held: dict[str, int] = {}
    for path in sorted(folder.glob(f"*-{run_id}/run-{run_id}.wandb")):
        try:
            for raw in _transactions(path):
                record = pb.Record()  # type: ignore[attr-defined]
                record.ParseFromString(raw)
                if record.WhichOneof("record_type") != "history":
                    continue
                # a logged name is one key; an image's fields are keys nested in its name
                row = {
                    item.key or item.nested_key[0]: item.value_json
                    for item in record.history.item
                    if item.key or item.nested_key
                }
                step = json.loads(row.pop(STEP, "null"))
                if not isinstance(step, int | float):
                    continue
                for key in row:
                    if not key.startswith("_"):
                        held[key] = max(held.get(key, -1), int(step))
        except (OSError, ValueError) as exc:  # unreadable: the points are logged again
            warnings.warn(f"Could not read '{path}': {first_line(exc)}", RuntimeWarning, 2)
    return held


class WandbTracker(_Tracker):
    """Logs a run to Weights & Biases: metrics, the configuration, the final evaluation and the
    figures.

    Args:
        tracking_uri: not used (W&B's server is W&B's setting: ``WANDB_BASE_URL``).
        experiment: the W&B project; the entity is W&B's default (``WANDB_ENTITY``).

    Attributes:
        run_id: the W&B run's id, once the run started.
    """

    name = "W&B"
    run_id: str | None = None
    run: Any = None

    def check(self) -> None:
        """Check, before the run folder is written, that W&B can log: in online mode, that it
        has credentials (``wandb login``, ``WANDB_API_KEY``; silenced, W&B does not prompt)."""
        wandb = _import_wandb()
        try:
            if wandb.setup().settings.mode not in _LOCAL_MODES:
                wandb.login(verify=False)
        except Exception as exc:
            raise WaeError(
                f"W&B tracking failed: {first_line(exc)} To log to the run folder only, set "
                "WANDB_MODE=offline."
            ) from exc

    def _open(self, run_dir: Path, record: dict[str, Any], resumed: bool) -> None:
        wandb = _import_wandb()
        saved = read_tracking(run_dir).get("wandb") if resumed else None
        if not isinstance(saved, dict) or not saved.get("run_id"):
            saved = {}
        run_id = str(saved["run_id"]) if saved else None
        if run_id is not None:
            self._held = wandb_steps(run_dir / WANDB_DIR, run_id)
        try:
            run = wandb.init(
                dir=str(run_dir.resolve()),
                project=saved.get("project") or self.experiment,
                entity=saved.get("entity") or None,
                id=run_id,
                resume="allow" if run_id else None,
                name=run_dir.name,
                config=run_parameters(record),
                allow_val_change=True,  # a resume may change the device or the threads
                reinit="create_new",  # never the user's own run, if one is active
                settings=wandb.Settings(silent=True, console="off"),
            )
            run.define_metric(STEP, hidden=True)
            run.define_metric("*", step_metric=STEP)
        except WaeError:
            raise
        except Exception as exc:
            raise WaeError(f"W&B tracking failed: {first_line(exc)}") from exc
        self.run, self.run_id = run, str(run.id)
        mode = str(run.settings.mode)
        entry: dict[str, Any] = {"run_id": self.run_id, "project": run.project, "mode": mode}
        if mode not in _LOCAL_MODES:
            entry |= {"entity": run.entity, "url": run.url}
        save_tracking(run_dir, "wandb", entry)

    def _log(self, points: list[tuple[str, float, int]]) -> None:
        row: dict[str, Any] = {}
        for tag, value, step in points:  # one row per step, in the order of the file
            if row and row[STEP] != step:
                self.run.log(row)
                row = {}
            row[STEP] = step
            row[tag] = value
        if row:
            self.run.log(row)

    def _finish(self, result: RunResult) -> None:
        import wandb

        step = int(result.summary.get("steps", 0))
        self._log([(k, v, step) for k, v in final_metrics(result.summary).items()])
        figures = {
            f"figures/{path.stem}": wandb.Image(str(path))
            for path in result.files
            if path.suffix == ".png" and path.is_file()
        }
        if figures:
            self.run.log({STEP: step, **figures})
        self.run.finish()

    def _close(self, error: BaseException) -> None:
        code = getattr(error, "exit_code", None)  # 130 or 143 for an interruption
        if not isinstance(code, int) or code == 0:
            code = 130 if isinstance(error, KeyboardInterrupt) else 1
        try:
            self.run.summary["wae.error"] = first_line(error)[:5000]
            self.run.finish(exit_code=code)
        except Exception as exc:  # the run's own error is the one to report
            warnings.warn(
                f"Could not end the W&B run {self.run_id}: {first_line(exc)}",
                RuntimeWarning,
                stacklevel=3,
            )
