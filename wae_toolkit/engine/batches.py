"""Where the training batches come from: the data on the device, or a stream from disk.

The loop draws an epoch's order as rows of sample indices (the same permutation either way) and
asks :meth:`epoch` for the batches from a given row on, so a resumed epoch continues with the
same samples in the same order on both paths:

- :class:`ResidentBatches` indexes the training tensor held on the device (nothing is copied
  from the host per step);
- :class:`StreamedBatches` reads each batch of a :class:`~wae_toolkit.data.streamed.StreamedPart`
  in ``torch.utils.data.DataLoader`` workers (a batch per item, prefetched, in pinned memory on
  CUDA), moves it to the device and only there turns ``uint8`` values into float32. Its memory
  is the loader's prefetched batches, whatever the size of the data set.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import torch

from wae_toolkit.data.streamed import StreamedPart

__all__ = ["ResidentBatches", "StreamedBatches", "default_workers"]

#: Batches each worker reads ahead.
PREFETCH = 2


def default_workers() -> int:
    """Loader workers when ``workers`` is not set: up to 4, leaving one core to the loop."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


class ResidentBatches:
    """Batches of the training samples held on the device; ``finish`` turns a batch of bytes
    into float32 there (``uint8`` images are held as bytes: a quarter of the memory)."""

    def __init__(self, x: torch.Tensor, finish: Any = None) -> None:
        self.x, self.finish = x, finish

    def epoch(self, rows: torch.Tensor, start: int) -> Iterator[torch.Tensor]:
        for i in range(start, len(rows)):
            batch = self.x[rows[i]]
            yield batch if self.finish is None else self.finish(batch)

    def floats(self) -> torch.Tensor:
        """All the samples as float32 (for the encoder pre-training)."""
        return self.x if self.finish is None else self.finish(self.x)


class _Rows(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """A loader's item is a whole batch: the rows it is given, read at once."""

    def __init__(self, part: StreamedPart) -> None:
        self.part = part

    def __len__(self) -> int:
        return len(self.part)

    def __getitem__(self, rows: Any) -> torch.Tensor:
        return self.part.read(rows.numpy())


class StreamedBatches:
    """Batches read from disk by ``workers`` processes (0: in the loop's own process)."""

    def __init__(
        self, part: StreamedPart, device: torch.device, workers: int, channels_last: bool
    ) -> None:
        self.part, self.device, self.workers = part, device, workers
        self.channels_last = channels_last and len(part.sample_shape) == 3

    def epoch(self, rows: torch.Tensor, start: int) -> Iterator[torch.Tensor]:
        order = list(rows[start:].cpu().unbind(0))
        loader = torch.utils.data.DataLoader(
            _Rows(self.part),
            batch_size=None,
            sampler=order,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=PREFETCH if self.workers else None,
            generator=torch.Generator().manual_seed(0),  # the run's random state stays untouched
        )
        for batch in loader:
            x = self.part.finish(batch.to(self.device, non_blocking=True))
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x
