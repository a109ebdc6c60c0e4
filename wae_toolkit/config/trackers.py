"""The experiment trackers a run may name (``track``): a table of name -> tracker class.

The classes live in :mod:`wae_toolkit.trackers` and are imported only when a run uses them;
the settings read this table to check the names and the optional packages before anything is
trained. Adding a tracker is one module in ``wae_toolkit/trackers/`` and one line here.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["TRACKERS", "TrackerSpec", "DEFAULT_EXPERIMENT"]


#: The experiment (MLflow) or project (W&B) runs go to when ``experiment`` is not given.
DEFAULT_EXPERIMENT = "wae-toolkit"


class TrackerSpec(NamedTuple):
    """One tracker of :data:`TRACKERS`."""

    #: The tracker's class, ``"module:Class"``: called as ``Class(tracking_uri=...,
    #: experiment=...)``, it is a :class:`~wae_toolkit.Callback` (usually a subclass of
    #: ``wae_toolkit.trackers.base._Tracker``).
    target: str
    #: The module that must be importable to use it (checked without importing it).
    package: str
    #: The tracker's name in messages.
    label: str
    #: The pip extra that installs the package: ``pip install 'wae-toolkit[EXTRA]'``.
    extra: str


#: ``track`` name -> tracker, in the order messages list them.
TRACKERS: dict[str, TrackerSpec] = {
    "mlflow": TrackerSpec(
        "wae_toolkit.trackers.mlflow:MLflowTracker", "mlflow", "MLflow", extra="mlflow"
    ),
    "tensorboard": TrackerSpec(
        "wae_toolkit.trackers.tensorboard:TensorBoardTracker",
        "tensorboard",
        "TensorBoard",
        extra="tensorboard",
    ),
    "wandb": TrackerSpec("wae_toolkit.trackers.wandb:WandbTracker", "wandb", "W&B", extra="wandb"),
}
