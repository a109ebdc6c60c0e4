"""The energy distance (Szekely & Rizzo) as a wae-toolkit latent penalty.

:func:`energy_distance` is the estimator; :class:`EnergyDistancePenalty` is the plugin that the
``energy`` entry point names, a thin wrapper that holds the options. Pairwise distances come from
:func:`wae_toolkit.numerics.kernels.squared_distances` (one matrix product per pair of batches), so
memory is ``O(n^2 + m^2 + n m)`` and never ``O(n m D)``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor
from wae_toolkit.errors import UsageError
from wae_toolkit.numerics.kernels import check_codes, squared_distances
from wae_toolkit.plugins.interfaces import LatentPenalty

__all__ = ["ESTIMATORS", "Estimator", "EnergyDistancePenalty", "energy_distance", "smoothed_power"]

#: The estimators :func:`energy_distance` accepts.
Estimator = Literal["unbiased", "biased"]
ESTIMATORS: tuple[str, ...] = ("unbiased", "biased")


def _validated(beta: object, estimator: object, eps: object, who: str) -> tuple[float, str, float]:
    """Check the three options; return ``(beta, estimator, eps)`` as ``float``, ``str``, ``float``.

    Raises:
        UsageError: one sentence naming ``who``, the option, what is allowed and the value given.
    """
    if isinstance(beta, bool) or not isinstance(beta, int | float) or not 0 < beta < 2:
        raise UsageError(
            f"{who}: beta must be a number with 0 < beta < 2 (the energy distance separates "
            f"distributions only there; beta = 2 compares means alone); got {beta!r}."
        )
    if estimator not in ESTIMATORS:
        raise UsageError(
            f"{who}: unknown estimator {estimator!r}; allowed: {', '.join(ESTIMATORS)}."
        )
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0 < eps < math.inf:
        raise UsageError(
            f"{who}: eps must be a positive finite number (squared code units, it keeps the "
            f"gradient finite where two points coincide); got {eps!r}."
        )
    return float(beta), str(estimator), float(eps)


def smoothed_power(d2: Tensor, beta: float, eps: float) -> Tensor:
    """``||a - b||^beta`` from squared distances, with a finite gradient at ``a = b``.

    Returns ``(d2 + eps)^(beta / 2) - eps^(beta / 2)``: exactly 0 at ``d2 = 0``, and its slope
    with respect to ``d2`` is at most ``(beta / 2) eps^(beta / 2 - 1)``, whereas that of
    ``d2^(beta / 2)`` is infinite at 0 (the cusp of ``||a - b||^beta``).

    Each value lies in ``[d^beta - eps^(beta / 2), d^beta]`` with ``d = sqrt(d2)`` (the power
    ``beta / 2 < 1`` is subadditive), and for ``d >> sqrt(eps)`` it is
    ``d^beta - eps^(beta / 2) + O(eps d^(beta - 2))``: a constant offset plus a term of order
    ``eps``. As a function of ``d2`` it is a Bernstein function vanishing at 0, so it stays
    conditionally negative definite and the V-statistic built on it stays ``>= 0``.

    Args:
        d2: squared distances, any shape, non-negative.
        beta: exponent, ``0 < beta < 2``.
        eps: smoothing in squared distance units, ``> 0``.

    Returns:
        Same shape, dtype and device as ``d2``.
    """
    return (d2 + eps).pow(0.5 * beta) - eps ** (0.5 * beta)


def _offdiag_sum(k: Tensor) -> Tensor:
    """Sum of a square matrix without its diagonal."""
    return k.sum() - k.diagonal().sum()


def _energy(z_q: Tensor, z_p: Tensor, beta: float, estimator: str, eps: float) -> Tensor:
    """:func:`energy_distance` on options that are already validated."""
    check_codes(z_q, z_p)
    n, m = z_q.shape[0], z_p.shape[0]
    need = 2 if estimator == "unbiased" else 1
    if n < need or m < need:
        raise UsageError(
            f"The {estimator!r} energy estimator needs at least {need} sample(s) in each of z_q "
            f"and z_p; got z_q {tuple(z_q.shape)} and z_p {tuple(z_p.shape)}."
        )
    dtype = torch.promote_types(z_q.dtype, z_p.dtype)
    if dtype in (torch.float16, torch.bfloat16):
        dtype = torch.float32  # half-precision sums lose too much
    q, p = z_q.to(dtype), z_p.to(dtype)
    # Distances do not change under a translation; centring shrinks ||a||^2 + ||b||^2, and with
    # it the rounding error of the matmul identity, when the codes sit far from the origin.
    center = torch.cat((q, p)).mean(dim=0, keepdim=True).detach()
    q, p = q - center, p - center
    cross = smoothed_power(squared_distances(q, p), beta, eps).mean()
    # The within-sample diagonals are exact zeros: they are left out of both estimators' sums
    # (the identity would give them rounding noise, not 0).
    within_q = _offdiag_sum(smoothed_power(squared_distances(q, q), beta, eps))
    within_p = _offdiag_sum(smoothed_power(squared_distances(p, p), beta, eps))
    if estimator == "unbiased":
        within = within_q / (n * (n - 1)) + within_p / (m * (m - 1))
    else:
        within = within_q / (n * n) + within_p / (m * m)
    return (2.0 * cross - within).to(z_q.dtype)


def energy_distance(
    z_q: Tensor,
    z_p: Tensor,
    beta: float = 1.0,
    estimator: str = "unbiased",
    eps: float = 1e-12,
) -> Tensor:
    """Energy distance between the samples ``z_q`` and ``z_p``.

    With ``z_q = (z_1 .. z_n)``, ``z_p = (y_1 .. y_m)`` and ``|| . ||^beta`` computed by
    :func:`smoothed_power`:

    * ``"unbiased"`` (U-statistic)::

          2 / (n m) sum_{i, j} ||z_i - y_j||^beta
            - 1 / (n (n-1)) sum_{i != i'} ||z_i - z_i'||^beta
            - 1 / (m (m-1)) sum_{j != j'} ||y_j - y_j'||^beta

      Its expectation is the population energy distance for independent samples.
    * ``"biased"`` (V-statistic): the within-sample sums keep their ``i = i'`` (zero) terms and
      are divided by ``n^2`` and ``m^2``. It is the energy distance between the two empirical
      distributions.

    Args:
        z_q: codes, ``(n, D)``.
        z_p: prior samples, ``(m, D)``, same ``D`` and device.
        beta: exponent of the distance, ``0 < beta < 2``.
        estimator: ``"unbiased"`` or ``"biased"``.
        eps: smoothing of the distance at 0, in squared units, ``> 0``.

    Returns:
        A scalar tensor with ``z_q``'s dtype and device, differentiable with respect to both
        inputs. Computed in at least float32.

    Raises:
        UsageError: bad options, shapes, devices or dtypes, or too few samples (2 in each input
            for ``"unbiased"``, 1 for ``"biased"``).
    """
    beta, estimator, eps = _validated(beta, estimator, eps, "energy_distance")
    return _energy(z_q, z_p, beta, estimator, eps)


class EnergyDistancePenalty(LatentPenalty):
    """Energy distance between the codes and the prior samples (Szekely & Rizzo), 0 < beta < 2.

    With codes ``z, z' ~ Q_Z`` and prior samples ``y, y' ~ P_Z``, all independent,

        D_Z = E(Q_Z, P_Z) = 2 E||z - y||^beta - E||z - z'||^beta - E||y - y'||^beta.

    For ``0 < beta < 2`` it is ``>= 0`` and 0 only when ``Q_Z = P_Z`` (G. J. Szekely and
    M. L. Rizzo, "Energy statistics: a class of statistics based on distances", J. Statist.
    Plann. Inference 143, 2013); at ``beta = 2`` it collapses to ``2 ||E z - E y||^2``, which
    sees the means only. It equals ``2 MMD^2`` for the distance-induced kernel
    ``k(a, b) = (||a||^beta + ||b||^beta - ||a - b||^beta) / 2`` (Sejdinovic et al., Ann. Statist.
    41, 2013), but needs no bandwidth: it is invariant to translations and rotations, scales as
    ``c^beta`` when both samples are scaled by ``c``, and its gradient with respect to a code far
    from the prior decays only like ``||z - y||^(beta - 1)`` (not at all for ``beta = 1``),
    where a Gaussian kernel's vanishes. Units: code units to the power ``beta``.

    Estimators, for ``z_q`` ``(n, D)`` and ``z_p`` ``(m, D)``: ``unbiased`` is the U-statistic
    (the within-sample sums drop their ``i = i'`` terms and divide by ``n (n-1)`` and
    ``m (m-1)``; the cross term averages all ``n m`` pairs). Its expectation is ``E(Q_Z, P_Z)``,
    0 when the codes match the prior, so single batches scatter around 0 and about half come out
    negative; ``penalty(z, z)`` is negative too, since the cross term keeps its ``i = j`` zeros.
    ``biased`` is the V-statistic (every pair, divided by ``n^2``, ``m^2``, ``n m``): the energy
    distance between the two empirical distributions, always ``>= 0`` and 0 for
    ``penalty(z, z)``, but its expectation is ``E(Q_Z, P_Z) + E||z - z'||^beta / n +
    E||y - y'||^beta / m``.

    Smoothing: each ``||a - b||^beta`` is computed as ``(||a - b||^2 + eps)^(beta / 2) -
    eps^(beta / 2)``, so the gradient stays finite where a code coincides with a prior sample or
    another code (``||.||^beta`` has a cusp there). Each term is low by between 0 and
    ``eps^(beta / 2)``, and by ``eps^(beta / 2)`` up to ``O(eps)`` for points farther apart than
    ``sqrt(eps)``; that constant cancels in the U-statistic (its weights 2, -1, -1 sum to 0), and
    leaves a constant ``-eps^(beta / 2) (1 / n + 1 / m)`` in the V-statistic (it keeps
    ``penalty(z, z) = 0`` and does not change the gradient). The bias is never above
    ``2 eps^(beta / 2)``: about 1e-6 for the defaults, but 0.25 per term at ``beta = 0.1``, so
    lower ``eps`` with ``beta`` when values, not only gradients, matter.

    Cost: three squared-distance matrices by the matmul identity, ``O((n + m)^2 D)`` time and
    ``O(n^2 + m^2 + n m)`` memory.

    Args:
        beta: exponent of the distance, ``0 < beta < 2``. 1 (default) is the classical energy
            distance; smaller values weigh near pairs more, larger ones far pairs.
        estimator: ``unbiased`` (U-statistic, unbiased, can be negative) or ``biased``
            (V-statistic, always >= 0, zero for identical batches, biased upwards by O(1/B)).
        eps: smoothing of the distance at 0, in squared code units; bounds the gradient where
            points coincide.
    """

    #: The version of the ``LatentPenalty`` interface this plugin implements.
    interface_version = "1.0"

    def __init__(
        self,
        beta: float = 1.0,
        estimator: Literal["unbiased", "biased"] = "unbiased",
        eps: float = 1e-12,
    ) -> None:
        super().__init__()
        self.beta, self.estimator, self.eps = _validated(beta, estimator, eps, type(self).__name__)
        # penalty(z, z) is exactly 0 for the V-statistic; the U-statistic's is negative.
        self.zero_on_identical = self.estimator == "biased"

    def forward(self, z_q: Tensor, z_p: Tensor) -> Tensor:
        """Energy distance estimate between codes ``z_q`` ``(B, D)`` and prior samples ``z_p``
        ``(N, D)``.

        Returns:
            A scalar with ``z_q``'s dtype and device, differentiable with respect to ``z_q``.

        Raises:
            UsageError: naming ``z_q`` and ``z_p`` and their shapes when they do not fit together,
                or when a batch is too small for the estimator.
        """
        return _energy(z_q, z_p, self.beta, self.estimator, self.eps)

    def extra_repr(self) -> str:
        return f"beta={self.beta:g}, estimator={self.estimator!r}, eps={self.eps:g}"
