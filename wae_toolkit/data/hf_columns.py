"""The columns of a Hugging Face data set as samples: an image column decoded with Pillow, or an
array column read a chunk of rows at a time.

Each reader gives, for every part (the training split, and a given test split), its number of
rows and ``take(indices, part) -> float32 tensor``; both parts share one sample shape.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from wae_toolkit.data.images import _GRAY_MODES, _map
from wae_toolkit.data.layout import _check_dtype, _layout, _sample_shape
from wae_toolkit.data.streamed import StreamedPart, read_part, streaming_budget
from wae_toolkit.errors import DataError, setting

__all__ = ["Take", "image_parts", "array_parts", "is_image_feature", "is_array_feature"]

Take = Callable[[np.ndarray, str], torch.Tensor]
#: Rows read from the Arrow table at a time.
_CHUNK_ROWS = 1024
_ARRAY_FEATURES = {"Sequence", "List", "LargeList", "Array2D", "Array3D", "Array4D", "Array5D"}


def is_image_feature(feature: Any) -> bool:
    return type(feature).__name__ == "Image"


def is_array_feature(feature: Any) -> bool:
    return type(feature).__name__ in _ARRAY_FEATURES or isinstance(feature, list)


def _chunks(n: int) -> list[tuple[int, int]]:
    return [(s, min(s + _CHUNK_ROWS, n)) for s in range(0, n, _CHUNK_ROWS)]


# ---------------------------------------------------------------------------------------------
# Image columns


def _items(arrow: Any, col: str, rows: Any) -> list[Any]:
    """The stored images (``{"bytes", "path"}``) of ``rows`` (a slice or a list of indices)."""
    return list(arrow[rows].column(col).to_pylist())


def _open(item: Any) -> Any:
    from PIL import Image

    if not isinstance(item, dict) or (item.get("bytes") is None and not item.get("path")):
        raise ValueError("no image stored")
    if item.get("bytes") is not None:
        return Image.open(io.BytesIO(item["bytes"]))
    return Image.open(item["path"])


def image_parts(
    parts: Sequence[Any], col: str, size: int | None, channels: int | None, spec: str
) -> tuple[tuple[int, ...], list[Take]]:
    """The sample shape ``(C, H, W)`` and a reader per part of the image column ``col``.

    Every image is opened once first for its size and mode (Pillow reads the header only): the
    images must share one size unless ``size`` resizes them all (bicubic, to ``size x size``),
    and ``channels`` (1 or 3) defaults to 1 when every image is grayscale, else 3.
    """
    arrows = [p.with_format("arrow", columns=[col]) for p in parts]
    headers: list[list[Any]] = []
    for arrow, part in zip(arrows, parts, strict=True):

        def header(item: Any) -> Any:
            try:
                with _open(item) as im:
                    return im.size, im.mode
            except Exception as exc:  # Pillow raises many types for bad data
                return f"({type(exc).__name__}: {exc})"

        found: list[Any] = []
        for start, stop in _chunks(len(part)):
            infos = _map(header, _items(arrow, col, slice(start, stop)))
            for i, info in enumerate(infos):
                if isinstance(info, str):
                    raise DataError(
                        f"Row {start + i:,} of column '{col}' in '{spec}' could not be read as "
                        f"an image {info}; remove or replace it."
                    )
            found += infos
        headers.append(found)
    every = [h for part in headers for h in part]
    if size is not None:
        width = height = size
    else:
        distinct = sorted({s for s, _ in every})
        if len(distinct) > 1:
            shown = ", ".join(f"{w}x{h}" for w, h in distinct[:2])
            raise DataError(
                f"The images of column '{col}' in '{spec}' have {len(distinct)} different sizes "
                f"({shown}); resize them all to one size with {setting('data_opts', 'size=64')}."
            )
        width, height = distinct[0]
    if channels is None:
        channels = 1 if all(m in _GRAY_MODES for _, m in every) else 3
    mode = "L" if channels == 1 else "RGB"

    shape = (channels, height, width)

    def reader(arrow: Any) -> Take:
        rows = _ImageRows(arrow, col, mode, (width, height), spec)

        def take(idx: np.ndarray, part: str) -> Any:
            where = f"The {part} part of column '{col}' in '{spec}'"
            if part == "training" and streaming_budget() is not None:  # a run: kept as bytes
                return StreamedPart(rows, idx, shape, where)
            out = np.empty((len(idx), *shape), dtype=np.float32)
            for start, stop in _chunks(len(idx)):
                out[start:stop] = rows(idx[start:stop])
            out /= 255.0
            return torch.from_numpy(out)

        return take

    return shape, [reader(a) for a in arrows]


class _ImageRows:
    """Decodes rows of an image column as ``uint8`` arrays ``(N, C, H, W)`` (on threads): the
    resident path's reader, and the streamed path's in the data loader's workers."""

    raw = True

    def __init__(self, arrow: Any, col: str, mode: str, size: tuple[int, int], spec: str):
        self.arrow, self.col, self.mode, self.size, self.spec = arrow, col, mode, size, spec

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        items = _items(self.arrow, self.col, [int(i) for i in idx])
        width, height = self.size
        channels = 1 if self.mode == "L" else 3
        out = np.empty((len(idx), channels, height, width), dtype=np.uint8)

        def one(j: int) -> str | None:
            try:
                with _open(items[j]) as opened:
                    img = opened.convert(self.mode)
                    if img.size != self.size:
                        img = img.resize(self.size, _bicubic())
                    arr = np.asarray(img, dtype=np.uint8)
            except Exception as exc:  # truncated or corrupt pixel data
                return f"row {int(idx[j]):,} ({exc})"
            out[j] = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
            return None

        errors = [e for e in _map(one, range(len(idx))) if e]
        if errors:
            raise DataError(
                f"The image in {errors[0]} of column '{self.col}' in '{self.spec}' could not be "
                "decoded; remove or replace it."
            )
        return out


def _bicubic() -> Any:
    from PIL import Image

    return Image.Resampling.BICUBIC


# ---------------------------------------------------------------------------------------------
# Array columns


class _Column:
    """An array column seen as an ``(N, *S)`` array whose rows are read when indexed, so that
    :func:`~wae_toolkit.data.layout._gather` converts it a chunk at a time."""

    def __init__(self, part: Any, col: str, where: str) -> None:
        # dtype=None keeps the stored dtype (datasets casts to int64 and float32 by default):
        # uint8 pixels are then divided by 255, as in .npy files.
        self._rows = part.with_format("numpy", columns=[col], dtype=None)
        self._col, self._where = col, where
        first = np.asarray(self._rows[0][col]) if len(part) else np.zeros(0)
        if first.dtype == object:
            raise DataError(f"{where} holds nested samples of different shapes; {_SAME}.")
        self.dtype = first.dtype
        self.shape: tuple[int, ...] = (len(part), *first.shape)
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        rows = key if isinstance(key, slice) else [int(i) for i in np.asarray(key).reshape(-1)]
        arr = self._rows[rows][self._col]
        if (
            not isinstance(arr, np.ndarray)
            or arr.dtype == object
            or arr.shape[1:] != self.shape[1:]
        ):
            raise DataError(
                f"{self._where} holds samples of different shapes (the first is "
                f"{self.shape[1:]}); {_SAME}."
            )
        return arr


_SAME = "every sample of the column must have the same shape (store them as an ArrayND feature)"


def array_parts(parts: Sequence[Any], col: str, spec: str) -> tuple[tuple[int, ...], list[Take]]:
    """The sample shape and a reader per part of the array column ``col`` (the layouts of
    ``.npy`` files: vectors, images; ``uint8`` divided by 255; NaN and infinities refused)."""
    shape: tuple[int, ...] | None = None
    takes: list[Take] = []
    for part in parts:
        where = f"Column '{col}' of '{spec}'"
        column = _Column(part, col, where)
        _check_dtype(column.dtype, where)
        layout = _layout(column.shape, where)
        part_shape = _sample_shape(column.shape, layout)
        if shape is not None and part_shape != shape:
            raise DataError(
                f"The test split of '{spec}' holds samples of shape {part_shape} but the "
                f"training split holds {shape}; train and test samples must have the same shape."
            )
        shape = part_shape

        def take(
            idx: np.ndarray, name: str, c: Any = column, lay: str = layout, at: Any = part_shape
        ) -> Any:
            # The column reads rows by index and by slice from the table, as an array would.
            where = f"The {name} part of column '{col}' in '{spec}'"
            return read_part(c, idx, lay, None, at, where, training=name == "training")

        takes.append(take)
    assert shape is not None
    return shape, takes
