"""An exponential moving average of the weights (``ema``), kept by a callback.

After every optimisation step ``ema <- decay * ema + (1 - decay) * w`` for every parameter and
buffer (:class:`torch.optim.swa_utils.AveragedModel` with ``get_ema_multi_avg_fn``; the first
update copies the weights). The average is what the run evaluates, draws and exports: the loop
evaluates it, and when the run ends it becomes the run's ``model.safetensors``, the raw weights
being kept beside it in ``raw.safetensors``. It is saved in every checkpoint (module ``ema``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from wae_toolkit.engine.callbacks import Callback

__all__ = ["WeightAverage"]


class WeightAverage(Callback):
    """Updates the moving average of ``model``'s weights after every step, on the device (no
    synchronisation); ``averaged.module`` is a model of the same kind holding the average."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.model, self.decay = model, float(decay)
        self.averaged = AveragedModel(
            model, multi_avg_fn=get_ema_multi_avg_fn(self.decay), use_buffers=True
        )
        self.averaged.requires_grad_(False)

    @property
    def module(self) -> nn.Module:
        """The model holding the averaged weights."""
        module: nn.Module = self.averaged.module
        return module

    def on_step_end(self, step: int, epoch: int) -> None:
        with torch.no_grad():
            self.averaged.update_parameters(self.model)
