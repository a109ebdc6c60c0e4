"""Points spread on a sphere: :func:`spread_means` places ``K`` points on the sphere of radius
``r`` in ``R^D`` as far apart as it can: it maximises the smallest pairwise distance
``min_{i != j} ||mu_i - mu_j||`` (the Tammes problem). The Gaussian mixture prior's
``placement="spread"`` uses it for its means.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from wae_toolkit.errors import UsageError

__all__ = ["spread_means"]


def _positive(value: float, what: str) -> float:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise UsageError(f"{what} must be a finite number > 0; got {value!r}.")
    return float(value)


def _random_directions(k: int, dim: int, seed: int) -> Tensor:
    """``k`` seeded uniform directions in ``R^dim``, ``(k, dim)`` float64 unit vectors."""
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(k, dim, generator=g, dtype=torch.float64)
    return d / d.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _simplex(k: int, dim: int, seed: int) -> Tensor:
    """The ``k <= dim + 1`` unit vertices of a regular simplex centred at 0, seeded rotation.

    The vertices ``e_1, ..., e_{k-1}`` and ``a (1, ..., 1)`` with ``a = (1 - sqrt(k)) / (k - 1)``
    of ``R^{k-1}`` are all ``sqrt(2)`` apart; centred, normalised and padded with zeros they are
    then turned by a random rotation drawn from ``seed``.
    """
    a = (1.0 - math.sqrt(k)) / (k - 1)
    v = torch.cat(
        [torch.eye(k - 1, dtype=torch.float64), torch.full((1, k - 1), a, dtype=torch.float64)]
    )
    v = v - v.mean(0)
    v = v / v.norm(dim=1, keepdim=True)
    v = torch.cat([v, torch.zeros(k, dim - (k - 1), dtype=torch.float64)], dim=1)
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    return v @ (q * torch.sign(torch.diagonal(r)))


def _repel(x: Tensor, steps: int, p_end: float = 64.0) -> Tensor:
    """Spread the unit vectors ``x`` ``(k, D)`` by projected descent of a Riesz energy.

    Minimises ``sum_{i<j} ||x_i - x_j||^(-p)`` on the unit sphere with the exponent ``p``
    growing geometrically from ``max(D, 4)`` to ``p_end`` (a large ``p`` makes the energy a
    smooth stand-in for ``-min_{i != j} ||x_i - x_j||``) and a step shrinking linearly to 0.
    Each step moves every point along its tangent force, scaled so that the largest move is a
    fraction of the current smallest distance, and renormalises. Returns the iterate with the
    largest minimum distance, the start included, so it never does worse than the start.
    """
    k, dim = x.shape
    diagonal = torch.eye(k, dtype=torch.bool, device=x.device)
    p_start = float(max(dim, 4))
    best, best_d2 = x, -1.0
    for t in range(steps + 1):
        d2 = (2 - 2 * x @ x.T).clamp_min(0).masked_fill(diagonal, math.inf)
        min_d2 = float(d2.min())
        if min_d2 > best_d2:
            best, best_d2 = x, min_d2
        if t == steps or min_d2 <= 0:
            break
        frac = t / steps
        q = 0.5 * p_start * (p_end / p_start) ** frac + 1  # force ~ (min_d2 / d2)^q (x_i - x_j)
        ratio = min_d2 / d2
        w = torch.where(ratio > 10 ** (-200 / q), ratio, 0.0).pow(q)  # no subnormals
        force = w.sum(1, keepdim=True) * x - w @ x
        force = force - (force * x).sum(1, keepdim=True) * x
        step = 0.1 * math.sqrt(min_d2) * (1 - frac) + 1e-4
        x = x + step * force / force.norm(dim=1).max().clamp_min(1e-300)
        x = x / x.norm(dim=1, keepdim=True)
    return best


def spread_means(k: int, dim: int, radius: float = 1.0, seed: int = 0, steps: int = 500) -> Tensor:
    """``k`` points on the sphere of radius ``radius`` in ``R^dim``, as far apart as possible.

    Maximises the smallest pairwise distance ``min_{i != j} ||mu_i - mu_j||``:

    * ``k <= dim + 1``: exactly, with a regular simplex, every pair ``r sqrt(2k / (k - 1))``
      apart (``k = 2``: two antipodal points, ``2r``);
    * ``dim = 2``: exactly, with a regular ``k``-gon, neighbours ``2 r sin(pi / k)`` apart;
    * ``dim = 1``: only ``-r`` and ``r`` exist, so points alternate between them (any ``k > 2``
      repeats a point: the smallest distance is 0);
    * otherwise approximately, by ``steps`` steps of repulsion (projected gradient descent of a
      Riesz energy whose exponent grows, see the Thomson and Tammes problems) from the seeded
      random directions that ``placement="random"`` uses; the result is never worse than that
      start and typically lies within a few percent of the best known configurations.

    The result is deterministic for a seed; ``seed`` also turns the exact configurations by a
    random rotation.

    Args:
        k: number of points, >= 1.
        dim: dimension of the space, >= 1.
        radius: radius of the sphere.
        seed: seed of the random start (and rotation).
        steps: repulsion steps for the approximate case.

    Returns:
        ``(k, dim)`` float64 tensor of points with norm ``radius``.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UsageError(f"spread_means needs k >= 1 points; got {k!r}.")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise UsageError(f"spread_means needs dim >= 1; got {dim!r}.")
    radius = _positive(radius, "The radius of the spread means")
    start = _random_directions(k, dim, seed)
    if k == 1:
        x = start
    elif k <= dim + 1:
        x = _simplex(k, dim, seed)
    elif dim == 1:
        x = torch.tensor([[1.0 if i % 2 == 0 else -1.0] for i in range(k)], dtype=torch.float64)
    elif dim == 2:
        angles = (
            float(torch.atan2(start[0, 1], start[0, 0]))
            + 2 * math.pi * torch.arange(k, dtype=torch.float64) / k
        )
        x = torch.stack([angles.cos(), angles.sin()], dim=1)
    else:
        x = _repel(start, int(steps))
    return radius * x


# ---------------------------------------------------------------------------------------------
# The priors.
