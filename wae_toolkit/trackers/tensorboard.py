"""The TensorBoard tracker (``wae run --track tensorboard``): event files in
``RUN_DIR/tensorboard/``; see :mod:`wae_toolkit.trackers.base` for what every tracker logs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from wae_toolkit.engine.callbacks import RunResult
from wae_toolkit.errors import UsageError, setting
from wae_toolkit.runs.folder import TENSORBOARD_DIR
from wae_toolkit.trackers.base import _Tracker, as_text, final_metrics, first_line, run_parameters

__all__ = ["TensorBoardTracker", "tensorboard_steps"]


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
    return as_text(value)


class TensorBoardTracker(_Tracker):
    """Writes TensorBoard event files to ``RUN_DIR/tensorboard/``: scalars, the configuration as
    text, hyper-parameters with the final metrics, and the figures as images."""

    name = "TensorBoard"
    writer: Any = None

    def _open(self, run_dir: Path, record: dict[str, Any], resumed: bool) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise UsageError(
                f"{setting('track', 'tensorboard')} needs TensorBoard, which cannot be imported "
                f"({first_line(exc)}): pip install 'wae-toolkit[tensorboard]'."
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
        final = {k: v for k, v in final_metrics(result.summary).items() if math.isfinite(v)}
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
