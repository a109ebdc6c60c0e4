"""What the training loop does when something goes wrong: interruptions and non-finite steps.

* SIGINT and SIGTERM are turned into a request to stop by :class:`wae_toolkit.signals.StopSignals`;
  the loop then writes a checkpoint and raises :class:`TrainingInterrupted`.
* :class:`BadSteps` finds steps whose gradients are not finite *on the device*, without a
  synchronisation per step: it hands the fused Adam kernel a ``found_inf`` flag, so such a step's
  update is dropped by the optimizer itself, and reads the flags back only when the loop logs or
  checkpoints. Past ``skip_bad_steps`` of them it raises :class:`NonFiniteError` naming the first
  bad step and the term (cost, penalty, critic) that was not finite.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from wae_toolkit.errors import WaeError, setting, setting_name

__all__ = [
    "BadSteps",
    "TrainingInterrupted",
    "NonFiniteError",
]


class TrainingInterrupted(WaeError):
    """Training stopped on SIGINT or SIGTERM after writing a checkpoint."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


class NonFiniteError(WaeError):
    """A loss or gradient became NaN or infinite more often than allowed."""


class BadSteps:
    """Drops the updates of steps with non-finite gradients and counts them, on the device.

    Works with optimizers that accept a ``found_inf`` tensor (torch's fused Adam: the update and
    the step count are skipped inside the kernel when the flag is 1). With other optimizers the
    flags are still recorded, but the update of a bad step is not dropped.

    Args:
        optimizer: the model's optimizer.
        allowed: how many bad steps may be skipped before :meth:`check` raises.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, allowed: int) -> None:
        self.optimizer = optimizer
        self.allowed = allowed
        self.total = 0
        self._params = [p for g in optimizer.param_groups for p in g["params"]]
        device = self._params[0].device if self._params else torch.device("cpu")
        self._one = torch.ones((), device=device)
        self._drops = bool(optimizer.defaults.get("fused"))
        self._flags: list[tuple[int, torch.Tensor]] = []
        #: The run's plugins as its ``config.json`` records them (kind -> ``name``, ``class``,
        #: ``options``), so that the message names the cost or penalty that went bad and only
        #: options it has; set by :func:`wae_toolkit.engine.first_step.watch_plugins`.
        self.plugins: dict[str, dict[str, Any]] = {}

    def before_step(self, step: int, check_gradients: bool = True) -> None:
        """Flag step ``step`` (1-based) if any gradient is not finite; call before ``step()``.
        With ``check_gradients=False`` (a gradient scaler owns them) only the step's losses are
        checked, by :meth:`check`."""
        grads = [p.grad for p in self._params if p.grad is not None] if check_gradients else []
        found = torch.zeros((), device=self._one.device)
        if not check_gradients:
            self._flags.append((step, found))
            return
        if grads:
            by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
            for g in grads:
                by_dtype.setdefault(g.dtype, []).append(g)
            for group in by_dtype.values():
                torch._amp_foreach_non_finite_check_and_unscale_(group, found, self._one)
        if self._drops:
            self.optimizer.found_inf = found  # type: ignore[attr-defined]
            self.optimizer.grad_scale = None  # type: ignore[attr-defined]
        self._flags.append((step, found))

    def check(self, logs: dict[str, list[torch.Tensor]] | None = None) -> None:
        """Read the flags since the last check (one transfer) and raise past the allowance.

        ``logs`` are the per-step loss terms, oldest first, whose last entries are the steps
        flagged since the last check (``cost``, ``penalty``, ``critic_loss``); a step is bad when
        its gradients or any of these terms are not finite (a diverging critic does not show in
        the model's gradients).

        Raises:
            NonFiniteError: more than ``allowed`` bad steps so far.
        """
        if not self._flags:
            return
        n = len(self._flags)
        steps = [s for s, _ in self._flags]
        rows = {"gradients": torch.stack([f for _, f in self._flags])}
        for key in _TERMS:
            values = (logs or {}).get(key)
            if values is not None and len(values) >= n:
                rows[key] = torch.stack(values[len(values) - n :]).float()
        self._flags = []
        table = dict(zip(rows, torch.stack(list(rows.values())).tolist(), strict=True))
        bad = [
            i
            for i in range(n)
            if table["gradients"][i]
            or any(not math.isfinite(table[k][i]) for k in table if k in _TERMS)
        ]
        self.total += len(bad)
        if self.total > self.allowed:
            first = bad[0]
            terms = [_TERMS[k] for k in _TERMS if k in table and not math.isfinite(table[k][first])]
            raise NonFiniteError(self.message(steps[first], terms))

    def message(self, step: int, terms: list[str]) -> str:
        what = (
            f"the {' and '.join(terms)} became NaN or infinite"
            if terms
            else "the gradients became NaN or infinite (the losses were finite)"
        )
        allowance = f"after {self.allowed} bad step(s) were skipped, " if self.allowed else ""
        # the plugins to look at: those whose term went bad (a critic's is its penalty's)
        bad = {"cost" if t == "cost" else "penalty" for t in terms}
        kinds = [k for k in ("penalty", "cost") if k in bad] or ["penalty"]
        named = [f"{k} '{self.plugins[k]['name']}'" for k in kinds if k in self.plugins]
        which = f" (the {' and the '.join(named)})" if named else ""
        fixes = [f"a lower {setting_name('lam')} or {setting_name('lr')}"]
        fixes += [_option_fix(k, self.plugins.get(k)) for k in kinds]
        fixes += [
            "checking the data for NaNs",
            f"{setting('skip_bad_steps', 'N')} to skip a few such steps",
        ]
        fixes = [f for f in fixes if f]
        return (
            f"Training stopped: {allowance}{what} at step {step}{which}. Usual fixes: "
            f"{', '.join(fixes[:-1])}, or {fixes[-1]}."
        )


def _option_fix(kind: str, record: dict[str, Any] | None) -> str:
    """The fix a plugin's options may offer, naming only options it has: a larger kernel
    bandwidth when it has one, else other values of its options; nothing when it has none."""
    record = record or {}
    options = sorted(record.get("options") or {})
    if "bandwidth" in options:
        return f"a larger kernel bandwidth ({setting(f'{kind}_opts', 'bandwidth=...')})"
    if not options:
        return ""
    return (
        f"other values of the {kind}'s options ({', '.join(options)}; "
        f"'wae plugins show {record.get('name')}' describes them)"
    )


#: The logged loss terms checked, and their names in messages.
_TERMS = {"cost": "cost", "penalty": "penalty", "critic_loss": "critic loss"}
