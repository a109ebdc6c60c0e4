"""The best weights and early stopping: a callback on the held-out evaluations.

At each evaluation the monitored metric (``monitor``, lower is better; ``test_objective`` is the
held-out cost plus lambda times the held-out penalty) is compared with the best so far. A new
best writes ``best.safetensors`` (the evaluated weights, the moving average when ``ema`` is on);
with ``patience``, the run stops once that many evaluations in a row brought no new best. The
record (best value, its epoch and step, evaluations since) is in the loop's state, so a resumed
run continues counting.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from torch import nn

from wae_toolkit.engine.callbacks import Callback
from wae_toolkit.engine.state import LoopState
from wae_toolkit.runs.folder import save_weights
from wae_toolkit.runs.names import BEST_WEIGHTS

__all__ = ["BestWeights", "weight_tensors"]


def weight_tensors(model: nn.Module, penalty: nn.Module) -> dict[str, Any]:
    """What a run's weights file holds: ``model.*`` and ``penalty.*`` tensors."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    return tensors | {f"penalty.{k}": v for k, v in penalty.state_dict().items()}


class BestWeights(Callback):
    """Keeps ``best.safetensors`` and stops after ``patience`` evaluations without a new best
    (see the module's docstring); rank 0 only, the loop makes every rank agree on the stop."""

    main_process_only = True

    def __init__(
        self,
        out: Path,
        model: nn.Module,
        penalty: nn.Module,
        state: LoopState,
        monitor: str,
        patience: int | None,
    ) -> None:
        self.out, self.model, self.penalty, self.state = out, model, penalty, state
        self.monitor, self.patience = monitor, patience

    def on_evaluate(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        value = metrics.get(self.monitor)
        if value is None or not math.isfinite(value):
            return
        best = self.state.best
        if not best or value < best["value"]:
            save_weights(self.out / BEST_WEIGHTS, weight_tensors(self.model, self.penalty))
            self.state.best = {"metric": self.monitor, "value": value, "epoch": epoch}
            self.state.best |= {"step": step, "since": 0}
            return
        best["since"] += 1
        if self.patience is not None and best["since"] >= self.patience:
            self.request_stop(
                f"early stopping: {self.monitor} did not improve for {best['since']} "
                f"evaluations (best {best['value']:.6g} at epoch {best['epoch']})"
            )
