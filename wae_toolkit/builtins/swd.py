"""The sliced Wasserstein latent penalty (SWAE): exact 1-D OT along random directions."""

from __future__ import annotations

from torch import Tensor

from wae_toolkit.errors import PluginOptionError, UsageError
from wae_toolkit.memory import check_fits
from wae_toolkit.numerics.kernels import check_codes
from wae_toolkit.numerics.ot1d import random_directions, sliced_wasserstein
from wae_toolkit.plugins.interfaces import LatentPenalty, Prior

__all__ = ["SlicedWassersteinPenalty"]


class SlicedWassersteinPenalty(LatentPenalty):
    """Sliced Wasserstein distance between codes and prior samples (SWAE, Kolouri et al.).

    On every call, ``projections`` directions ``theta_l`` are drawn uniformly on the unit sphere
    (torch's global generator, so a seed repeats them), both batches are projected on each, and
    the exact 1-D Wasserstein distance between the projected empirical measures is computed by
    sorting (:func:`wae_toolkit.numerics.ot1d.wasserstein_1d`, exact also when ``B != N``):

        D_Z = (1 / L) sum_l W_p^p(<theta_l, z_q>, <theta_l, z_p>)  ~  SW_p^p(Q_Z, P_Z).

    The value is ``SW_p^p``, not its p-th root, so it stays smooth at 0 for training. POT's
    ``ot.sliced_wasserstein_distance`` returns the p-th root, ``SW_p``. Units: squared code units
    for ``p = 2``. A projection keeps only part of a difference: a translation by ``m`` scores
    ``|m|^2 / D`` for ``p = 2`` (its ``W_2^2`` is ``|m|^2``), so the penalty shrinks as ``D``
    grows and ``lambda`` should grow with ``D``. Cost ``O(L (B + N) (D + log(B + N)))``, the
    cheapest OT penalty; more directions lower the variance of the estimate.

    Args:
        projections: number of random directions ``L`` drawn per call.
        p: exponent of the ground cost ``|x - y|^p``, 1 or 2.
    """

    zero_on_identical = True

    def __init__(self, projections: int = 50, p: int = 2) -> None:
        super().__init__()
        name = type(self).__name__
        if isinstance(projections, bool) or not isinstance(projections, int) or projections < 1:
            raise UsageError(f"{name}: projections must be an integer >= 1; got {projections!r}.")
        if isinstance(p, bool) or p not in (1, 2):
            raise UsageError(f"{name}: p must be 1 or 2; got {p!r}.")
        self.projections = projections
        self.p = int(p)

    def bind(self, prior: Prior) -> None:
        """Refuse a number of projections whose directions cannot fit in memory.

        Every call draws a ``(D, L)`` matrix of directions (and normalises it: two copies) and
        projects both batches on it; the estimate counts the two copies and the projections of
        the smallest batches, ``4 L (2 D + 16)`` bytes in float32, so it is a lower bound: larger
        batches need ``(B + N) L`` more numbers (see :mod:`wae_toolkit.memory` for the rule).
        """
        dim = int(prior.dim)
        check_fits(
            4 * self.projections * (2 * dim + 16),
            f"{type(self).__name__} with projections={self.projections:,} in latent dimension "
            f"{dim}",
            "use fewer projections (the default is 50)",
            error=PluginOptionError,
        )

    def forward(self, z_q: Tensor, z_p: Tensor, directions: Tensor | None = None) -> Tensor:
        """``SW_p^p`` estimate between codes ``z_q`` and prior samples ``z_p``.

        Args:
            z_q: codes, ``(B, D)``.
            z_p: prior samples, ``(N, D)``.
            directions: ``(D, L)`` unit directions as columns, to use instead of
                ``projections`` random ones (for tests and for comparing runs).

        Returns:
            A scalar with ``z_q``'s dtype and device, differentiable with respect to ``z_q``.
        """
        check_codes(z_q, z_p)
        if directions is None:
            directions = random_directions(
                z_q.shape[1], self.projections, dtype=z_q.dtype, device=z_q.device
            )
        return sliced_wasserstein(z_q, z_p, directions, self.p)

    def extra_repr(self) -> str:
        return f"projections={self.projections}, p={self.p}"
