"""Memory estimates: sizes that cannot fit are refused with a message before they are allocated.

A size given by the user (a data set of ``n`` points, images resized to ``size`` pixels, a number
of samples or projections) is turned into an estimate of the bytes it needs, and
:func:`check_fits` compares it with :func:`total_memory` before anything is allocated. Without
the check, a huge size ends in an allocation error from deep inside NumPy or torch, or worse, in
the operating system's out-of-memory killer, which ends the process without a message.

The budget rule: a size is refused when its estimate exceeds the machine's *total* memory (the
physical memory, or a container's limit when lower), not the memory free at the moment. The
estimate counts only the large arrays and is rough, so the rule refuses what can never fit, on
any load, and gives the same answer every time; a size that fits the total but not the memory
free right now is left to the operating system, as any other program's would be.
"""

from __future__ import annotations

import math
import os
from typing import Any

from wae_toolkit.errors import UsageError

__all__ = [
    "total_memory",
    "available_memory",
    "device_memory",
    "check_fits",
    "format_bytes",
    "parse_bytes",
    "default_budget",
]


def total_memory() -> int | None:
    """Bytes of memory this process may use: the physical memory, or a container's (cgroup)
    limit when lower; ``None`` where the platform does not say."""
    try:
        total = int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(limit_file, encoding="ascii") as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def device_memory(device: Any) -> int | None:
    """Bytes of memory of a CUDA ``device`` (a ``torch.device`` or its name); ``None`` for other
    devices (their tensors live in the machine's memory) or where torch cannot tell."""
    if getattr(device, "type", str(device).split(":")[0]) != "cuda":
        return None
    try:
        import torch

        return int(torch.cuda.get_device_properties(torch.device(device)).total_memory)
    except Exception:  # no CUDA build, no such device: nothing to compare with
        return None


def format_bytes(nbytes: int | float) -> str:
    """``nbytes`` for messages: ``"12 kB"``, ``"3.2 MB"``, ``"96.0 GB"``, ``"1,600.0 GB"``, and
    beyond a million GB ``"8.0 x 10^14 GB"`` (a Python int of any size, without converting it to
    a float)."""
    if nbytes < 1e6:
        return f"{max(1, round(nbytes / 1e3))} kB"
    if nbytes < 1e9:
        return f"{nbytes / 1e6:.1f} MB"
    if nbytes < 1e15:
        return f"{nbytes / 1e9:,.1f} GB"
    exponent = math.floor(math.log10(nbytes)) - 9
    mantissa = 10 ** (math.log10(nbytes) - 9 - exponent)
    return f"{mantissa:.1f} x 10^{exponent} GB"


def check_fits(
    nbytes: int | float,
    what: str,
    fix: str,
    error: type[UsageError] = UsageError,
    device: Any = None,
) -> None:
    """Refuse ``nbytes`` when they exceed :func:`total_memory`, or for a CUDA ``device`` the
    device's memory (nothing is checked where the platform does not tell its memory).

    Args:
        nbytes: the estimate, in bytes (a Python int: it may be far beyond 64 bits).
        what: the subject of the sentence, e.g. ``"The moons toy set with n=10**14"``.
        fix: what to do instead, e.g. ``"use a smaller n"``.
        error: the :class:`UsageError` subclass to raise (``DataError`` for data options).
        device: where the bytes are allocated, when it may be a GPU.

    Raises:
        UsageError: one sentence with the estimate and the memory it exceeds.
    """
    for total, whose in ((device_memory(device), "the GPU's"), (total_memory(), "this machine's")):
        if total is not None and nbytes > total:
            raise error(
                f"{what} would need about {format_bytes(nbytes)} of memory, more than {whose} "
                f"{format_bytes(total)}; {fix}."
            )


_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9}
_UNITS |= {"t": 1e12, "tb": 1e12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(value: Any) -> int | None:
    """``"8GB"``, ``"512 MiB"``, ``"1.5g"``, ``2_000_000`` (bytes) as a number of bytes; None for
    text that is no size (the caller says what is allowed)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value) if math.isfinite(value) and value > 0 else None
    if not isinstance(value, str):
        return None
    text = value.strip().lower().replace(" ", "").replace("_", "")
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(number) :]
    try:
        amount = float(number)
    except ValueError:
        return None
    if unit not in _UNITS or not math.isfinite(amount) or amount <= 0:
        return None
    return int(amount * _UNITS[unit])


def available_memory() -> int | None:
    """Bytes the operating system can give this process now without swapping (Linux's
    ``MemAvailable``), bounded by :func:`total_memory`; ``None`` where the platform does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
                    total = total_memory()
                    return free if total is None else min(free, total)
    except (OSError, ValueError, IndexError):
        pass
    return total_memory()


def default_budget(device: Any = None) -> int | None:
    """The memory budget of a run's training data: half of the memory available now, and on a
    GPU at most half of its memory; ``None`` (no limit) where neither is known."""
    limits = [m // 2 for m in (available_memory(), device_memory(device)) if m is not None]
    return min(limits) if limits else None
