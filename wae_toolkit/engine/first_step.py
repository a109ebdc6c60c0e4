"""The first training step checks what the cost and the penalty return.

A penalty that returns one value per sample instead of a scalar would otherwise end in torch's
long traceback from the backward pass (``grad can be implicitly created only for scalar
outputs``), and a cost that returns a scalar would train on without a word. So until the first
step a process trains is done (a resumed run's too; the held-out evaluation when training
starts comes before it), the cost and the penalty are called through a check: the cost returns
a floating-point tensor ``(B,)``, the penalty a floating-point scalar (shape ``()``), both
differentiable in their inputs, and finite where their inputs are. A plugin that breaks this is
refused in one sentence naming its registered name and class, what it returned and what its
interface asks. Later steps run exactly as configured (compiled or not): no check, no
synchronisation with the host.
"""

from __future__ import annotations

from typing import Any

import torch

from wae_toolkit.engine.faults import BadSteps, NonFiniteError
from wae_toolkit.errors import PluginLoadError

__all__ = ["watch_plugins", "PluginOutputError"]

#: What each interface asks of the value it returns, as the message says it.
_CONTRACT = {
    "cost": "a Cost returns one cost per sample, a floating-point tensor of shape (B,) "
    "differentiable in x_hat",
    "penalty": "a LatentPenalty returns a floating-point scalar, a tensor of shape () "
    "differentiable in z_q; reduce it with .mean() or .sum()",
}


class PluginOutputError(PluginLoadError):
    """A cost or penalty returned something its interface does not allow."""


def watch_plugins(fns: Any, comps: Any, bad_steps: BadSteps) -> None:
    """Check the cost's and the penalty's outputs until the first training step is done (the
    next call of ``fns.objective``, the :class:`~wae_toolkit.engine.step.StepFunctions` of
    ``comps``, the run's components; a held-out evaluation before it is checked too), and let
    ``bad_steps`` name the run's plugins in its messages."""
    bad_steps.plugins = comps.plugins
    first = _FirstCall(fns, comps.plugins, bad_steps.allowed)
    first.wrap(comps.cost, "cost", "cost")
    first.wrap(comps.penalty, "penalty", "forward")
    fns.objective = first


def _plugin(kind: str, record: dict[str, Any]) -> str:
    """``"The penalty 'name' (module:Class)"``: the registered name and the class."""
    name, cls = record.get("name"), record.get("class")
    return f"The {kind} '{name}'" + (f" ({cls})" if cls and cls != name else "")


def _described(value: Any) -> str:
    if not isinstance(value, torch.Tensor):
        return f"a {type(value).__name__} (not a tensor)"
    return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"


class _FirstCall:
    """``fns.objective`` for one call: the uncompiled objective, with the cost and the penalty
    checked, then ``fns.objective`` is what it was and the plugins are no longer checked."""

    def __init__(self, fns: Any, plugins: dict[str, dict[str, Any]], allowed: int) -> None:
        self.fns, self.plugins, self.allowed = fns, plugins, allowed
        self.later = fns.objective
        self.wrapped: list[tuple[Any, str]] = []
        self.finite: list[tuple[str, torch.Tensor, torch.Tensor]] = []

    def wrap(self, plugin: Any, kind: str, method: str) -> None:
        """Check what ``plugin.method`` returns (an attribute of the instance, which shadows
        the class's method until :meth:`unwrap` removes it)."""
        original = getattr(plugin, method)

        def checked(*args: Any, **kwargs: Any) -> Any:
            value = original(*args, **kwargs)
            tensors = [t for t in (*args, *kwargs.values()) if isinstance(t, torch.Tensor)]
            batch = len(args[0]) if args and isinstance(args[0], torch.Tensor) else 0
            self.check(kind, value, tensors, batch)
            return value

        setattr(plugin, method, checked)
        self.wrapped.append((plugin, method))

    def unwrap(self) -> None:
        for plugin, method in self.wrapped:
            if method in vars(plugin):
                delattr(plugin, method)
        self.wrapped = []

    def __call__(self, x: Any, z_q: Any, log_var: Any, pen_inputs: Any) -> dict[str, Any]:
        self.fns.objective = self.later
        try:
            terms: dict[str, Any] = self.fns._objective(x, z_q, log_var, pen_inputs)
        finally:
            self.unwrap()
        self._check_finite()
        return terms

    def check(self, kind: str, value: Any, inputs: list[torch.Tensor], batch: int) -> None:
        """Refuse ``value`` (what the ``kind`` plugin returned for ``inputs``) when its type,
        shape, dtype or gradient is not what the interface asks; in training, note whether it
        is finite."""
        shape = (batch,) if kind == "cost" else ()
        training = torch.is_grad_enabled() and any(t.requires_grad for t in inputs)
        wrong = ""
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
            wrong = _described(value)
        elif not value.is_floating_point():
            wrong = _described(value)
        elif training and not value.requires_grad:
            wrong = f"{_described(value)} that is not differentiable (no gradient)"
        if wrong:
            here = f" (here {shape})" if kind == "cost" else ""
            raise PluginOutputError(
                f"{_plugin(kind, self.plugins.get(kind, {}))} returned {wrong}, but "
                f"{_CONTRACT[kind]}{here}."
            )
        if training and self.allowed == 0 and not _distributed():
            ins = torch.stack([torch.isfinite(t).all() for t in inputs]).all()
            self.finite.append((kind, ins, torch.isfinite(value.detach()).all()))

    def _check_finite(self) -> None:
        """Refuse a plugin that returned NaN or infinity for finite inputs (one transfer)."""
        if not self.finite:
            return
        noted, self.finite = self.finite, []
        flags = torch.stack([torch.stack([a, b]) for _, a, b in noted]).tolist()
        for (kind, _, _), (inputs_ok, value_ok) in zip(noted, flags, strict=True):
            if inputs_ok and not value_ok:
                raise NonFiniteError(
                    f"{_plugin(kind, self.plugins.get(kind, {}))} returned NaN or infinite "
                    "values on the first training step although its inputs were finite; check "
                    "its options and its arithmetic (a division by zero, the log or square "
                    "root of 0)."
                )


def _distributed() -> bool:
    """In multi-process training each rank sees its own data: a rank that stopped alone would
    leave the others waiting, so only the deterministic checks (types, shapes) run."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()
