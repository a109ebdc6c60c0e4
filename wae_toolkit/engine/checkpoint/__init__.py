"""Checkpoints for resumable training: one safetensors file per checkpoint, written atomically.

A run folder keeps its checkpoints in a ``checkpoints`` subfolder::

    RUN_DIR/checkpoints/step-00001234.safetensors

Each file holds *everything* needed to continue at that step, so that a checkpoint is either
complete or absent:

- tensors: every module's ``state_dict`` (``module.<name>.<key>``), every optimizer's state
  tensors (``optim.<name>.state.<index>.<key>``), the global torch RNG state (``rng.torch``), the
  CUDA RNG states when CUDA is initialised (``rng.cuda.<device>``), every named
  ``torch.Generator``'s state (``generator.<name>``), the state tensors of schedulers
  (``sched.<name>.<path>``) and the tensors inside the caller's ``extra`` (``extra.<path>``);
- one JSON document in the safetensors metadata header (under :data:`METADATA_KEY`): the step,
  the optimizers' ``param_groups`` and non-tensor state, the schedulers' state, the Python
  ``random`` and NumPy global RNG states, versions, and the caller's ``extra``. Tensors inside
  that JSON are replaced by references to the tensors above, so nothing is ever pickled.

Writing: the file is serialised in memory, written to a hidden temporary file in the same folder
(``.step-00001234.safetensors.<pid>.<random>.tmp``), flushed and fsynced, renamed over its final
name with :func:`os.replace`, and the folder is fsynced. A process killed at any moment therefore
leaves the previous checkpoints and at most one hidden temporary file, which
:func:`list_checkpoints` never lists and the next :func:`save_checkpoint` removes. Older
checkpoints are deleted only once the new one is in place.

Reading: the header is parsed by this module (pure Python, bounded sizes), checked to be a
wae-toolkit checkpoint whose data exactly covers the file, and only then are the tensors decoded
by safetensors. ``torch.load`` and ``pickle`` are never used, so a pickle renamed to a
checkpoint's name is refused without running anything in it.

The library never prints: failures raise :class:`CheckpointError` (the file could not be written)
or :class:`InvalidCheckpointError` (the file is not a wae-toolkit checkpoint, or does not fit the
objects it is loaded into).
"""

from __future__ import annotations

from wae_toolkit.engine.checkpoint.format import (
    METADATA_KEY,
    CheckpointError,
    CheckpointSkippedWarning,
    InvalidCheckpointError,
    Stateful,
    read_document,
)
from wae_toolkit.engine.checkpoint.listing import (
    check_writable,
    estimate_checkpoint_bytes,
    latest_checkpoint,
    list_checkpoints,
    newest_checkpoint,
)
from wae_toolkit.engine.checkpoint.loading import (
    load_checkpoint,
)
from wae_toolkit.engine.checkpoint.saving import (
    save_checkpoint,
)
from wae_toolkit.runs.names import (
    CHECKPOINT_DIR,
    checkpoint_path,
    is_checkpoint_file_name,
    step_of,
)

__all__ = [
    "CHECKPOINT_DIR",
    "METADATA_KEY",
    "CheckpointError",
    "InvalidCheckpointError",
    "Stateful",
    "checkpoint_path",
    "list_checkpoints",
    "latest_checkpoint",
    "newest_checkpoint",
    "read_document",
    "CheckpointSkippedWarning",
    "is_checkpoint_file_name",
    "save_checkpoint",
    "load_checkpoint",
    "estimate_checkpoint_bytes",
    "check_writable",
    "step_of",
]
