"""Folders of images, read with Pillow; classes come from the first level of sub-folders."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wae_toolkit.data.dataset import Dataset, _finish_split, _Footprint
from wae_toolkit.data.source_options import _bind, _given
from wae_toolkit.data.streamed import StreamedPart, streaming_budget
from wae_toolkit.errors import DataError, setting, setting_name

#: File name endings read as images in a folder of images (compared in lower case).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")

_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def _list_images(folder: Path) -> list[Path]:
    """Image files under ``folder``, recursively, hidden files skipped, sorted by relative path."""
    out: list[Path] = []
    seen: set[str] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # a symlink loop
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in files:
            if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS):
                out.append(Path(root) / f)
    return sorted(out, key=lambda p: p.relative_to(folder).as_posix())


def _load_image_folder(
    folder: Path, name: str, paths: list[Path], options: Mapping[str, Any] | None
) -> Dataset:
    from PIL import Image

    opts = _bind(options, "image folders", f"the image folder '{name}'")
    if opts["holdout"] is not None:
        if "test_fraction" in _given(options):
            raise DataError(
                f"Give either {setting('data_opts', 'holdout=N')} or "
                f"{setting('data_opts', 'test_fraction=F')}, not both: holdout holds out the "
                "last N images of a seeded shuffle instead of a fraction."
            )
        del opts["test_fraction"]
    size, crop, channels = opts["size"], opts["crop"], opts["channels"]

    def rel(p: Path) -> str:
        return p.relative_to(folder).as_posix()

    def header(p: Path) -> tuple[tuple[int, int], str] | str:
        try:
            with Image.open(p) as im:
                return im.size, im.mode
        except Exception as exc:  # Pillow raises many types for bad files
            return f"{rel(p)} ({type(exc).__name__})"

    infos = _map(header, paths)
    bad = [i for i in infos if isinstance(i, str)]
    if bad:
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise DataError(
            f"{len(bad)} file(s) in '{name}' could not be read as images: "
            f"{', '.join(bad[:5])}{more}; remove or replace them (Pillow reads "
            f"{', '.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)})."
        )
    sizes = [i[0] for i in infos if not isinstance(i, str)]
    modes = [i[1] for i in infos if not isinstance(i, str)]
    if crop is not None:
        small = [(p, s) for p, s in zip(paths, sizes, strict=True) if min(s) < crop]
        if small:
            p, (w, h) = small[0]
            raise DataError(
                f"Image '{rel(p)}' is {w}x{h} pixels, smaller than "
                f"{setting('data_opts', f'crop={crop}')} "
                f"({len(small)} image(s) are); crop must be at most the smallest image side."
            )
        sizes = [(crop, crop)] * len(paths)
    if size is not None:
        width = height = size
    else:
        distinct = sorted(set(sizes))
        if len(distinct) > 1:
            first = {s: paths[sizes.index(s)] for s in distinct[:2]}
            examples = ", ".join(f"{w}x{h} ('{rel(p)}')" for (w, h), p in first.items())
            raise DataError(
                f"The images in '{name}' have {len(distinct)} different sizes ({examples}); "
                f"resize them all to one size with {setting('data_opts', 'size=64')} (and "
                f"centre-crop first with {setting('data_opts', 'crop=N')} if they are not "
                "square)."
            )
        width, height = distinct[0]
    if channels is None:
        channels = 1 if all(m in _GRAY_MODES for m in modes) else 3
    class_names = sorted({Path(rel(p)).parts[0] for p in paths})
    has_classes = len(class_names) >= 2 and all(len(Path(rel(p)).parts) >= 2 for p in paths)
    labels = None
    if has_classes:
        index = {c: i for i, c in enumerate(class_names)}
        labels = np.array([index[Path(rel(p)).parts[0]] for p in paths], dtype=np.int64)
    if len(paths) < 2:
        raise DataError(
            f"Folder '{name}' holds only {len(paths)} image; a data set needs at least 2 (one "
            "for training, one held out)."
        )
    rows = ImageRows(folder, name, paths, channels, crop, (width, height))

    def read(idx: np.ndarray, part: str) -> Any:
        where = f"The {part} part of '{name}'"
        if part == "training" and lazy:  # a run: bytes on the device, or streamed
            return StreamedPart(rows, idx, (channels, height, width), where)
        if lazy:
            footprint.check(len(idx))
        out = np.empty((len(idx), channels, height, width), dtype=np.float32)

        def one(j: int) -> None:
            out[j] = rows.decode(int(idx[j]))

        _map(one, range(len(idx)))
        out /= 255.0
        return torch.from_numpy(out)

    what = f"images from '{name}'" + (", classes from sub-folders" if has_classes else "")
    resolved = dict(opts, channels=channels)
    pixels = channels * width * height
    lazy = streaming_budget() is not None  # a run reads the training part lazily (bytes)
    footprint = _Footprint(
        per_sample=4 * pixels,  # the float32 tensors
        # each thread decodes one image at a time: converted, resized and copied (uint8)
        fixed=3 * pixels * _workers(len(paths)),
        what=f"images of '{name}' at {width}x{height} pixels with {channels} channel(s)",
        fix=(
            f"use a smaller {setting_name('data_opts')} size"
            if size is not None
            else f"resize them with {setting('data_opts', 'size=N')}, or keep fewer with "
            f"{setting('data_opts', 'limit=N')}"
        ),
    )
    # Lazily, the training part is never float32 here: only the held-out part is checked.
    whole = None if lazy else footprint
    return _finish_split(name, what, len(paths), read, labels, resolved, footprint=whole)


class ImageRows:
    """Decodes images of a folder as ``uint8`` arrays ``(C, H, W)``: centre-cropped, converted
    to gray or RGB and resized (bicubic) as the options say. Both paths use it: the resident one
    on threads, the streamed one in the data loader's workers (:meth:`__call__`)."""

    raw = True

    def __init__(
        self,
        folder: Path,
        name: str,
        paths: list[Path],
        channels: int,
        crop: int | None,
        size: tuple[int, int],
    ) -> None:
        self.folder, self.name, self.paths = folder, name, paths
        self.mode, self.crop, self.size = ("L" if channels == 1 else "RGB"), crop, size
        self.row_bytes = channels * size[0] * size[1]

    def decode(self, i: int) -> np.ndarray:
        from PIL import Image

        p = self.paths[i]
        try:
            with Image.open(p) as opened:
                img: Image.Image = opened
                if self.crop is not None:
                    w, h = img.size
                    left, top = (w - self.crop) // 2, (h - self.crop) // 2
                    img = img.crop((left, top, left + self.crop, top + self.crop))
                img = img.convert(self.mode)
                if img.size != self.size:
                    img = img.resize(self.size, Image.Resampling.BICUBIC)
                arr = np.asarray(img, dtype=np.uint8)
        except Exception as exc:  # truncated or corrupt pixel data
            raise DataError(
                f"Image file {p.relative_to(self.folder).as_posix()} ({exc}) in '{self.name}' "
                "could not be decoded; remove or replace it."
            ) from None
        return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)

    def __call__(self, src: np.ndarray) -> np.ndarray:
        return np.stack(_map(self.decode, [int(i) for i in src]))


def _map(fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    """``[fn(i) for i in items]``, on a few threads for long lists (Pillow releases the GIL)."""
    items = list(items)
    if _workers(len(items)) == 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=_workers(len(items))) as pool:
        return list(pool.map(fn, items, chunksize=64))


def _workers(n: int) -> int:
    """Threads :func:`_map` uses for ``n`` items."""
    return 1 if n < 256 else min(8, os.cpu_count() or 1)
