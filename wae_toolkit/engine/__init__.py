"""The training engine: the one loop (:mod:`~wae_toolkit.engine.loop`), its checkpoints
(:mod:`~wae_toolkit.engine.checkpoint`), faults and signals (:mod:`~wae_toolkit.engine.faults`),
encoder pre-training (:mod:`~wae_toolkit.engine.pretrain`), held-out evaluation during training
(:mod:`~wae_toolkit.engine.heldout`) and multi-process helpers
(:mod:`~wae_toolkit.engine.distributed`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wae_toolkit._lazy import lazy_getattr

if TYPE_CHECKING:
    from wae_toolkit.engine.loop import Callback, RunResult, train

__all__ = ["train", "Callback", "RunResult"]
__getattr__ = lazy_getattr(
    "wae_toolkit.engine", {"train": "loop", "Callback": "loop", "RunResult": "loop"}
)
