"""The squared MMD and its gradient in one blockwise pass: memory O(block^2), never O(B^2 D).

:func:`wae_toolkit.numerics.kernels.mmd2` builds three ``B x B`` kernel matrices and lets autograd
keep what the backward pass needs. Since the MMD is a scalar, its gradient with respect to the
codes can be computed in the forward pass instead, block by block, and kept as one ``(B, D)``
tensor: for a sum
``V = sum_ij k(||a_i - b_j||^2)`` with slope ``S_ij = k'(||a_i - b_j||^2)``,

    dV/da_i = 2 (sum_j S_ij) a_i - 2 (S b)_i,      dV/db_j = 2 (sum_i S_ij) b_j - 2 (S^T a)_j,

one matrix product per block and side. The within-sample sums are symmetric, so only the blocks
on and above the diagonal are computed (off-diagonal blocks count twice). Each block's distances
come from one matrix product (``|a|^2 + |b|^2 - 2 a.b``) and every kernel scale is applied to it
while it is still in cache; nothing of size ``B x B`` is ever allocated, so a batch of 16,384 codes
needs a few ``block x block`` buffers (16 MiB each at the default 2048) instead of gigabytes.

The result equals :func:`~wae_toolkit.numerics.kernels.mmd2` with the same kernel and estimator up
to rounding (tested against it and against a float64 brute force). Second derivatives are refused
(``once_differentiable``): no built-in penalty needs them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from wae_toolkit.errors import UsageError
from wae_toolkit.numerics.kernels import _common_dtype, check_mmd_inputs

__all__ = ["fused_mmd2", "DEFAULT_BLOCK", "KINDS"]

#: Rows and columns per block (512 x 512 float32 is 1 MiB per buffer: blocks stay in cache).
DEFAULT_BLOCK = 512
#: Kernel families: ``imq`` sums ``a / (a + d2)``, ``rbf`` sums ``exp(-d2 / a)`` over constants.
KINDS = ("imq", "rbf")

_BlockFn = Callable[[Tensor, tuple[float, ...], str, bool], tuple[Tensor, Tensor | None]]


def fused_mmd2(
    z_q: Tensor,
    z_p: Tensor,
    kind: str,
    constants: tuple[float, ...],
    estimator: str = "paper",
    block: int = DEFAULT_BLOCK,
    compiled: bool = False,
) -> Tensor:
    """Squared MMD between ``z_q`` ``(n, D)`` and ``z_p`` ``(m, D)``, blockwise.

    Args:
        z_q: codes.
        z_p: prior samples (gradients flow to them too when they require grad).
        kind: ``"imq"`` (``k = sum_a a / (a + d2)``) or ``"rbf"`` (``k = sum_a exp(-d2 / a)``).
        constants: the per-scale constants ``a`` (``C`` times each scale).
        estimator: ``"paper"``, ``"unbiased"`` or ``"biased"``, as in
            :func:`wae_toolkit.numerics.kernels.mmd2`.
        block: rows and columns per block (>= 1); memory is about ``4 block^2`` values.
        compiled: fuse each block's kernel terms with ``torch.compile``.

    Returns:
        A scalar with ``z_q``'s dtype, computed in at least float32.
    """
    check_mmd_inputs(z_q, z_p, estimator)
    if kind not in KINDS:
        raise UsageError(f"Unknown kernel kind {kind!r}; allowed: {', '.join(KINDS)}.")
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise UsageError(f"The MMD block size must be a positive integer; got {block!r}.")
    dtype = _common_dtype(z_q, z_p)
    out = _FusedMMD.apply(z_q.to(dtype), z_p.to(dtype), kind, constants, estimator, block, compiled)
    return out.to(z_q.dtype)


class _FusedMMD(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        q: Tensor,
        p: Tensor,
        kind: str,
        constants: tuple[float, ...],
        estimator: str,
        block: int,
        compiled: bool,
    ) -> Tensor:
        need_q, need_p = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        n, m = q.shape[0], p.shape[0]
        if estimator == "biased":
            weights = (1.0 / (n * n), 1.0 / (m * m), -2.0 / (n * m))
        else:
            w_qp = -2.0 / (n * (n - 1)) if estimator == "unbiased" and n == m else -2.0 / (n * m)
            weights = (1.0 / (n * (n - 1)), 1.0 / (m * (m - 1)), w_qp)
        keep_diag = estimator == "biased"
        drop_cross_diag = estimator == "unbiased" and n == m
        with torch.no_grad():
            if n + m <= block:  # small batches: one matrix for all three sums, fewer kernels
                value, grad_q, grad_p = _joint(
                    q,
                    p,
                    kind,
                    constants,
                    weights,
                    keep_diag,
                    drop_cross_diag,
                    compiled,
                    need_q or need_p,
                )
            else:
                fn = _compiled_block() if compiled else _block_terms
                value, grad_q, grad_p = _blocked(
                    q,
                    p,
                    kind,
                    constants,
                    weights,
                    keep_diag,
                    drop_cross_diag,
                    block,
                    fn,
                    need_q,
                    need_p,
                )
        empty = q.new_empty(0)
        ctx.save_for_backward(grad_q if need_q else empty, grad_p if need_p else empty)
        return value

    @staticmethod
    @once_differentiable  # second derivatives are not computed: refuse rather than return 0
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        grad_q, grad_p = ctx.saved_tensors
        gq = grad * grad_q if ctx.needs_input_grad[0] else None
        gp = grad * grad_p if ctx.needs_input_grad[1] else None
        return gq, gp, None, None, None, None, None


def _blocked(
    q: Tensor,
    p: Tensor,
    kind: str,
    constants: tuple[float, ...],
    weights: tuple[float, float, float],
    keep_diag: bool,
    drop_cross_diag: bool,
    block: int,
    fn: _BlockFn,
    need_q: bool,
    need_p: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """The weighted three sums block by block, and the gradients in ``q`` and ``p``."""
    w_qq, w_pp, w_qp = weights
    v_qq, g_qq = _within(q, kind, constants, block, fn, need_q, keep_diag)
    v_pp, g_pp = _within(p, kind, constants, block, fn, need_p, keep_diag)
    v_qp, g_q, g_p = _cross(q, p, kind, constants, block, fn, need_q, need_p, drop_cross_diag)
    value = w_qq * v_qq + w_pp * v_pp + w_qp * v_qp
    grad_q = g_qq.mul_(w_qq).add_(g_q, alpha=w_qp) if need_q else g_qq
    grad_p = g_pp.mul_(w_pp).add_(g_p, alpha=w_qp) if need_p else g_pp
    return value, grad_q, grad_p


def _distances(a: Tensor, a2: Tensor, b: Tensor, b2: Tensor) -> Tensor:
    """``(len(a), len(b))`` squared distances from the rows' squared norms ``a2``, ``b2``."""
    return torch.addmm(a2[:, None] + b2[None, :], a, b.mT, alpha=-2.0).clamp_min_(0.0)


def _block_terms(
    d2: Tensor,
    constants: tuple[float, ...],
    kind: str,
    need_slope: bool,
    weight: Tensor | None = None,
) -> tuple[Tensor, Tensor | None]:
    """``sum(weight * k(d2))`` over a block of squared distances (all weights 1 when ``weight``
    is None) and, if asked, the slope matrix ``weight * k'(d2)``.

    Without weights each scale's terms are summed at once; with weights the kernel matrix is
    accumulated first and weighted once, so that symmetric weights cancel exactly (the unbiased
    estimator of identical batches is exactly 0).
    """
    total = d2.new_zeros(())
    k = None if weight is None else torch.zeros_like(d2)
    slope = torch.zeros_like(d2) if need_slope else None
    for a in constants:
        if kind == "imq":
            t = (d2 + a).reciprocal_()  # k = a t, k' = -a t^2
            k_scale = a
            if slope is not None:
                slope.addcmul_(t, t, value=-a)
        else:
            t = torch.exp(d2 * (-1.0 / a))  # k = t, k' = -t / a
            k_scale = 1.0
            if slope is not None:
                slope.add_(t, alpha=-1.0 / a)
        if k is None:
            total = total + t.sum() * k_scale
        else:
            k.add_(t, alpha=k_scale)
    if k is not None and weight is not None:
        total = (k * weight).sum()
        if slope is not None:
            slope.mul_(weight)
    return total, slope


@functools.cache
def _compiled_block() -> _BlockFn:
    """:func:`_block_terms` compiled once per process."""
    return torch.compile(_block_terms, dynamic=None)  # type: ignore[return-value]


def _diag_value(d2_diag: Tensor, constants: tuple[float, ...], kind: str) -> Tensor:
    """The kernel summed over the diagonal entries of a block (to remove them from a sum)."""
    return _block_terms(d2_diag, constants, kind, need_slope=False)[0]


def _within(
    x: Tensor,
    kind: str,
    constants: tuple[float, ...],
    block: int,
    fn: _BlockFn,
    need_grad: bool,
    keep_diag: bool,
) -> tuple[Tensor, Tensor]:
    """``sum_{i, j} k(x_i, x_j)`` (without ``i = j`` unless ``keep_diag``) and its gradient."""
    n = x.shape[0]
    x2 = (x * x).sum(1)
    grad = torch.zeros_like(x) if need_grad else x.new_empty(0)
    total = x.new_zeros(())
    for i in range(0, n, block):
        xi, xi2 = x[i : i + block], x2[i : i + block]
        for j in range(i, n, block):
            xj, xj2 = x[j : j + block], x2[j : j + block]
            d2 = _distances(xi, xi2, xj, xj2)
            s, slope = fn(d2, constants, kind, need_grad)
            if i == j:
                if not keep_diag:
                    s = s - _diag_value(d2.diagonal(), constants, kind)
                total += s
                if slope is not None:
                    slope.diagonal().zero_()  # d(x_i - x_i) = 0: no gradient from the diagonal
                    grad[i : i + block] += 4.0 * (slope.sum(1, keepdim=True) * xi - slope @ xj)
            else:
                total += 2.0 * s
                if slope is not None:
                    grad[i : i + block] += 4.0 * (slope.sum(1, keepdim=True) * xi - slope @ xj)
                    grad[j : j + block] += 4.0 * (slope.sum(0)[:, None] * xj - slope.mT @ xi)
    return total, grad


def _cross(
    q: Tensor,
    p: Tensor,
    kind: str,
    constants: tuple[float, ...],
    block: int,
    fn: _BlockFn,
    need_q: bool,
    need_p: bool,
    drop_diag: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """``sum_{i, j} k(q_i, p_j)`` (without ``i = j`` if ``drop_diag``) and its two gradients."""
    q2, p2 = (q * q).sum(1), (p * p).sum(1)
    grad_q = torch.zeros_like(q) if need_q else q.new_empty(0)
    grad_p = torch.zeros_like(p) if need_p else p.new_empty(0)
    total = q.new_zeros(())
    for i in range(0, q.shape[0], block):
        qi, qi2 = q[i : i + block], q2[i : i + block]
        for j in range(0, p.shape[0], block):
            pj, pj2 = p[j : j + block], p2[j : j + block]
            d2 = _distances(qi, qi2, pj, pj2)
            s, slope = fn(d2, constants, kind, need_q or need_p)
            if drop_diag and i == j:
                s = s - _diag_value(d2.diagonal(), constants, kind)
                if slope is not None:
                    slope.diagonal().zero_()
            total += s
            if slope is not None:
                if need_q:
                    grad_q[i : i + block] += 2.0 * (slope.sum(1, keepdim=True) * qi - slope @ pj)
                if need_p:
                    grad_p[j : j + block] += 2.0 * (slope.sum(0)[:, None] * pj - slope.mT @ qi)
    return total, grad_q, grad_p


def _joint(
    q: Tensor,
    p: Tensor,
    kind: str,
    constants: tuple[float, ...],
    weights: tuple[float, float, float],
    keep_diag: bool,
    drop_cross_diag: bool,
    compiled: bool,
    need_grad: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """All three sums from one ``(n + m)^2`` matrix of the stacked samples, weighted per pair.

    For small batches the number of kernel launches, not the arithmetic, sets the time: one
    matrix instead of three does the same work in a third of the launches.
    """
    n, m = q.shape[0], p.shape[0]
    # torch.compile traces through functools.cache (and warns); call the function itself there
    weights_fn = _weights.__wrapped__ if torch.compiler.is_compiling() else _weights
    w = weights_fn(n, m, weights, keep_diag, drop_cross_diag).to(q.device, q.dtype)
    core = _compiled_joint() if compiled else _joint_core
    value, grad = core(torch.cat([q, p]), w, constants, kind, need_grad)
    return value, grad[:n], grad[n:]


def _joint_core(
    x: Tensor, w: Tensor, constants: tuple[float, ...], kind: str, need_grad: bool
) -> tuple[Tensor, Tensor]:
    """``sum_ij w_ij k(x_i, x_j)`` and its gradient in ``x`` (``w`` symmetric)."""
    x2 = (x * x).sum(1)
    value, slope = _block_terms(_distances(x, x2, x, x2), constants, kind, need_grad, w)
    if slope is None:
        return value, x
    return value, 4.0 * (slope.sum(1, keepdim=True) * x - slope @ x)


@functools.cache
def _compiled_joint() -> Callable[..., tuple[Tensor, Tensor]]:
    """:func:`_joint_core` compiled once per process."""
    return torch.compile(_joint_core, dynamic=None)


@functools.cache
def _weights(
    n: int, m: int, weights: tuple[float, float, float], keep_diag: bool, drop_cross: bool
) -> Tensor:
    """The per-pair weights of the stacked ``(n + m)^2`` matrix (float64, CPU; cached)."""
    w = torch.empty(n + m, n + m, dtype=torch.float64)
    w[:n, :n], w[n:, n:] = weights[0], weights[1]
    w[:n, n:] = weights[2] / 2.0  # the cross sum appears twice in the stacked matrix
    w[n:, :n] = weights[2] / 2.0
    if not keep_diag:
        w.diagonal().zero_()
    if drop_cross:
        w[:n, n:].diagonal().zero_()
        w[n:, :n].diagonal().zero_()
    return w
