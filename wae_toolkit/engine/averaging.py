"""An exponential moving average of the weights (``ema``), kept by a callback.

After the ``n``-th optimisation step (``n = 1, 2, ...``) every parameter and buffer is updated as
``ema <- d_n * ema + (1 - d_n) * w`` with ``d_n = min(decay, 1 - 1 / n)``: until
``n = 1 / (1 - decay)`` (200 steps for 0.995) the average is the plain mean of every step's
weights so far (the first update copies them), then an exponential moving average with
``decay``. Without that start, the average of a short run would still be mostly its first
steps' weights (``decay ** n`` of them). The decay is worked out on the host from a step count
the callback keeps, so updating costs no synchronisation with the device.

The average is what the run evaluates, draws and exports: the loop evaluates it, and when the
run ends it becomes the run's ``model.safetensors``, the raw weights being kept beside it in
``raw.safetensors``. It is saved in every checkpoint (module ``ema``, an
:class:`torch.optim.swa_utils.AveragedModel` whose ``n_averaged`` counts the updates).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from wae_toolkit.engine.callbacks import Callback

__all__ = ["WeightAverage", "ema_decay"]


def ema_decay(decay: float, n: int) -> float:
    """The decay of the ``n``-th update (``n >= 1``): ``min(decay, 1 - 1 / n)``."""
    return min(decay, 1.0 - 1.0 / n)


class WeightAverage(Callback):
    """Updates the moving average of ``model``'s weights after every step, on the device (no
    synchronisation); ``averaged.module`` is a model of the same kind holding the average."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.model, self.decay = model, float(decay)
        self.averaged = AveragedModel(model, use_buffers=True)
        self.averaged.requires_grad_(False)
        self._updates: int | None = None  # read from n_averaged at the first update (resume)
        # (average, weights) tensors, floating-point and not: the same tensors all run long
        # (checkpoints are restored into them in place), so listed once, not every step
        pairs = list(
            zip(
                (t.detach() for t in (*self.module.parameters(), *self.module.buffers())),
                (t.detach() for t in (*model.parameters(), *model.buffers())),
                strict=True,
            )
        )
        floats = [p for p in pairs if p[0].is_floating_point()]
        self._floats = ([a for a, _ in floats], [w for _, w in floats])
        self._all = ([a for a, _ in pairs], [w for _, w in pairs])
        self._counters = [p for p in pairs if not p[0].is_floating_point()]

    @property
    def module(self) -> nn.Module:
        """The model holding the averaged weights."""
        module: nn.Module = self.averaged.module
        return module

    def on_step_end(self, step: int, epoch: int) -> None:
        if self._updates is None:  # once per run: a restored checkpoint sets n_averaged
            self._updates = int(self.averaged.n_averaged)
        n = self._updates + 1
        with torch.no_grad():
            if n == 1:
                torch._foreach_copy_(*self._all)
            else:
                if self._floats[0]:
                    weight = 1.0 - ema_decay(self.decay, n)
                    torch._foreach_lerp_(*self._floats, weight)
                for a, w in self._counters:  # counters (BatchNorm's num_batches_tracked)
                    a.copy_(w)
            self.averaged.n_averaged.add_(1)
        self._updates = n
