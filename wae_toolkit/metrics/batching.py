"""Apply a function to a large tensor in batches, without building a graph."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["batched"]


@torch.no_grad()
def batched(
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    batch_size: int = 500,
    device: torch.device | str | None = None,
) -> Tensor:
    """``torch.cat([fn(x[i : i + batch_size]) for each batch])``, each batch first moved to
    ``device`` when given. Memory only: the result does not depend on ``batch_size``."""
    parts = []
    for i in range(0, len(x), batch_size):
        part = x[i : i + batch_size]
        parts.append(fn(part if device is None else part.to(device)))
    return torch.cat(parts)
