"""The optimizers a run may name (``optimizer``): a table of name -> class of ``torch.optim``.

The settings check the name here (without importing torch); the class is looked up when the run
builds its optimizer (:func:`wae_toolkit.assembly.optimizer.make_optimizer`). Adding one is one
line.
"""

from __future__ import annotations

__all__ = ["OPTIMIZERS", "DEFAULT_OPTIMIZER"]

#: ``optimizer`` name -> the name of its class in ``torch.optim``.
OPTIMIZERS: dict[str, str] = {
    "adam": "Adam",
    "adamw": "AdamW",
    "sgd": "SGD",
    "rmsprop": "RMSprop",
    "adagrad": "Adagrad",
    "adamax": "Adamax",
    "nadam": "NAdam",
    "radam": "RAdam",
}
#: Adam with the paper's betas (``beta1``, ``beta2``).
DEFAULT_OPTIMIZER = "adam"
