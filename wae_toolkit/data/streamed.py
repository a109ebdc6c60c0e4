"""Training data larger than the memory budget: read a batch at a time, from a (memory-mapped)
array, by the training loop's data loader.

A run sets the budget (:func:`memory_budget`) while it loads its data. An array source whose
training part would take more than the budget as it is kept on the device (``uint8`` images one
byte per value, everything else float32) does not copy it: the part becomes a
:class:`StreamedPart`, which reads the rows a batch asks for (:meth:`StreamedPart.read`, in the
loader's workers) and keeps ``uint8`` values as they are until :meth:`StreamedPart.finish` turns
them into float32 on the device. The same samples, read either way, are the same float32 numbers:
the layout, the resizing and the division by 255 are those of the resident path
(:func:`~wae_toolkit.data.layout._gather`). The held-out part is always read whole.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from wae_toolkit.errors import DataError

__all__ = [
    "StreamedPart",
    "ArrayRows",
    "memory_budget",
    "streaming_budget",
    "resident_bytes",
    "keeps_bytes",
    "read_part",
]

_BUDGET: contextvars.ContextVar[int | None] = contextvars.ContextVar("wae_budget", default=None)
#: Rows read at a time when a part is scanned for its range and for non-finite values.
_SCAN_BYTES = 64 << 20


@contextlib.contextmanager
def memory_budget(nbytes: int | None) -> Iterator[None]:
    """Within the block, array sources stream a training part larger than ``nbytes``."""
    token = _BUDGET.set(nbytes)
    try:
        yield
    finally:
        _BUDGET.reset(token)


def streaming_budget() -> int | None:
    """The budget in force (None outside a run: every part is read whole)."""
    return _BUDGET.get()


def keeps_bytes(dtype: np.dtype, nbytes: int) -> bool:
    """Whether a run reads a training part lazily, as a :class:`StreamedPart`: when it is larger
    than the budget (it streams), or made of bytes (``uint8`` images stay bytes on the device
    until a batch is used; the run holds them whole when they fit)."""
    budget = streaming_budget()
    return budget is not None and (nbytes > budget or dtype == np.uint8)


def resident_bytes(n: int, sample_shape: tuple[int, ...], dtype: np.dtype) -> int:
    """Bytes ``n`` samples take on the device: one per value for ``uint8``, else four."""
    return n * math.prod(sample_shape) * (1 if dtype == np.uint8 else 4)


class ArrayRows:
    """Reads rows of an array (memory-mapped or not) as samples: in increasing order, laid out
    and resized as the resident path does."""

    def __init__(self, x: np.ndarray, layout: str, resize: Any) -> None:
        self.x, self.layout, self.resize = x, layout, resize
        self.raw = x.dtype == np.uint8
        self.row_bytes = max(1, math.prod(x.shape[1:]) * x.dtype.itemsize)

    def __call__(self, src: np.ndarray) -> np.ndarray:
        from wae_toolkit.data.layout import _arrange, read_rows

        order = np.argsort(src, kind="stable")
        part = np.empty((len(src), *self.x.shape[1:]), dtype=self.x.dtype)
        part[order] = read_rows(self.x, src[order])
        part = _arrange(part, self.layout)
        return part if self.resize is None else self.resize.apply(part)


class StreamedPart:
    """The training part of a data set, read a batch at a time.

    Args:
        rows: reads samples by their index in the source (``rows(indices) -> array``), ``uint8``
            when ``rows.raw`` is true; :class:`ArrayRows` for arrays, the image source's reader
            for folders of images. It runs in the loader's worker processes.
        idx: the source's indices in this part, in the part's order.
        sample_shape: the shape of one sample as read.
        where: the part, for messages.
    """

    def __init__(self, rows: Any, idx: np.ndarray, sample_shape: tuple[int, ...], where: str):
        self.rows, self.idx = rows, np.asarray(idx)
        self.sample_shape, self.where = tuple(sample_shape), where
        self.raw = bool(rows.raw)  #: kept as bytes until :meth:`finish`
        self.symmetric = False  #: ``scale=symmetric``: 2x - 1 after the division by 255

    def __len__(self) -> int:
        return len(self.idx)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.idx), *self.sample_shape)

    @property
    def nbytes(self) -> int:
        """What the part would take on the device."""
        return len(self.idx) * math.prod(self.sample_shape) * (1 if self.raw else 4)

    def read(self, positions: np.ndarray) -> torch.Tensor:
        """The samples at ``positions`` of the part, in that order: ``uint8`` for byte data (see
        :meth:`finish`), float32 otherwise."""
        part = self.rows(self.idx[np.asarray(positions)])
        if self.raw:
            return torch.from_numpy(np.ascontiguousarray(part, dtype=np.uint8))
        with np.errstate(over="ignore", invalid="ignore"):
            return torch.from_numpy(np.ascontiguousarray(part, dtype=np.float32))

    def finish(self, batch: torch.Tensor) -> torch.Tensor:
        """A batch :meth:`read` returned, moved to its device, as the float32 samples the
        resident path holds."""
        out = batch.float().div_(255.0) if self.raw else batch
        return out.mul_(2.0).sub_(1.0) if self.symmetric else out

    def scan(self) -> tuple[float, float]:
        """The smallest and largest value of the part as float32, read once in order (byte data
        lie in [0, 1] and are not read); NaN and infinite values are refused as the resident
        path refuses them."""
        if self.raw:
            return 0.0, 1.0
        lo, hi, bad = math.inf, -math.inf, 0
        row_bytes = getattr(self.rows, "row_bytes", 4 * math.prod(self.sample_shape))
        step = max(1, _SCAN_BYTES // row_bytes)
        for start in range(0, len(self.idx), step):
            values = self.read(np.arange(start, min(start + step, len(self.idx)))).numpy()
            finite = np.isfinite(values)
            bad += int(values.size - np.count_nonzero(finite))
            if finite.any():
                lo, hi = min(lo, float(values[finite].min())), max(hi, float(values[finite].max()))
        if bad:
            raise DataError(
                f"{self.where} holds {bad:,} NaN or infinite value{'s' if bad > 1 else ''} (or "
                "values beyond float32's range); only finite numbers can be used, so clean or "
                "drop those samples first."
            )
        return lo, hi


def read_part(
    x: np.ndarray,
    idx: np.ndarray | None,
    layout: str,
    resize: Any,
    sample_shape: tuple[int, ...],
    where: str,
    training: bool,
) -> torch.Tensor | StreamedPart:
    """Rows ``idx`` of ``x`` (all when None) as one float32 tensor, or, for a training part
    under a run's budget that is larger than it or made of bytes, as a :class:`StreamedPart`.
    A held-out part is always read whole (it must fit the machine's memory, as float32)."""
    from wae_toolkit.data.layout import _gather
    from wae_toolkit.memory import check_fits

    budget = streaming_budget()
    rows = np.arange(len(x)) if idx is None else idx
    if training and keeps_bytes(x.dtype, resident_bytes(len(rows), sample_shape, x.dtype)):
        return StreamedPart(ArrayRows(x, layout, resize), rows, sample_shape, where)
    if budget is not None:  # a run: the footprint of the whole data set was not checked
        check_fits(
            4 * len(rows) * math.prod(sample_shape),
            f"Reading {where.lower()} ({len(rows):,} samples) as float32",
            "hold out fewer samples (the data option test_fraction or holdout)"
            if not training
            else "keep fewer samples (the data option limit)",
            error=DataError,
        )
    return _gather(x, idx, layout, where, resize=resize)
