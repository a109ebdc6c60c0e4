"""The names of what a run folder holds, shared by what writes it (:mod:`~wae_toolkit.runs.folder`,
the engine, the trackers) and what reads it back (:mod:`~wae_toolkit.runs.read`)."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = [
    "CONFIG",
    "METRICS",
    "WEIGHTS",
    "RAW_WEIGHTS",
    "BEST_WEIGHTS",
    "WEIGHT_FILES",
    "SUMMARY",
    "EVAL_FILE",
    "REPORT_FILE",
    "TRACKING_FILE",
    "TENSORBOARD_DIR",
    "WANDB_DIR",
    "CHECKPOINT_DIR",
    "checkpoint_path",
    "is_checkpoint_file_name",
    "step_of",
]

#: The resolved configuration: every plugin's name, options, distribution and version, the data
#: set's shape, the toolkit and torch versions.
CONFIG = "config.json"
#: One JSON object per line: step losses, epoch summaries, evaluations.
METRICS = "metrics.jsonl"
#: The weights (model, prior, penalty critic), never a pickle.
WEIGHTS = "model.safetensors"
#: With ``ema``: the raw weights of the last step (``model.safetensors`` holds their average).
RAW_WEIGHTS = "raw.safetensors"
#: The weights of the best held-out evaluation of ``monitor``.
BEST_WEIGHTS = "best.safetensors"
#: ``load(run, which=...)``: which weights file each choice reads.
WEIGHT_FILES = {"last": WEIGHTS, "best": BEST_WEIGHTS, "raw": RAW_WEIGHTS}
#: Final metrics and the list of files; a run that did not finish has none.
SUMMARY = "summary.json"
#: ``wae eval`` writes the run's offline metrics here.
EVAL_FILE = "eval.json"
#: ``wae report RUN`` writes the run's report here.
REPORT_FILE = "report.html"
#: With ``--track mlflow`` or ``wandb``: the tracker runs that ``--resume`` continues.
TRACKING_FILE = "tracking.json"
#: With ``--track tensorboard``: the run's TensorBoard event files.
TENSORBOARD_DIR = "tensorboard"
#: With ``--track wandb``: W&B's files of the run.
WANDB_DIR = "wandb"
#: The subfolder that holds the checkpoints, ``step-00001234.safetensors``.
CHECKPOINT_DIR = "checkpoints"
_NAME_RE = re.compile(r"^step-(\d+)\.safetensors$")
#: The hidden temporary file of a checkpoint being written.
_TMP_RE = re.compile(r"^\.step-\d+\.safetensors\.[^/]*\.tmp$")


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    """The file of the checkpoint of ``step``: ``RUN_DIR/checkpoints/step-00001234.safetensors``."""
    return Path(run_dir) / CHECKPOINT_DIR / f"step-{step:08d}.safetensors"


def is_checkpoint_file_name(name: str) -> bool:
    """Whether ``name`` is a checkpoint's file name or one of its temporary files."""
    return bool(_NAME_RE.match(name) or _TMP_RE.match(name))


def step_of(path: Path) -> int | None:
    """The step a checkpoint's file name says, or ``None`` for another name."""
    match = _NAME_RE.match(path.name)
    return int(match.group(1)) if match else None
