"""Exact optimal transport on the real line, and the sliced Wasserstein distance built on it.

This module is core math (it imports no plugin): the ``swd`` penalty uses it, and evaluation code
may too. For two probability measures on ``R`` with quantile functions ``F^-1`` and ``G^-1``,

    W_p^p(mu, nu) = int_0^1 |F^-1(t) - G^-1(t)|^p dt,

so 1-D optimal transport is sorting: for uniform empirical measures on ``n`` and ``m`` points,
both quantile functions are step functions, constant between the levels ``i / n`` and ``j / m``,
and the integral is an exact finite sum over the merged levels (:func:`wasserstein_1d`).

The sliced Wasserstein distance (Bonneel et al. 2015; Kolouri et al., SWAE, 2019) averages the
1-D distance over directions ``theta`` on the unit sphere:

    SW_p^p(Q, P) = E_theta W_p^p(theta # Q, theta # P),

where ``theta # Q`` is the law of ``<theta, z>``, ``z ~ Q``. :func:`sliced_wasserstein` returns
the Monte Carlo estimate of ``SW_p^p`` over given directions. POT's
``ot.sliced_wasserstein_distance`` computes the same average and returns its p-th root,
``SW_p``.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

from wae_toolkit.errors import UsageError
from wae_toolkit.numerics.kernels import check_codes

__all__ = ["wasserstein_1d", "random_directions", "sliced_wasserstein"]


@lru_cache(maxsize=64)
def _merged_levels(n: int, m: int) -> tuple[Tensor, Tensor, Tensor]:
    """Indices and weights of the merged quantile levels of ``n`` and ``m`` equal atoms.

    In units of ``1 / (n m)``, the quantile function of ``n`` atoms jumps at ``i m`` and that of
    ``m`` atoms at ``j n``. On each interval ``[a_{k-1}, a_k)`` between consecutive merged jumps
    the first is its ``floor(a_{k-1} / m)``-th sorted value and the second its
    ``floor(a_{k-1} / n)``-th; the interval has length ``(a_k - a_{k-1}) / (n m)``. Integer
    arithmetic keeps the levels exact.

    Returns:
        ``(index_u, index_v, weight)``, each ``(K,)`` with ``K <= n + m - 1``, on the CPU; the
        weights (float64) sum to 1.
    """
    jumps = torch.cat(
        [
            torch.arange(1, n + 1, dtype=torch.int64) * m,
            torch.arange(1, m + 1, dtype=torch.int64) * n,
        ]
    )
    ends = torch.unique(jumps)  # sorted; the last is n m
    starts = torch.cat([torch.zeros(1, dtype=torch.int64), ends[:-1]])
    weight = (ends - starts).double() / (n * m)
    return starts // m, starts // n, weight


def _compute_dtype(a: Tensor, b: Tensor) -> torch.dtype:
    dtype = torch.promote_types(a.dtype, b.dtype)
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def wasserstein_1d(u: Tensor, v: Tensor, p: float = 2.0) -> Tensor:
    """Exact ``W_p^p`` between the uniform empirical measures on ``u`` and on ``v``, per column.

    ``W_p^p = int_0^1 |F_u^-1(t) - F_v^-1(t)|^p dt`` with the empirical quantile functions, summed
    exactly over the merged levels ``i / n`` and ``j / m`` (for ``n = m`` this is
    ``mean |sort(u) - sort(v)|^p``). Differentiable with respect to both inputs (through the sort);
    the same as POT's ``ot.wasserstein_1d(u, v, p=p)`` with uniform weights.

    Args:
        u: ``(n,)`` or ``(n, L)``: ``L`` sets of ``n`` points.
        v: ``(m,)`` or ``(m, L)``, same number of dimensions as ``u`` (and same ``L``).
        p: the exponent of the ground cost ``|x - y|^p``, ``>= 1``.

    Returns:
        ``()`` or ``(L,)``: ``W_p^p`` (not its p-th root), in ``u``'s dtype, on its device.
    """
    if not isinstance(u, Tensor) or not isinstance(v, Tensor):
        raise UsageError("wasserstein_1d: u and v must be torch tensors.")
    if u.ndim not in (1, 2) or v.ndim != u.ndim or u.shape[1:] != v.shape[1:] or not len(u):
        raise UsageError(
            "wasserstein_1d: u and v must be (n,) and (m,), or (n, L) and (m, L), with n, m >= 1; "
            f"got u {tuple(u.shape)} and v {tuple(v.shape)}."
        )
    if not len(v):
        raise UsageError(f"wasserstein_1d: v is empty; got v {tuple(v.shape)}.")
    if not (isinstance(p, int | float) and not isinstance(p, bool) and math.isfinite(p) and p >= 1):
        raise UsageError(f"wasserstein_1d: p must be a number >= 1; got {p!r}.")
    dtype = _compute_dtype(u, v)
    us = torch.sort(u.to(dtype), dim=0).values
    vs = torch.sort(v.to(dtype), dim=0).values
    n, m = len(u), len(v)
    if n == m:
        return (us - vs).abs().pow(p).mean(0).to(u.dtype)
    iu, iv, w = (t.to(u.device) for t in _merged_levels(n, m))
    cost = (us[iu] - vs[iv]).abs().pow(p)
    w = w.to(dtype)
    value = (w[:, None] * cost).sum(0) if cost.ndim == 2 else (w * cost).sum()
    return value.to(u.dtype)


def random_directions(
    dim: int,
    n: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    generator: torch.Generator | None = None,
) -> Tensor:
    """``n`` directions drawn uniformly on the unit sphere of ``R^dim``, as columns ``(dim, n)``.

    Normalised standard Gaussian vectors; torch's global generator unless ``generator`` is given,
    so a seed repeats them. The layout is POT's ``projections`` argument's.
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise UsageError(f"random_directions: dim must be an integer >= 1; got {dim!r}.")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UsageError(f"random_directions: n must be an integer >= 1; got {n!r}.")
    theta = torch.randn(dim, n, dtype=dtype, device=device, generator=generator)
    return theta / torch.linalg.vector_norm(theta, dim=0, keepdim=True)


def sliced_wasserstein(z_q: Tensor, z_p: Tensor, directions: Tensor, p: float = 2.0) -> Tensor:
    """``SW_p^p`` estimated over ``directions``: ``mean_l W_p^p(<theta_l, z_q>, <theta_l, z_p>)``.

    Each 1-D distance is exact (:func:`wasserstein_1d`), for any batch sizes. This is the
    ``p``-th power of POT's ``ot.sliced_wasserstein_distance(z_q, z_p, projections=directions,
    p=p)``.

    Args:
        z_q: ``(B, D)``.
        z_p: ``(N, D)``.
        directions: ``(D, L)``, one unit direction per column (used as given).
        p: the exponent of the ground cost, ``>= 1``.

    Returns:
        A scalar in ``z_q``'s dtype, on its device, differentiable with respect to both batches.
    """
    check_codes(z_q, z_p)
    if (
        not isinstance(directions, Tensor)
        or directions.ndim != 2
        or directions.shape[0] != z_q.shape[1]
        or directions.shape[1] < 1
    ):
        shape = tuple(directions.shape) if isinstance(directions, Tensor) else type(directions)
        raise UsageError(
            f"directions must be (D, L) with D = {z_q.shape[1]} (the codes' dimension) and "
            f"L >= 1; got {shape}."
        )
    if directions.device != z_q.device:
        raise UsageError(
            f"directions are on {directions.device} but z_q is on {z_q.device}; "
            "put them on the same device."
        )
    dtype = _compute_dtype(z_q, z_p)
    theta = directions.to(dtype)
    per_direction = wasserstein_1d(z_q.to(dtype) @ theta, z_p.to(dtype) @ theta, p)
    return per_direction.mean().to(z_q.dtype)
