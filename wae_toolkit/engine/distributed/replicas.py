"""Keeping the replicas equal: rank 0's weights, averaged gradients, DDP wrappers and a check."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

if TYPE_CHECKING:
    from wae_toolkit.assembly.model import WAE
from wae_toolkit.engine.distributed.context import (
    DistContext,
    _active,
    world_size,
)


def _tensors(module: nn.Module) -> list[Tensor]:
    return [t for t in (*module.parameters(), *module.buffers()) if t.numel() > 0]


def sync_module(module: nn.Module, src: int = 0, group: Any = None) -> None:
    """Copy ``module``'s parameters and buffers from rank ``src`` to every rank, in place.

    Call it once the module is built, before training: on the model (prior parameters
    included) and on the penalty after ``bind`` (which builds an adversarial penalty's critic).
    Every rank must hold the same architecture. A no-op without a process group.
    """
    if not _active(group):
        return
    with torch.no_grad():
        for t in _tensors(module):
            dist.broadcast(t.detach(), src, group=group)


def _coalesced(tensors: list[Tensor]) -> dict[tuple[torch.device, torch.dtype], list[Tensor]]:
    buckets: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}
    for t in tensors:
        buckets.setdefault((t.device, t.dtype), []).append(t)
    return buckets


def average_gradients(params: nn.Module | Iterable[Tensor], group: Any = None) -> None:
    """Replace every ``.grad`` by its mean over the ranks (one all-reduce per device and dtype).

    What DDP does, without its overlap of communication and computation: call it after
    ``loss.backward()`` and before ``optimizer.step()``, for parameters that are not inside a DDP
    module (a learnable prior's, or the whole model instead of DDP). Parameters without a gradient
    are skipped; that set must be the same on every rank. A no-op without a process group.
    """
    plist = list(params.parameters()) if isinstance(params, nn.Module) else list(params)
    grads = [p.grad for p in plist if p.grad is not None]
    if not grads or not _active(group):
        return
    n = world_size(group)
    with torch.no_grad():
        for bucket in _coalesced(grads).values():
            flat = torch.cat([g.reshape(-1) for g in bucket])
            dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
            flat.div_(n)
            offset = 0
            for g in bucket:
                g.copy_(flat[offset : offset + g.numel()].view_as(g))
                offset += g.numel()


def wrap_ddp(module: nn.Module, ctx: DistContext, **kwargs: Any) -> nn.Module:
    """``DistributedDataParallel(module)`` on ``ctx``'s device; ``module`` itself alone.

    DDP broadcasts rank 0's parameters and buffers when it is built, then averages gradients
    during backward. It only does so for computations that go through the wrapper's ``forward``:
    calling a method of ``module.module`` bypasses it. ``kwargs`` go to DDP.
    """
    if not ctx.is_distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    if ctx.device.type == "cuda":
        kwargs.setdefault("device_ids", [ctx.device])
    return DistributedDataParallel(module, **kwargs)


def ddp_model(model: WAE, ctx: DistContext, **kwargs: Any) -> WAE:
    """A view of ``model`` whose encoder and decoder are DDP-wrapped, for the training steps.

    The view shares every parameter with ``model`` (and its prior is ``model.prior``), so the
    optimizer, the evaluation and the saved weights keep using ``model`` and its state-dict keys;
    ``view.encode_stats``, ``view.draw`` and ``view.decode`` go through DDP. A learnable prior's
    gradients are not DDP's: average them with :func:`average_gradients` (``model.prior``). Returns
    ``model`` itself alone.
    """
    if not ctx.is_distributed:
        return model
    from wae_toolkit.assembly.model import WAE

    view = WAE(
        wrap_ddp(model.encoder, ctx, **kwargs),
        wrap_ddp(model.decoder, ctx, **kwargs),
        model.prior,
        model.gaussian,
    )
    view.train(model.training)
    return view


def max_divergence(module: nn.Module, group: Any = None) -> float:
    """The largest difference of any floating-point parameter or buffer between two ranks.

    0.0 when the replicas are identical (and without a process group). Costs two all-reduces of
    the module's size: a check for tests or for the end of an epoch, not for every step.
    """
    tensors = [t for t in _tensors(module) if t.is_floating_point()]
    if not tensors or not _active(group):
        return 0.0
    worst = 0.0
    with torch.no_grad():
        for bucket in _coalesced(tensors).values():
            flat = torch.cat([t.detach().reshape(-1).double() for t in bucket])
            high, low = flat.clone(), flat.clone()
            dist.all_reduce(high, op=dist.ReduceOp.MAX, group=group)
            dist.all_reduce(low, op=dist.ReduceOp.MIN, group=group)
            worst = max(worst, float((high - low).max()))
    return worst
