"""MNIST-style IDX files: single files, and folders of MNIST's four files.

A folder keeps MNIST's official train/test split, or with ``split="paper"`` the WAE paper's:
train and test concatenated (train first), shuffled as the reference code did
(``np.random.seed(seed); np.random.shuffle``), the last ``holdout`` images held out.
"""

from __future__ import annotations

import gzip
import re
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from wae_toolkit.data.dataset import Dataset, _finish_given_split, _finish_split
from wae_toolkit.data.expected import MNIST_FILES_TEXT
from wae_toolkit.data.layout import _as_labels, _gather, _layout, _sample_shape
from wae_toolkit.data.options import _PAPER_SPLIT_ONLY, _bind, _given, _join
from wae_toolkit.errors import DataError

_IDX_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_NAME = re.compile(
    r"^(?P<prefix>.*?)(?P<split>train|t10k|test)-(?P<kind>images|labels)[-.]idx(?P<ndim>\d)"
    r"-ubyte(?P<gz>\.gz)?$",
    re.IGNORECASE,
)


def _looks_idx(path: Path) -> bool:
    name = path.name.lower()
    return bool(re.search(r"idx\d-ubyte(\.gz)?$", name)) or name.endswith((".idx", ".idx.gz"))


def _read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped): magic ``0 0 type ndim``, big-endian dims, data."""
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"IDX file '{path}' could not be read ({exc}); it is corrupt or truncated, so "
            "download it again."
        ) from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES or not data[3]:
        raise DataError(
            f"'{path}' is not an IDX file: it does not start with an IDX magic number "
            "(2051 for MNIST images, 2049 for labels)."
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", data[4:header]) if len(data) >= header else ()
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) < header or len(data) != expected:
        magic = int.from_bytes(data[:4], "big")
        raise DataError(
            f"IDX file '{path}' is truncated or corrupt: its header (magic {magic}, dims "
            f"{tuple(dims)}) announces {expected:,} bytes but it holds {len(data):,}; download "
            "it again."
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)


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
    if not paper:
        stray = sorted(_given(options) & set(_PAPER_SPLIT_ONLY))
        if stray:
            raise DataError(
                f"Data option{'s' if len(stray) > 1 else ''} {_join(stray)} only "
                f"appl{'y' if len(stray) > 1 else 'ies'} to {source} with split=paper (the "
                "official split is fixed); add --data-opt split=paper or drop them."
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
    if not paper:
        what = f"IDX files in '{name}', official split"
        return _finish_given_split(name, what, (x, layout, xt, layout_t), labels, labels_t, opts)
    if x.shape[1:] != xt.shape[1:]:
        raise DataError(
            f"split=paper concatenates the train and test IDX images in '{folder}', but they "
            f"are stored with different dimensions ({x.shape[1:]} and {xt.shape[1:]})."
        )
    both = np.concatenate([x, xt])
    both_labels = None
    if labels is not None and labels_t is not None:
        both_labels = np.concatenate([labels, labels_t])
    what = (
        f"IDX files in '{name}', paper split: train+test shuffled with seed {opts['seed']}, "
        f"last {opts['holdout']:,} held out"
    )
    return _finish_split(
        name, what, len(both), lambda idx: _gather(both, idx, layout), both_labels, opts
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
    return _finish_split(name, what, len(x), lambda idx: _gather(x, idx, layout), labels, opts)
