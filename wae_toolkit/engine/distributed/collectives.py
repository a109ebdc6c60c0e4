"""Collectives the loop needs: a differentiable all-gather and the mean of logged scalars."""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from wae_toolkit.errors import UsageError

if TYPE_CHECKING:
    pass
from wae_toolkit.engine.distributed.context import (
    _active,
    rank,
    world_size,
)

_DTYPES: tuple[torch.dtype, ...] = (
    torch.float32,
    torch.float64,
    torch.float16,
    torch.bfloat16,
    torch.int64,
    torch.int32,
    torch.int16,
    torch.int8,
    torch.uint8,
    torch.bool,
    torch.complex64,
    torch.complex128,
)


def _all_gather_single(out: Tensor, t: Tensor, group: Any) -> None:
    """All-gather ``t`` into ``out``, ranks concatenated along dim 0.

    ``all_gather_single`` in recent torch, ``all_gather_into_tensor`` (its deprecated name) before.
    """
    fn = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    fn(out, t, group=group)


def _dtype_code(dtype: torch.dtype) -> int:
    return _DTYPES.index(dtype) if dtype in _DTYPES else zlib.crc32(str(dtype).encode())


def _dtype_name(code: int) -> str:
    return str(_DTYPES[code]).removeprefix("torch.") if 0 <= code < len(_DTYPES) else "other"


def _check_same_shape(t: Tensor, group: Any) -> None:
    """One tiny all-gather of ``(ndim, dtype, rows, elements per row)``; the same verdict on
    every rank, so a mismatch raises everywhere instead of hanging."""
    per_row = math.prod(t.shape[1:])
    meta = torch.tensor(
        [t.ndim, _dtype_code(t.dtype), t.shape[0], per_row], dtype=torch.int64, device=t.device
    )
    metas = torch.empty(world_size(group) * 4, dtype=torch.int64, device=t.device)
    _all_gather_single(metas, meta, group)
    rows = metas.view(-1, 4).tolist()
    if any(row != rows[0] for row in rows):
        held = ", ".join(
            f"rank {i} ({r[2]} rows x {r[3]} elements, {r[0]}-D, {_dtype_name(r[1])})"
            for i, r in enumerate(rows)
        )
        raise UsageError(
            "gather needs a tensor of the same shape and dtype on every rank (it all-gathers "
            f"along dim 0 into equal slices); got {held}. Give every rank the same batch size "
            "(shard_indices does)."
        )


class _Gather(torch.autograd.Function):
    """All-gather along dim 0; backward: all-reduce (sum) of the gradient, this rank's slice."""

    @staticmethod
    def forward(ctx: FunctionCtx, t: Tensor, group: Any) -> Tensor:
        t = t.contiguous()
        n = world_size(group)
        out = t.new_empty((n * t.shape[0], *t.shape[1:]))
        _all_gather_single(out, t, group)
        ctx.group = group  # type: ignore[attr-defined]
        ctx.rows = t.shape[0]  # type: ignore[attr-defined]
        ctx.rank = rank(group)  # type: ignore[attr-defined]
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        # Sum over ranks of d(loss_r)/d(gathered), then keep the rows that came from this rank.
        total = grad.contiguous().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM, group=ctx.group)
        return total.narrow(0, ctx.rank * ctx.rows, ctx.rows), None


def gather(t: Tensor, *, check: bool = True, group: Any = None) -> Tensor:
    """All-gather ``t`` along dim 0 from every rank, in rank order, differentiably.

    Every rank must hold a tensor of the same shape and dtype (the same batch size: the
    collective splits the output into equal slices). Returns ``(N * B, *S)`` for ``t`` of shape
    ``(B, *S)`` on ``N`` ranks, rows ``r * B : (r + 1) * B`` being rank ``r``'s ``t``, and ``t``
    itself when there is no process group or a single process.

    Gradients. In backward, the incoming gradient is all-reduced (summed over ranks) and this
    rank's slice is returned. Why that is right: with ``Z = gather(z_r)`` the global codes and
    rank ``r``'s local loss ``l_r = mean_{i in shard r} c_i + lambda * P(Z)``, every rank computes
    the same ``P(Z)`` and the same ``g = dP/dZ``. Backward on rank ``r`` sums the ``N`` identical
    ``g`` and keeps slice ``r``: ``N * g_r``. DDP (or :func:`average_gradients`) then averages the
    parameter gradients over ranks::

        (1/N) sum_r [ (1/B) sum_{i in r} dc_i/dtheta + lambda * N * g_r dz_r/dtheta ]
            = (1/(N B)) sum_i dc_i/dtheta + lambda * sum_r g_r dz_r/dtheta

    which is the single-process gradient of ``mean over the global batch of c + lambda * P(Z)``.
    A plain ``all_gather`` that only lets the local slice's gradient through (without the sum)
    would give ``lambda / N`` times the penalty's gradient instead. The all-reduce (rather than
    multiplying by ``N``) keeps the result right when the ranks' losses differ downstream. The
    backward pass is a collective too: every rank must backpropagate through the gathered tensor.

    Args:
        t: ``(B, *S)``, at least one dimension.
        check: first compare shapes and dtypes across ranks with one tiny extra collective (and a
            host synchronisation on GPU), so that a mismatch raises :class:`UsageError` on every
            rank instead of hanging or corrupting the result. Pass ``False`` in a hot loop whose
            batch sizes are equal by construction.
        group: the process group; the default group when ``None``.

    Raises:
        UsageError: ``t`` is not a tensor with at least one dimension, or (``check``) the ranks
            hold tensors of different shapes or dtypes.
    """
    if not isinstance(t, Tensor) or t.ndim < 1:
        what = f"shape {tuple(t.shape)}" if isinstance(t, Tensor) else type(t).__name__
        raise UsageError(f"gather needs a tensor with a batch dimension; got {what}.")
    if not _active(group):
        return t
    if check:
        _check_same_shape(t, group)
    out: Tensor = _Gather.apply(t, group)
    return out


def all_reduce_mean(tensors: Mapping[str, Tensor], group: Any = None) -> dict[str, Tensor]:
    """Means over the ranks of named tensors (the logged losses), in one all-reduce.

    Every rank must pass the same names with the same shapes (the order does not matter). The
    results keep each tensor's shape, dtype and device, and are detached. Without a process group
    the tensors are returned detached.
    """
    if not _active(group) or not tensors:
        return {k: v.detach() for k, v in tensors.items()}
    keys = sorted(tensors)
    device = tensors[keys[0]].device
    flat = torch.cat([tensors[k].detach().reshape(-1).to(device, torch.float64) for k in keys])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
    flat.div_(world_size(group))
    out: dict[str, Tensor] = {}
    offset = 0
    for k in keys:
        t = tensors[k]
        out[k] = flat[offset : offset + t.numel()].view(t.shape).to(t.device, t.dtype)
        offset += t.numel()
    return {k: out[k] for k in tensors}
