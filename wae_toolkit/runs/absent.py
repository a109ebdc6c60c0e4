"""Stand-ins for a saved run's cost and penalty when they are not installed.

Only training and evaluation use them, so :func:`wae_toolkit.runs.restore.load_run` builds the
model with these in their place (the weights of the encoder, the decoder and the prior do not
depend on them) and a :class:`~wae_toolkit.runs.restore.PluginMissingWarning` says so. Calling a
stand-in raises a :class:`~wae_toolkit.errors.UsageError` saying what to install.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from wae_toolkit.errors import UsageError
from wae_toolkit.plugins.interfaces import Cost, LatentPenalty

__all__ = ["AbsentCost", "AbsentPenalty", "STAND_INS", "unavailable"]


def unavailable(path: Any, kind: str, record: dict[str, Any]) -> str:
    """The sentence a stand-in raises: which plugin is missing and how to install it."""
    dist, version = record.get("distribution"), record.get("version")
    return (
        f"The run '{path}' was loaded without its {kind} '{record.get('name')}' ({dist} "
        f"{version} is not installed), and this needs it; install it (pip install "
        f"{dist}=={version}) and load the run again."
    )


class AbsentCost(Cost):
    """Stands in for a run's cost that is not installed; calling it says what to install."""

    def __init__(self) -> None:
        self.reason = "This run's cost is not installed."

    def cost(self, x: Tensor, x_hat: Tensor) -> Tensor:
        raise UsageError(self.reason)


class AbsentPenalty(LatentPenalty):
    """Stands in for a run's penalty that is not installed; calling it says what to install."""

    def __init__(self) -> None:
        super().__init__()
        self.reason = "This run's penalty is not installed."

    def forward(self, z_q: Tensor, z_p: Tensor) -> Tensor:
        raise UsageError(self.reason)


#: kind -> the stand-in class.
STAND_INS: dict[str, type] = {"cost": AbsentCost, "penalty": AbsentPenalty}
