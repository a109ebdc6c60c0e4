"""wae-toolkit-energy: the energy-distance latent penalty for wae-toolkit.

Installing this distribution registers :class:`~wae_energy.penalty.EnergyDistancePenalty` under
the ``wae_toolkit.penalties`` entry point group as ``energy``, so ``wae run --penalty energy``
finds it. wae-toolkit itself imports this package only when the ``energy`` penalty is asked for.
"""

from __future__ import annotations

from wae_energy.penalty import EnergyDistancePenalty, energy_distance

__all__ = ["EnergyDistancePenalty", "energy_distance"]
