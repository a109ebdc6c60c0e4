"""The process group: joining it from torchrun's environment, ranks, and sharding the data."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import Tensor

from wae_toolkit.errors import UsageError

if TYPE_CHECKING:
    pass


#: The environment variables ``torchrun`` sets and :func:`init_from_env` reads.
ENV_VARS: tuple[str, ...] = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


_U64 = 2**64


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


def launched_rank() -> int:
    """This process's rank as the launcher's environment gives it (0 when launched alone),
    before any process group exists."""
    try:
        return int(os.environ.get("RANK", "0") or 0) if _world_from_env() > 1 else 0
    except ValueError:
        return 0


def _world_from_env() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1") or 1)
    except ValueError:
        return 1


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
