"""Devices: which names a run may give, and the torch device each means on this machine."""

from __future__ import annotations

import re
from typing import Any

from wae_toolkit.errors import UsageError, setting, setting_name, short_repr

__all__ = ["DEVICE_NAMES", "resolve_device"]

#: The devices a run may name (``torch.device`` takes more, which the toolkit does not use).
DEVICE_NAMES = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def resolve_device(device: str) -> Any:
    """The ``torch.device`` for ``device``: ``auto`` is CUDA when torch sees a GPU, else Apple's
    MPS when it is available, else the CPU; other names are checked to exist on this machine.

    Raises:
        UsageError: a name that is not a device the toolkit uses (``cpu:x``), or a device this
            machine does not have; one sentence.
    """
    import torch

    if not isinstance(device, str) or not DEVICE_NAMES.fullmatch(device):
        raise UsageError(
            f"{setting_name('device')} must be auto, cpu, cuda, cuda:N or mps; got "
            f"{short_repr(device)}."
        )
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available(torch) else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(
                f"{setting('device', device)} was asked for but this torch sees no CUDA GPU; "
                f"use {setting('device', 'cpu')} or {setting('device', 'auto')}."
            )
        idx = device.partition(":")[2]
        if idx and (not idx.isdigit() or int(idx) >= torch.cuda.device_count()):
            raise UsageError(
                f"{setting('device', device)}: there are {torch.cuda.device_count()} CUDA "
                "device(s), "
                f"numbered 0 to {torch.cuda.device_count() - 1}."
            )
    if device == "mps" and not _mps_available(torch):
        raise UsageError(
            f"{setting('device', 'mps')} was asked for but MPS is not available; use cpu or auto."
        )
    return torch.device(device)


def _mps_available(torch: Any) -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())
