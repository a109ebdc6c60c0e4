"""MNIST-style IDX files: single files, and folders of MNIST's four files.

A folder keeps MNIST's official train/test split, or with ``split="paper"`` the WAE paper's:
train and test concatenated (train first), shuffled as the reference code did
(``np.random.seed(seed); np.random.shuffle``), the last ``holdout`` images held out.
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import os
import re
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from wae_toolkit.data.dataset import (
    Dataset,
    _check_split,
    _finish_given_split,
    _finish_split,
    _Footprint,
)
from wae_toolkit.data.expected import MNIST_FILES_TEXT
from wae_toolkit.data.layout import _as_labels, _gather, _layout, _sample_shape
from wae_toolkit.data.source_options import _PAPER_SPLIT_ONLY, _bind, _given, _join
from wae_toolkit.errors import DataError, setting
from wae_toolkit.memory import check_fits

if TYPE_CHECKING:
    import torch

_IDX_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_NAME = re.compile(
    r"^(?P<prefix>.*?)(?P<split>train|t10k|test)-(?P<kind>images|labels)[-.]idx(?P<ndim>\d)"
    r"-ubyte(?P<gz>\.gz)?$",
    re.IGNORECASE,
)


def _looks_idx(path: Path) -> bool:
    name = path.name.lower()
    return bool(re.search(r"idx\d-ubyte(\.gz)?$", name)) or name.endswith((".idx", ".idx.gz"))


#: ``np.random.seed`` (and so the paper's MNIST split) takes seeds from 0 to 2^32 - 1.
_NUMPY_MAX_SEED = 2**32 - 1
#: The most dimensions an IDX file of samples has: (N, H, W, C) or (N, C, H, W); MNIST's images
#: have 3 (count, rows, columns) and its labels 1.
_IDX_MAX_DIMS = 4


def _read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped): magic ``0 0 type ndim``, big-endian dims, data.

    The header is read and checked first (the number of dimensions, sizes of at least 1, the
    file's length for plain files), and the data are read only when they fit in memory: a
    corrupt header, or a small gzipped file that announces terabytes, is refused with a message.
    """
    try:
        opener: Any = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[0] or head[1] or head[2] not in _IDX_TYPES or not head[3]:
                raise DataError(
                    f"'{path}' is not an IDX file: it does not start with an IDX magic number "
                    "(2051 for MNIST images, 2049 for labels)."
                )
            magic, ndim = int.from_bytes(head, "big"), head[3]
            if ndim > _IDX_MAX_DIMS:
                raise DataError(
                    f"IDX file '{path}' announces {ndim} dimensions in its header (magic "
                    f"{magic}); IDX files of samples have 1 to {_IDX_MAX_DIMS} (MNIST images 3, "
                    "labels 1), so the file is corrupt: download it again."
                )
            header = 4 + 4 * ndim
            raw_dims = f.read(4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise DataError(
                    f"IDX file '{path}' is truncated: its header (magic {magic}) announces {ndim} "
                    f"dimensions but the file ends after {4 + len(raw_dims)} bytes; download it "
                    "again."
                )
            dims = struct.unpack(f">{ndim}I", raw_dims)
            dtype = np.dtype(_IDX_TYPES[head[2]])
            if 0 in dims:
                raise DataError(
                    f"IDX file '{path}' announces a dimension of size 0 in its header (dims "
                    f"{dims}); every dimension must be at least 1, so the file is empty or "
                    "corrupt: download it again."
                )
            nbytes = math.prod(dims) * dtype.itemsize  # Python ints: no overflow
            expected = header + nbytes
            gz = opener is not open
            size = None if gz else os.fstat(f.fileno()).st_size
            if size is not None and size != expected:
                _idx_truncated(path, magic, dims, expected, size)
            check_fits(  # the data are read whole: refused before, when they cannot fit
                nbytes,
                f"Reading IDX file '{path}' (dims {dims}, {dtype})",
                "IDX files are read whole, so use a smaller file (or download it again if its "
                "header is corrupt)",
                error=DataError,
            )
            data = f.read(nbytes + 1)  # one byte more tells a gzipped file with trailing data
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"IDX file '{path}' could not be read ({exc}); it is corrupt or truncated, so "
            "download it again."
        ) from None
    if len(data) != nbytes:
        _idx_truncated(
            path, magic, dims, expected, None if len(data) > nbytes else header + len(data)
        )
    return np.frombuffer(data, dtype=dtype).reshape(dims)


def _idx_truncated(
    path: Path, magic: int, dims: tuple[int, ...], expected: int, size: int | None
) -> NoReturn:
    """Raise: the file's length (``None``: more than announced) is not what its header says."""
    holds = "more" if size is None else f"{size:,}"
    raise DataError(
        f"IDX file '{path}' is truncated or corrupt: its header (magic {magic}, dims "
        f"{tuple(dims)}) announces {expected:,} bytes but it holds {holds}; download it again."
    )


def _idx_images(path: Path) -> np.ndarray:
    x = _read_idx(path)
    where = f"IDX file '{path}'"
    if x.ndim == 1:
        raise DataError(
            f"{where} holds labels (1-D, magic 2049); give the images file (magic 2051) or the "
            "folder that holds both."
        )
    _layout(x.shape, where)
    return x


def _find_idx(folder: Path) -> dict[tuple[str, str], Path]:
    """MNIST-style IDX files in ``folder`` (or its ``raw/``): (split, kind) -> path."""
    for place in (folder, folder / "raw"):
        if not place.is_dir():
            continue
        found: dict[tuple[str, str], list[Path]] = {}
        for p in sorted(place.iterdir()):
            m = _IDX_NAME.match(p.name)
            if m and p.is_file():
                split = "train" if m["split"].lower() == "train" else "test"
                found.setdefault((split, m["kind"].lower()), []).append(p)
        if not found:
            continue
        out: dict[tuple[str, str], Path] = {}
        for k, paths in found.items():
            plain = [p for p in paths if not p.name.lower().endswith(".gz")]
            choice = plain if plain else paths
            stems = {p.name.lower().removesuffix(".gz") for p in paths}
            if len(stems) > 1:
                raise DataError(
                    f"Folder '{place}' holds several {k[0]} {k[1]} IDX files "
                    f"({', '.join(p.name for p in paths)}); keep one data set per folder."
                )
            out[k] = choice[0]
        return out
    return {}


def _load_idx_folder(
    folder: Path, name: str, files: dict[tuple[str, str], Path], options: Mapping[str, Any] | None
) -> Dataset:
    source = f"the MNIST IDX folder '{name}'"
    for split, other in (("train", "test"), ("test", "train")):
        if (split, "images") not in files:
            have = files.get((other, "images")) or next(iter(files.values()))
            want = "train-images-idx3-ubyte" if split == "train" else "t10k-images-idx3-ubyte"
            raise DataError(
                f"Folder '{folder}' holds {have.name} but no {want}; an MNIST IDX folder needs "
                "both train-images-idx3-ubyte and t10k-images-idx3-ubyte (optionally .gz) and "
                f"may hold the labels too: it expects {MNIST_FILES_TEXT}. Or give a single IDX "
                "file."
            )
    opts = _bind(options, "MNIST IDX folders", source)
    paper = opts["split"] == "paper"
    if paper and opts["seed"] > _NUMPY_MAX_SEED:
        raise DataError(
            f"Data option seed={opts['seed']} is not allowed with split=paper: the paper's "
            "split replays NumPy's np.random.seed(seed), which takes seeds from 0 to "
            f"{_NUMPY_MAX_SEED:,} (2^32 - 1)."
        )
    if not paper:
        stray = sorted(_given(options) & set(_PAPER_SPLIT_ONLY))
        if stray:
            raise DataError(
                f"Data option{'s' if len(stray) > 1 else ''} {_join(stray)} only "
                f"appl{'y' if len(stray) > 1 else 'ies'} to {source} with split=paper (the "
                f"official split is fixed); add {setting('data_opts', 'split=paper')} or drop "
                "them."
            )
        opts = {k: v for k, v in opts.items() if k not in _PAPER_SPLIT_ONLY}
    x, xt = _idx_images(files["train", "images"]), _idx_images(files["test", "images"])
    layout, layout_t = _layout(x.shape, "train images"), _layout(xt.shape, "test images")
    if _sample_shape(x.shape, layout) != _sample_shape(xt.shape, layout_t):
        raise DataError(
            f"The train and test IDX images in '{folder}' have different shapes "
            f"({x.shape[1:]} and {xt.shape[1:]}); both must hold images of one size."
        )
    labels = labels_t = None
    if ("train", "labels") in files and ("test", "labels") in files:
        labels = _idx_labels(files["train", "labels"], len(x))
        labels_t = _idx_labels(files["test", "labels"], len(xt))
    footprint = _float_footprint(x, layout, name)
    if not paper:
        what = f"IDX files in '{name}', official split"
        wheres = (
            f"The IDX file '{files['train', 'images']}'",
            f"The IDX file '{files['test', 'images']}'",
        )
        return _finish_given_split(
            name,
            what,
            (x, layout, xt, layout_t),
            labels,
            labels_t,
            opts,
            wheres=wheres,
            footprint=footprint,
        )
    if x.shape[1:] != xt.shape[1:]:
        raise DataError(
            f"split=paper concatenates the train and test IDX images in '{folder}', but they "
            f"are stored with different dimensions ({x.shape[1:]} and {xt.shape[1:]})."
        )
    per_sample = math.prod(x.shape[1:]) * x.dtype.itemsize  # the concatenation's copy too
    footprint = dataclasses.replace(footprint, per_sample=footprint.per_sample + per_sample)
    _check_split(len(x) + len(xt), opts, name, footprint)
    both = np.concatenate([x, xt])
    both_labels = None
    if labels is not None and labels_t is not None:
        both_labels = np.concatenate([labels, labels_t])
    what = (
        f"IDX files in '{name}', paper split: train+test shuffled with seed {opts['seed']}, "
        f"last {opts['holdout']:,} held out"
    )

    def take(idx: np.ndarray, part: str) -> torch.Tensor:
        where = (
            f"The {part} part of the IDX images in '{name}' (train then t10k, numbered together)"
        )
        return _gather(both, idx, layout, where)

    return _finish_split(name, what, len(both), take, both_labels, opts)


def _float_footprint(x: np.ndarray, layout: str, name: str) -> _Footprint:
    """What converting samples of ``x`` to float32 costs in memory."""
    shape = _sample_shape(x.shape, layout)
    return _Footprint(
        per_sample=4 * math.prod(shape),
        what=f"IDX samples of shape {shape} from '{name}' as float32",
        fix="use a smaller file, or fewer training samples with "
        f"{setting('data_opts', 'limit=N')} (the test part is read whole)",
    )


def _idx_labels(path: Path, n: int) -> np.ndarray:
    labels = _as_labels(_read_idx(path), n, f"IDX labels file '{path}'", explicit=True)
    if labels is None:  # unreachable: explicit=True raises instead
        raise DataError(f"IDX labels file '{path}' could not be used.")
    return labels


def _load_idx_file(path: Path, name: str, options: Mapping[str, Any] | None) -> Dataset:
    opts = _bind(options, "single IDX files", f"the IDX file '{name}'")
    x = _idx_images(path)
    layout = _layout(x.shape, f"IDX file '{path}'")
    labels = None
    labels_name = path.name.replace("images", "labels").replace("idx3", "idx1")
    if labels_name != path.name:
        stem = labels_name.removesuffix(".gz")
        for candidate in (path.with_name(stem), path.with_name(stem + ".gz")):
            if candidate.is_file():
                labels = _idx_labels(candidate, len(x))
                break
    what = f"IDX file '{name}'"

    def take(idx: np.ndarray, part: str) -> torch.Tensor:
        return _gather(x, idx, layout, f"The {part} part of IDX file '{path}'")

    footprint = _float_footprint(x, layout, name)
    return _finish_split(name, what, len(x), take, labels, opts, footprint=footprint)
