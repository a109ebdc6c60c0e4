"""Building blocks for multi-process (DDP) training with :mod:`torch.distributed`.

One process per device, launched by ``torchrun``; every rank holds a full replica of the model,
the prior and the penalty (with its critic, for an adversarial penalty), and a disjoint shard of
the data.

What is gathered, and why
-------------------------
The WAE objective of one step is ``mean_i c(x_i, G(z_q_i)) + lambda * D_Z(z_q, z_p)``. The cost is
a mean over samples, so each rank can average it over its own shard and DDP's gradient averaging
recovers the gradient of the mean over the global batch. The latent penalty is not: an MMD, a
Sinkhorn divergence or a critic's loss is a function of the whole batch of codes (the MMD sums a
kernel over all pairs). Computing it per rank on the local batch of ``B / N`` codes, as pythae
does for its WAE-MMD, gives another estimator of the same divergence: it misses every pair of
codes that lie on different ranks, so it is noisier (a U-statistic on ``B / N`` samples instead of
``B``), and the biased V-statistic overestimates by ``O(N / B)`` instead of ``O(1 / B)``.

Here each rank instead all-gathers its codes and its prior samples with :func:`gather`, which is
differentiable, and evaluates the penalty on the global batch: the value is the single-process
estimator on the concatenated batch, identical on every rank, and the gradients that reach each
rank's own codes are those of the single-process objective (see :func:`gather` for the
derivation). The price is that every rank computes the full ``(N B) x (N B)`` kernel, so the
penalty's cost per rank does not shrink with ``N``; for the batch sizes WAEs use it is small next
to the networks.

An adversarial penalty is replicated the same way: its critic starts from the same weights on every
rank (:func:`sync_module`) and every rank runs ``critic_step`` on the same gathered, detached codes
and prior samples, so the critic updates are identical and the replicas stay equal without any
gradient communication.

The helpers
-----------
* :class:`DistContext`, :func:`init_from_env`, :func:`shutdown`: the process group.
* :func:`gather`: differentiable all-gather along dim 0.
* :func:`epoch_permutation`, :func:`shard_indices`, :func:`seed_for_rank`: data sharding and
  randomness.
* :func:`sync_module`, :func:`average_gradients`, :func:`wrap_ddp`, :func:`ddp_model`,
  :func:`max_divergence`: keeping the replicas equal.
* :func:`all_reduce_mean`, :func:`barrier`: logging and coordination.

Every function is a no-op (or the identity) when no process group is initialised or its world size
is 1, so a training loop can call them unconditionally. The library never prints; only the main
rank (``ctx.is_main``) should write files.

Wiring into a training loop (launched as ``torchrun --nproc-per-node N ...``)::

    ctx = init_from_env()                                  # world size 1 without torchrun
    torch.manual_seed(seed)                                # same initial weights on every rank
    model, penalty = build(...); penalty.bind(model.prior)
    model.to(ctx.device); penalty.to(ctx.device)
    sync_module(model); sync_module(penalty)               # rank 0's weights, critic included
    view = ddp_model(model, ctx)                           # DDP encoder and decoder
    opt = adam(model.parameters(), ...)                    # the optimizer sees `model`
    torch.manual_seed(seed_for_rank(seed, ctx.rank))       # distinct prior samples per rank
    for epoch in ...:
        local = shard_indices(epoch_permutation(n, seed, epoch, ctx.device), b,
                              rank=ctx.rank, world_size=ctx.world_size)
        for i in range(len(local) // b):
            x = train_x[local[i * b : (i + 1) * b]]
            mean, log_var = view.encode_stats(x); z_q = view.draw(mean, log_var)
            z_p = model.prior.sample(b)
            z_all, zp_all = gather(z_q), gather(z_p)
            if penalty.adversarial:
                penalty.critic_step(z_all.detach(), zp_all.detach())
            loss = cost(x, view.decode(z_q)).mean() + lam * penalty(z_all, zp_all)
            opt.zero_grad(); loss.backward()
            average_gradients(model.prior)                 # only if the prior is learnable
            opt.step()
        logs = all_reduce_mean(epoch_means)                # every rank, then:
        if ctx.is_main: write metrics, evaluate, save weights of `model`
    shutdown(ctx)
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx, once_differentiable

from wae_toolkit.errors import UsageError

if TYPE_CHECKING:
    from wae_toolkit.build.model import WAE

__all__ = [
    "DistContext",
    "init_from_env",
    "shutdown",
    "world_size",
    "rank",
    "gather",
    "epoch_permutation",
    "shard_indices",
    "seed_for_rank",
    "sync_module",
    "average_gradients",
    "wrap_ddp",
    "ddp_model",
    "max_divergence",
    "all_reduce_mean",
    "barrier",
]

#: The environment variables ``torchrun`` sets and :func:`init_from_env` reads.
ENV_VARS: tuple[str, ...] = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

_U64 = 2**64


# -- the process group ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the process group.

    Attributes:
        rank: global rank of this process, ``0 <= rank < world_size``.
        world_size: number of processes.
        local_rank: rank on this machine; the index of its GPU.
        device: the device this rank computes on.
        backend: ``"nccl"``, ``"gloo"``, ... ; ``None`` for a single process without a group.
        owns_group: whether :func:`init_from_env` created the process group (and
            :func:`shutdown` should destroy it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the only rank that writes files."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        """Whether there is more than one process."""
        return self.world_size > 1


def _env_int(name: str, low: int, high: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        raise UsageError(
            f"{name} is not set although WORLD_SIZE={os.environ.get('WORLD_SIZE')} asks for "
            f"several processes; launch with torchrun, which sets {', '.join(ENV_VARS)}."
        )
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"{name} must be an integer; got {raw!r}.") from None
    if value < low or (high is not None and value >= high):
        bound = f">= {low}" if high is None else f"in [{low}, {high})"
        raise UsageError(f"{name} must be an integer {bound}; got {value}.")
    return value


def _pick_device(device: str | torch.device | None, local_rank: int) -> torch.device:
    name = "auto" if device is None else str(device)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def init_from_env(
    backend: str | None = None,
    timeout: timedelta | None = None,
    device: str | torch.device | None = None,
) -> DistContext:
    """Join the process group that ``torchrun`` describes in the environment.

    Reads ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``. When
    ``WORLD_SIZE`` is unset or 1, nothing is initialised and a single-process context is returned.
    When a default process group already exists (the caller initialised it), it is described and
    left alone.

    Args:
        backend: ``None`` picks ``"nccl"`` when the device is a CUDA GPU, else ``"gloo"``.
        timeout: how long a collective may wait for the other ranks before failing (torch's
            default when ``None``); a short one turns a hang into an error.
        device: ``None`` or ``"auto"``: ``cuda:LOCAL_RANK`` when torch sees a GPU, else the CPU;
            ``"cuda"`` means ``cuda:LOCAL_RANK``; any other name is used as given. For CUDA the
            current device is set to it.

    Raises:
        UsageError: a variable is missing or malformed, or the backend does not fit the device.
    """
    if dist.is_available() and dist.is_initialized():
        r, w = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", r))
        dev = _pick_device(device, local)
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        return DistContext(r, w, local, dev, str(dist.get_backend()), owns_group=False)
    raw_world = os.environ.get("WORLD_SIZE")
    if raw_world is None or not raw_world.strip():
        return DistContext(device=_pick_device(device, 0))
    world = _env_int("WORLD_SIZE", 1)
    if world == 1:
        return DistContext(device=_pick_device(device, 0))
    if not dist.is_available():
        raise UsageError("This torch was built without torch.distributed; run one process.")
    r = _env_int("RANK", 0, world)
    local = _env_int("LOCAL_RANK", 0) if "LOCAL_RANK" in os.environ else r
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name, "").strip():
            raise UsageError(
                f"{name} is not set although WORLD_SIZE={world}; launch with torchrun, which "
                f"sets {', '.join(ENV_VARS)}."
            )
    dev = _pick_device(device, local)
    if backend is None:
        backend = "nccl" if dev.type == "cuda" else "gloo"
    if backend == "nccl" and dev.type != "cuda":
        raise UsageError(
            f"The nccl backend needs CUDA tensors but this rank computes on {dev}; use "
            "backend='gloo' for CPU training."
        )
    if dev.type == "cuda":
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UsageError(
                f"Rank {r} (LOCAL_RANK={local}) wants {dev}, but this machine has "
                f"{torch.cuda.device_count()} CUDA device(s); start at most that many processes "
                "per machine (torchrun --nproc-per-node)."
            )
        torch.cuda.set_device(dev)
    kwargs: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
    dist.init_process_group(backend, init_method="env://", rank=r, world_size=world, **kwargs)
    return DistContext(r, world, local, dev, backend, owns_group=True)


def shutdown(ctx: DistContext | None = None) -> None:
    """Destroy the default process group.

    With ``ctx``, only when :func:`init_from_env` created it (``ctx.owns_group``); without, whenever
    one is initialised. A no-op otherwise, so it is safe in a ``finally`` block.
    """
    if ctx is not None and not ctx.owns_group:
        return
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active(group: Any = None) -> bool:
    return bool(dist.is_available() and dist.is_initialized() and world_size(group) > 1)


def world_size(group: Any = None) -> int:
    """The number of processes in ``group`` (the default group); 1 when there is none."""
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return int(dist.get_world_size(group))


def rank(group: Any = None) -> int:
    """This process's rank in ``group`` (the default group); 0 when there is none."""
    if not (dist.is_available() and dist.is_initialized()):
        return 0
    return int(dist.get_rank(group))


def barrier(group: Any = None) -> None:
    """Wait for every rank (e.g. until rank 0 has created the run folder); no-op alone."""
    if _active(group):
        dist.barrier(group)


# -- the differentiable gather -------------------------------------------------------------------

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


# -- data sharding and randomness ----------------------------------------------------------------


def epoch_permutation(
    n: int, seed: int, epoch: int, device: torch.device | str | None = None
) -> Tensor:
    """A permutation of ``range(n)`` that depends only on ``(seed, epoch)``: the same on every rank.

    Drawn on the CPU with its own generator (so neither the global RNG nor the device changes it),
    then moved to ``device``.
    """
    if n < 1:
        raise UsageError(f"epoch_permutation needs n >= 1; got {n}.")
    mixed = (int(seed) * 0x9E3779B97F4A7C15 + int(epoch) + 1) % _U64
    gen = torch.Generator().manual_seed(mixed)
    return torch.randperm(n, generator=gen).to(device or "cpu")


def shard_indices(perm: Tensor, batch_size: int, *, rank: int, world_size: int) -> Tensor:
    """This rank's share of an epoch's global permutation, laid out batch after batch.

    Step ``i`` of the epoch uses the global batch ``perm[i * N * b : (i + 1) * N * b]`` (with
    ``N = world_size`` and ``b = batch_size`` per rank); rank ``r`` takes its ``r``-th block of
    ``b``. The returned tensor holds rank ``r``'s blocks one after the other, so the loop takes
    ``local[i * b : (i + 1) * b]`` at step ``i``, exactly like a single-process loop, and
    :func:`gather` of the ranks' batches is the single-process global batch of a run with batch
    size ``N * b`` and the same permutation. The shards are disjoint, every rank gets
    ``len(perm) // (N * b)`` batches of ``b``, and the remainder is dropped.

    Args:
        perm: the epoch's permutation, the same on every rank (:func:`epoch_permutation`).
        batch_size: the per-rank batch size ``b``.
        rank: this rank, ``0 <= rank < world_size``.
        world_size: the number of ranks.

    Raises:
        UsageError: bad arguments, or fewer than ``N * b`` samples.
    """
    for name, value, low in (("batch_size", batch_size, 1), ("world_size", world_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise UsageError(f"shard_indices: {name} must be an integer >= {low}; got {value!r}.")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
        raise UsageError(f"shard_indices: rank must be in [0, {world_size}); got {rank!r}.")
    if perm.ndim != 1:
        raise UsageError(f"shard_indices: perm must be 1-D; got shape {tuple(perm.shape)}.")
    global_batch = batch_size * world_size
    steps = perm.shape[0] // global_batch
    if steps == 0:
        raise UsageError(
            f"{perm.shape[0]} samples cannot fill one global batch of {world_size} ranks x "
            f"{batch_size}; lower the batch size to at most {perm.shape[0] // world_size}."
        )
    blocks = perm[: steps * global_batch].view(steps, world_size, batch_size)
    return blocks[:, rank].reshape(-1)


def seed_for_rank(seed: int, rank: int) -> int:
    """A seed for rank ``rank``'s own randomness (prior samples, encoder noise, input noise).

    Seed the model's initialisation with ``seed`` on every rank (same weights), then
    ``torch.manual_seed(seed_for_rank(seed, rank))``: with the same seed everywhere, every rank
    would draw the same prior samples, and the gathered ``z_p`` would hold ``N`` copies of one
    batch. Rank 0 keeps ``seed``, so a single-process run is unchanged.
    """
    return (int(seed) + int(rank) * 0x9E3779B97F4A7C15) % _U64


# -- keeping the replicas equal ------------------------------------------------------------------


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
    from wae_toolkit.build.model import WAE

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


# -- logging -------------------------------------------------------------------------------------


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
