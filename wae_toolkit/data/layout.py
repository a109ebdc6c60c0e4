"""Array layouts: which shapes and dtypes hold samples, and their conversion to float32.

How an array's shape maps to ``(N, *S)`` samples, the allowed dtypes, copying samples into one
float32 tensor in chunks, and validating label arrays.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch

from wae_toolkit.data.resample import Resize
from wae_toolkit.errors import DataError

_ALLOWED_SHAPES = (
    "(N, F) vectors, (N, C, L) signals, (N, H, W) grayscale images, (N, H, W, C) channels-last "
    "images with C in 1, 3 or 4 and H, W > 4, or (N, C, H, W) images with C in 1 or 3, with "
    "N >= 2 samples"
)
#: What the data option ``layout`` takes: ``auto`` applies :data:`LAYOUT_RULE`.
LAYOUTS = ("auto", "image", "signal")
#: How ``layout=auto`` reads a 3-D array ``(N, A, B)``.
LAYOUT_RULE = (
    "an (N, A, B) array holds signals of A channels and length B when A <= 16 and B >= 8 A, "
    "else grayscale images of A x B pixels"
)
_MAX_SIGNAL_CHANNELS, _MIN_SIGNAL_RATIO = 16, 8

_CHUNK_BYTES = 64 * 2**20  # raw bytes gathered at a time when converting an array to float32


def _layout(shape: tuple[int, ...], where: str, layout: str = "auto") -> str:
    """How an array of ``shape`` maps to samples: ``flat``, ``hw``, ``hwc`` or ``chw`` (images),
    ``cl`` (signals, kept) or ``l`` (one-channel signals, a channel axis added).

    ``layout`` is the data option: ``auto`` (:data:`LAYOUT_RULE` for 3-D arrays), ``image`` or
    ``signal``, which say what a 3-D array holds (``signal`` also reads 2-D arrays as
    one-channel signals)."""
    if len(shape) < 2 or shape[0] < 2 or 0 in shape:
        raise DataError(f"{where} has shape {tuple(shape)}; allowed are {_ALLOWED_SHAPES}.")
    if layout == "signal":
        if len(shape) in (2, 3):
            return "l" if len(shape) == 2 else "cl"
        raise DataError(
            f"{where} has shape {tuple(shape)}; layout=signal takes (N, C, L) signals or (N, L) "
            "one-channel signals."
        )
    if len(shape) == 2:
        if layout == "image":
            raise DataError(
                f"{where} has shape {tuple(shape)}; layout=image takes (N, H, W), (N, H, W, C) "
                "or (N, C, H, W) images."
            )
        return "flat"
    if len(shape) == 3:
        _, a, b = shape
        signal = a <= _MAX_SIGNAL_CHANNELS and b >= _MIN_SIGNAL_RATIO * a
        return "cl" if layout == "auto" and signal else "hw"
    if len(shape) == 4:
        _, a, b, c = shape
        if c in (1, 3, 4) and a > 4 and b > 4:
            return "hwc"
        if a in (1, 3):
            return "chw"
    raise DataError(f"{where} has shape {tuple(shape)}; allowed are {_ALLOWED_SHAPES}.")


def _sample_shape(shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
    if layout in ("hw", "l"):
        return (1, *shape[1:])
    if layout == "hwc":
        return (shape[3], shape[1], shape[2])
    return tuple(shape[1:])


def _check_dtype(dtype: np.dtype, where: str) -> None:
    if dtype.hasobject:
        raise DataError(
            f"{where} holds Python objects (dtype {dtype}) and files are never unpickled; save "
            "a numeric array (bool, integer or floating point) instead."
        )
    if dtype.kind not in "biuf":
        raise DataError(
            f"{where} holds non-numeric values (dtype {dtype}); only bool, integer and floating "
            f"point arrays shaped {_ALLOWED_SHAPES} can be used."
        )


def _gather(
    x: np.ndarray,
    idx: np.ndarray | None,
    layout: str,
    where: str | None = None,
    resize: Resize | None = None,
) -> torch.Tensor:
    """Copy the samples ``x[idx]`` (all when ``idx`` is None) into one float32 tensor.

    The samples are read and converted a chunk at a time (a memory-mapped file is never read
    whole); images are cropped and resized by ``resize`` as they are read (before ``uint8`` data
    is divided by 255, as image files are). For floating point data each converted chunk is
    checked as it is written: NaN, infinities and values beyond float32's range are refused with
    a :class:`DataError` that begins with ``where`` (e.g. ``"The test part of 'x.npy'"``), counts
    the bad values and names the first bad sample by its index in ``x``. Integer data cannot hold
    such values.
    """
    n = len(x) if idx is None else len(idx)
    shape = _sample_shape(x.shape, layout)
    out = np.empty((n, *(shape if resize is None else resize.shape(shape))), dtype=np.float32)
    per_sample = max(1, math.prod(x.shape[1:]) * x.dtype.itemsize)
    step = max(1, _CHUNK_BYTES // per_sample)
    check = x.dtype.kind == "f"
    bad_values, first_bad = 0, -1
    for start in range(0, n, step):
        stop = min(start + step, n)
        part = x[start:stop] if idx is None else read_rows(x, idx[start:stop])
        part = _arrange(np.asarray(part), layout)
        with np.errstate(over="ignore", invalid="ignore"):  # float64 beyond float32 -> inf
            out[start:stop] = part if resize is None else resize.apply(part)
        if check:
            bad = ~np.isfinite(out[start:stop])
            count = int(np.count_nonzero(bad))
            if count:
                rows = np.flatnonzero(bad.reshape(stop - start, -1).any(axis=1)) + start
                first = int((rows if idx is None else idx[rows]).min())
                bad_values += count
                first_bad = first if first_bad < 0 else min(first_bad, first)
    if bad_values:
        raise DataError(
            f"{where or 'The data'} holds {bad_values:,} NaN or infinite value"
            f"{'s' if bad_values > 1 else ''} (or values beyond float32's range), the first in "
            f"sample {first_bad:,} (counting from 0); only finite numbers can be used, so clean "
            "or drop those samples first."
        )
    if x.dtype == np.uint8:
        out /= 255.0
    return torch.from_numpy(out)


def read_rows(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``x[rows]``. For an array memory-mapped from a ``.npy`` file, read with ``os.pread``
    instead of through the mapping: pages touched through a mapping stay in the process's
    resident memory (and the kernel maps their neighbours too), so reading a few rows of a large
    file would count much of it as the process's memory; read this way only the rows are held."""
    import mmap

    rows = np.asarray(rows)
    if not (
        isinstance(x, np.memmap)
        and isinstance(x.base, mmap.mmap)  # the file's own mapping, not a view of it
        and x.flags.c_contiguous
        and getattr(x, "filename", None)
    ):
        return np.asarray(x[rows])
    row = math.prod(x.shape[1:]) * x.dtype.itemsize
    out = np.empty((len(rows), *x.shape[1:]), dtype=x.dtype)
    if not len(rows):
        return out
    flat = out.reshape(len(rows), row // x.dtype.itemsize).view(np.uint8)
    fd = os.open(x.filename, os.O_RDONLY)
    try:
        for j, i in enumerate(rows.tolist()):
            got = os.pread(fd, row, int(x.offset) + int(i) * row)
            if len(got) != row:
                raise DataError(f"'{x.filename}' is shorter than its header says (row {i}).")
            flat[j] = np.frombuffer(got, dtype=np.uint8)
    finally:
        os.close(fd)
    return out


def _arrange(part: np.ndarray, layout: str) -> np.ndarray:
    """Rows of an array as samples: a channel axis added (``hw``, ``l``), or moved first
    (``hwc``)."""
    if layout in ("hw", "l"):
        return part[:, None]
    if layout == "hwc":
        return part.transpose(0, 3, 1, 2)
    return part


def _as_labels(arr: Any, n: int, where: str, explicit: bool) -> np.ndarray | None:
    """Validate a label array of ``n`` integer class labels; None (or an error) if unusable."""
    arr = np.asarray(arr)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    ok = arr.ndim == 1 and len(arr) == n and arr.dtype.kind in "biuf" and not arr.dtype.hasobject
    if ok and arr.dtype.kind == "f":
        ok = bool(np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)))
    if ok:
        return arr.astype(np.int64)
    if explicit:
        raise DataError(
            f"{where} cannot be used as labels: labels must be a 1-D array of {n:,} integer class "
            f"numbers (one per sample), got shape {arr.shape} and dtype {arr.dtype}."
        )
    return None
