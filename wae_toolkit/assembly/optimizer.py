"""The model's optimizer, by name (``optimizer``) with its options (``optimizer_opts``).

Every optimizer gets ``lr``, and ``betas=(beta1, beta2)`` when it has betas; the options set any
other argument of its constructor. The default, Adam with the paper's betas and no options, is
:func:`~wae_toolkit.assembly.model.adam` (the fused kernel where torch has one). An adversarial
penalty's critic keeps its own optimizer.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from wae_toolkit.assembly.model import adam
from wae_toolkit.config.optimizers import OPTIMIZERS
from wae_toolkit.errors import UsageError, did_you_mean, setting, short_repr
from wae_toolkit.plugins.options import convert

__all__ = ["make_optimizer"]

#: Arguments the run's own settings give (``lr``, ``beta1``/``beta2``).
_FROM_SETTINGS = {"lr": ("lr",), "betas": ("beta1", "beta2")}


def _options(cls: type, name: str, given: dict[str, Any]) -> dict[str, Any]:
    """``given`` checked against ``cls``'s constructor and converted to its defaults' types."""
    params = {k: p for k, p in inspect.signature(cls).parameters.items() if k != "params"}
    out: dict[str, Any] = {}
    for key, value in given.items():
        if key in _FROM_SETTINGS:
            raise UsageError(
                f"The optimizer's {key} comes from "
                f"{' and '.join(setting(s) for s in _FROM_SETTINGS[key])}; drop it from "
                f"{setting('optimizer_opts')}."
            )
        if key not in params:
            allowed = ", ".join(k for k in params if k not in _FROM_SETTINGS)
            raise UsageError(
                f"Unknown option {short_repr(key)} for the optimizer '{name}'."
                f"{did_you_mean(key, list(params))} Options: {allowed}."
            )
        default = params[key].default
        if isinstance(default, bool):
            kind: Any = bool
        elif isinstance(default, int | float):
            kind = float  # numbers (torch writes some float defaults as 0)
        else:
            kind = type(default) if default not in (None, inspect.Parameter.empty) else Any
        try:
            out[key] = convert(value, kind)
        except ValueError as exc:
            raise UsageError(f"The optimizer '{name}' option {key}: {exc}.") from None
    return out


def make_optimizer(config: Any, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """The optimizer ``config.optimizer`` names for ``params``, with ``config.optimizer_opts``.

    Raises:
        UsageError: an unknown option, or a value the optimizer refuses (one sentence).
    """
    name, given = config.optimizer, dict(config.optimizer_opts)
    betas = (config.beta1, config.beta2)
    if name == "adam" and not given:
        return adam(params, config.lr, betas)
    cls = getattr(torch.optim, OPTIMIZERS[name])
    kwargs = {"lr": config.lr} | _options(cls, name, given)
    if "betas" in inspect.signature(cls).parameters:
        kwargs["betas"] = betas
    try:
        optimizer: torch.optim.Optimizer = cls(params, **kwargs)
    except (TypeError, ValueError) as exc:
        detail = " ".join(str(exc).split())[:160]
        raise UsageError(f"The optimizer '{name}' refuses these options ({detail}).") from None
    return optimizer
