"""Kernels and the maximum mean discrepancy (MMD) between two batches of codes.

This module is the core math behind the ``mmd-imq`` and ``mmd-rbf`` penalties and the evaluation
code's MMD metric. It imports no plugin.

With a positive-definite kernel ``k``, the squared MMD between distributions ``Q`` and ``P`` is

    MMD^2(Q, P) = E k(z, z') + E k(y, y') - 2 E k(z, y),    z, z' ~ Q,  y, y' ~ P  independent.

:func:`mmd2` estimates it from samples ``z_q`` ``(n, D)`` and ``z_p`` ``(m, D)``. Kernels are
functions of the squared distance ``d2 = ||a - b||^2``: :func:`squared_distances` computes the
``(n, m)`` matrix once, and :func:`imq_kernel` / :func:`rbf_kernel` map it to kernel values, so
memory stays ``O(n m)`` and never ``O(n m D)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from wae_toolkit.errors import UsageError

__all__ = [
    "ESTIMATORS",
    "PAPER_IMQ_SCALES",
    "Estimator",
    "check_codes",
    "squared_distances",
    "imq_kernel",
    "rbf_kernel",
    "mmd2",
]

#: The WAE paper's IMQ kernel scales (reference code, ``wae.py``), multipliers of ``C``.
PAPER_IMQ_SCALES: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)

#: The MMD estimators :func:`mmd2` accepts.
Estimator = Literal["paper", "unbiased", "biased"]
ESTIMATORS: tuple[str, ...] = ("paper", "unbiased", "biased")


def _shape(t: Tensor) -> str:
    """``(64, 8)``, ``(64,)``: a shape written as a Python tuple."""
    return str(tuple(t.shape))


def _check_pair(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    """Raise ``UsageError`` unless ``a`` and ``b`` are ``(n, D)`` / ``(m, D)`` tensors, D >= 1."""
    for t, name in ((a, name_a), (b, name_b)):
        if not isinstance(t, Tensor):
            raise UsageError(
                f"{name} must be a torch.Tensor of shape (B, D); got {type(t).__name__}."
            )
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or a.shape[1] < 1:
        raise UsageError(
            f"{name_a} and {name_b} must both be (B, D) with the same D; "
            f"got {name_a} {_shape(a)} and {name_b} {_shape(b)}."
        )
    if a.device != b.device:
        raise UsageError(
            f"{name_a} and {name_b} must be on the same device; "
            f"got {name_a} on {a.device} and {name_b} on {b.device}."
        )
    if not (a.is_floating_point() and b.is_floating_point()):
        raise UsageError(
            f"{name_a} and {name_b} must be floating-point tensors; "
            f"got {name_a} {a.dtype} and {name_b} {b.dtype}."
        )


def check_codes(z_q: Tensor, z_p: Tensor) -> None:
    """Check that codes ``z_q`` ``(B, D)`` and prior samples ``z_p`` ``(N, D)`` fit together.

    Raises:
        UsageError: naming both tensors and their shapes (or devices, or dtypes) when they are not
            2-D floating-point tensors with the same ``D >= 1`` on the same device.
    """
    _check_pair(z_q, z_p, "z_q", "z_p")


def _common_dtype(a: Tensor, b: Tensor) -> torch.dtype:
    """The dtype to compute in: the promoted dtype, at least float32 (half sums lose too much)."""
    dtype = torch.promote_types(a.dtype, b.dtype)
    if dtype in (torch.float16, torch.bfloat16):
        dtype = torch.float32
    return dtype


def _check_kernel_args(c: float, scales: Sequence[float]) -> tuple[float, tuple[float, ...]]:
    try:
        c = float(c)
    except (TypeError, ValueError):
        raise UsageError(f"The kernel constant c must be a positive number; got {c!r}.") from None
    if not (math.isfinite(c) and c > 0):
        raise UsageError(f"The kernel constant c must be a positive finite number; got {c!r}.")
    try:
        scales = tuple(float(s) for s in scales)
    except (TypeError, ValueError):
        raise UsageError(f"The kernel scales must be positive numbers; got {scales!r}.") from None
    if not scales or not all(math.isfinite(s) and s > 0 for s in scales):
        raise UsageError(
            f"The kernel scales must be a non-empty list of positive numbers; got {scales!r}."
        )
    return c, scales


def squared_distances(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise squared Euclidean distances ``||a_i - b_j||^2``.

    Uses the identity ``||a_i||^2 + ||b_j||^2 - 2 <a_i, b_j>`` (one matrix product), clamped at 0
    because rounding can make it slightly negative for nearby points. Memory is ``O(n m)``.
    Smooth everywhere, unlike ``torch.cdist`` whose square root has an infinite gradient at 0.

    Args:
        a: ``(n, D)``.
        b: ``(m, D)``, same ``D``, device and floating dtype family.

    Returns:
        ``(n, m)`` non-negative tensor in the promoted dtype of ``a`` and ``b``.

    Raises:
        UsageError: when the shapes or devices do not match.
    """
    _check_pair(a, b, "a", "b")
    dtype = torch.promote_types(a.dtype, b.dtype)
    a, b = a.to(dtype), b.to(dtype)
    a2 = (a * a).sum(dim=1, keepdim=True)  # (n, 1)
    b2 = (b * b).sum(dim=1).unsqueeze(0)  # (1, m)
    return torch.addmm(a2 + b2, a, b.mT, alpha=-2.0).clamp_min(0.0)


def imq_kernel(d2: Tensor, c: float, scales: Sequence[float] = (1.0,)) -> Tensor:
    """Multi-scale inverse multiquadratic kernel of squared distances.

    ``k(a, b) = sum_s  c s / (c s + ||a - b||^2)``; each term lies in ``(0, 1]`` and equals 1 at
    ``a = b``. Its heavy tails (``~ 1 / ||a - b||^2``) keep gradients alive for far-away codes.
    The WAE paper uses ``c = 2 D sigma^2`` and ``scales = (0.1, 0.2, 0.5, 1, 2, 5, 10)``.

    Args:
        d2: squared distances, any shape (typically ``(n, m)`` from :func:`squared_distances`).
        c: base constant ``C > 0``, in squared code units.
        scales: positive multipliers ``s`` of ``c``; the kernel is the sum over them.

    Returns:
        Kernel values, same shape, dtype and device as ``d2``.
    """
    c, scales = _check_kernel_args(c, scales)
    return _ScaleSum.apply(d2, tuple(c * s for s in scales), "imq")


def rbf_kernel(d2: Tensor, c: float, scales: Sequence[float] = (1.0,)) -> Tensor:
    """Multi-scale Gaussian (RBF) kernel of squared distances.

    ``k(a, b) = sum_s exp(-||a - b||^2 / (c s))``, i.e. a Gaussian kernel of variance
    ``c s / 2`` per term. Light tails: codes much farther than ``sqrt(c s)`` from every prior sample
    get almost no gradient.

    Args:
        d2: squared distances, any shape.
        c: base constant ``C > 0``, in squared code units.
        scales: positive multipliers ``s`` of ``c``; the kernel is the sum over them.

    Returns:
        Kernel values, same shape, dtype and device as ``d2``.
    """
    c, scales = _check_kernel_args(c, scales)
    return _ScaleSum.apply(d2, tuple(c * s for s in scales), "rbf")


class _ScaleSum(torch.autograd.Function):
    """``sum_s f(d2 / a_s)`` with its derivative computed in the same pass.

    Autograd through a plain loop over scales keeps one ``(n, m)`` intermediate per scale for the
    backward pass; this keeps only the derivative ``dk/dd2``, so a multi-scale kernel costs about
    as much memory as a single one. ``kind`` is ``"imq"`` (``a / (a + d2)``, derivative
    ``-a / (a + d2)^2``) or ``"rbf"`` (``exp(-d2 / a)``, derivative ``-exp(-d2 / a) / a``).
    """

    @staticmethod
    def forward(ctx: Any, d2: Tensor, constants: tuple[float, ...], kind: str) -> Tensor:
        out, slope = _terms(d2, constants, kind, d2.requires_grad)
        ctx.save_for_backward(slope if slope is not None else out.new_empty(0))
        return out

    @staticmethod
    @once_differentiable  # second derivatives would need the curvature: refuse, never return 0
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None]:
        (slope,) = ctx.saved_tensors
        return grad * slope, None, None


def _terms(
    d2: Tensor, constants: tuple[float, ...], kind: str, need_slope: bool
) -> tuple[Tensor, Tensor | None]:
    """The kernel sum over ``constants`` and, when asked, its derivative in ``d2``."""
    out = torch.zeros_like(d2)
    slope = torch.zeros_like(d2) if need_slope else None
    for a in constants:
        if kind == "imq":
            t = (d2 + a).reciprocal_().mul_(a)  # a / (a + d2)
            if slope is not None:
                slope.addcmul_(t, t, value=-1.0 / a)  # -a / (a + d2)^2 = -t^2 / a
        else:
            t = torch.exp(d2 * (-1.0 / a))
            if slope is not None:
                slope.add_(t, alpha=-1.0 / a)
        out.add_(t)
    return out, slope


def check_mmd_inputs(z_q: Tensor, z_p: Tensor, estimator: str) -> None:
    """Raise ``UsageError`` unless the batches fit together and are large enough for the
    estimator (2 samples each for ``paper`` and ``unbiased``, 1 for ``biased``)."""
    _check_pair(z_q, z_p, "z_q", "z_p")
    if estimator not in ESTIMATORS:
        raise UsageError(f"Unknown MMD estimator {estimator!r}; allowed: {', '.join(ESTIMATORS)}.")
    need = 1 if estimator == "biased" else 2
    if z_q.shape[0] < need or z_p.shape[0] < need:
        raise UsageError(
            f"The {estimator!r} MMD estimator needs at least {need} sample(s) in each of z_q and "
            f"z_p; got z_q {_shape(z_q)} and z_p {_shape(z_p)}."
        )


def _offdiag_mean(k: Tensor) -> Tensor:
    """Mean of a square ``(n, n)`` matrix without its diagonal: divides by ``n (n - 1)``."""
    n = k.shape[0]
    return (k.sum() - k.diagonal().sum()) / (n * (n - 1))


def mmd2(
    z_q: Tensor,
    z_p: Tensor,
    kernel: Callable[[Tensor], Tensor],
    estimator: str = "paper",
) -> Tensor:
    """Squared maximum mean discrepancy between the samples ``z_q`` and ``z_p``.

    With ``K_qq = k(z_q, z_q)`` ``(n, n)``, ``K_pp = k(z_p, z_p)`` ``(m, m)`` and
    ``K_qp = k(z_q, z_p)`` ``(n, m)``, the estimators are:

    * ``"paper"`` (the WAE reference code)::

          sum_{i != j} K_qq / (n (n-1)) + sum_{i != j} K_pp / (m (m-1)) - 2 sum_{i, j} K_qp / (n m)

      The within-sample terms are unbiased, the cross term keeps its ``i = j`` pairs.
    * ``"unbiased"``: the U-statistic (Gretton et al. 2012, Lemma 6). When ``n == m`` the cross
      term also drops its ``i = j`` pairs and divides by ``n (n-1)``, so that
      ``mmd2(z, z) == 0`` exactly. When ``n != m`` there are no paired terms to drop and the cross
      term averages all ``n m`` pairs, which is still unbiased for independent samples.
    * ``"biased"``: the V-statistic, every pair including diagonals, divided by ``n^2``, ``m^2``
      and ``n m``. It equals the squared RKHS norm of the difference of the empirical mean
      embeddings, so it is always ``>= 0``, but its expectation is ``MMD^2 + O(1/n + 1/m)``.

    ``"paper"`` and ``"unbiased"`` have expectation ``MMD^2`` for independent samples, which is 0
    when the distributions match, so single values scatter around 0 and are often slightly
    negative: that is the estimator working, not a bug.

    Args:
        z_q: codes, ``(n, D)``.
        z_p: prior samples, ``(m, D)``, same ``D`` and device.
        kernel: maps a squared-distance matrix to a kernel matrix of the same shape, e.g.
            ``functools.partial(imq_kernel, c=16.0, scales=(1.0,))``.
        estimator: ``"paper"``, ``"unbiased"`` or ``"biased"``.

    Returns:
        A scalar tensor with ``z_q``'s dtype and device, differentiable with respect to both
        inputs. Computed in at least float32.

    Raises:
        UsageError: bad shapes, devices or estimator, or fewer than 2 samples in either input for
            the ``"paper"`` and ``"unbiased"`` estimators (at least 1 for ``"biased"``).
    """
    check_mmd_inputs(z_q, z_p, estimator)
    n, m = z_q.shape[0], z_p.shape[0]
    dtype = _common_dtype(z_q, z_p)
    q, p = z_q.to(dtype), z_p.to(dtype)
    k_qq = kernel(squared_distances(q, q))
    k_pp = kernel(squared_distances(p, p))
    k_qp = kernel(squared_distances(q, p))
    if estimator == "biased":
        within = k_qq.mean() + k_pp.mean()
        cross = k_qp.mean()
    else:
        within = _offdiag_mean(k_qq) + _offdiag_mean(k_pp)
        cross = _offdiag_mean(k_qp) if estimator == "unbiased" and n == m else k_qp.mean()
    return (within - 2.0 * cross).to(z_q.dtype)
