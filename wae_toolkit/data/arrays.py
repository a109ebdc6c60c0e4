"""NumPy ``.npy`` and ``.npz`` files, read with ``allow_pickle=False``."""

from __future__ import annotations

import math
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wae_toolkit.data.dataset import Dataset, _finish_given_split, _finish_split, _Footprint
from wae_toolkit.data.layout import _as_labels, _check_dtype, _gather, _layout, _sample_shape
from wae_toolkit.data.source_options import _bind, _given
from wae_toolkit.errors import DataError, did_you_mean
from wae_toolkit.memory import check_fits

if TYPE_CHECKING:
    import torch

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")


def _sniff(path: Path) -> str:
    """``npy``, ``npz`` or ``other``, from the first bytes of the file."""
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError as exc:
        reason = exc.strerror or exc
        raise DataError(f"Data file '{path}' could not be opened ({reason}).") from None
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if head[:4] in _ZIP_MAGICS:
        return "npz"
    return "other"


def _read_header(fp: Any, where: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """Read a .npy header without touching the data: shape, dtype and data offset."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fp)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(fp)
        else:
            shape, _, dtype = fmt.read_array_header_2_0(fp)
    except (ValueError, OSError, EOFError, SyntaxError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(
            f"{where} is not a valid NumPy array file ({exc}); save arrays with numpy.save or "
            "numpy.savez."
        ) from None
    return tuple(shape), np.dtype(dtype), fp.tell()


def _read_npy(path: Path, where: str) -> np.ndarray:
    with open(path, "rb") as fp:
        shape, dtype, offset = _read_header(fp, where)
    _check_dtype(dtype, where)
    _layout(shape, where)
    expected = offset + math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if path.stat().st_size < expected:
        raise DataError(
            f"{where} is truncated: its header announces shape {shape} ({expected:,} bytes) but "
            f"the file holds {path.stat().st_size:,} bytes; save it again with numpy.save."
        )
    try:  # memory-mapped: only the samples that are used are read; pickles are refused
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{where} could not be read as a NumPy array ({exc}).") from None


_DATA_KEYS = ("x", "X", "data", "images", "arr_0")
_LABEL_KEYS = ("y", "Y", "labels", "targets")


def _read_npz(
    path: Path, where: str, key: str | None, labels_key: str | None
) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(
            f"{where} is not a valid .npz archive ({exc}); save arrays with numpy.savez."
        ) from None
    with z:
        keys = list(z.files)
        listed = ", ".join(keys)
        if not keys:
            raise DataError(f"{where} holds no arrays; save one with numpy.savez(path, x=array).")
        if key is not None:
            if key not in keys:
                raise DataError(
                    f"{where} has no array '{key}'.{did_you_mean(key, keys)} Arrays: {listed}."
                )
        elif len(keys) == 1:
            key = keys[0]
        else:
            key = next((k for k in _DATA_KEYS if k in keys), None)
            if key is None:
                raise DataError(
                    f"{where} holds several arrays ({listed}) and none is called "
                    f"{', '.join(_DATA_KEYS)}; choose one with --data-opt key=NAME."
                )
        x = _npz_member(z, path, key)
        labels = None
        if labels_key is not None:
            if labels_key not in keys:
                raise DataError(
                    f"{where} has no array '{labels_key}' for labels."
                    f"{did_you_mean(labels_key, keys)} Arrays: {listed}."
                )
            labels = _as_labels(
                _npz_member(z, path, labels_key, labels=True),
                len(x),
                f"Array '{labels_key}' in '{path}'",
                explicit=True,
            )
        else:
            for k in _LABEL_KEYS:
                if k in keys and k != key:
                    try:
                        candidate = _npz_member(z, path, k, labels=True)
                    except DataError:
                        continue
                    labels = _as_labels(candidate, len(x), k, explicit=False)
                    if labels is not None:
                        break
    return x, labels


def _npz_member(z: Any, path: Path, key: str, labels: bool = False) -> np.ndarray:
    where = f"Array '{key}' in '{path}'"
    names = z.zip.namelist()
    member = f"{key}.npy" if f"{key}.npy" in names else key
    try:
        with z.zip.open(member) as fp:
            shape, dtype, _ = _read_header(fp, where)
    except (KeyError, OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{where} could not be read ({exc}).") from None
    _check_dtype(dtype, where)
    if not labels:
        _layout(shape, where)
    check_fits(  # an .npz member is decompressed whole: refused before, when it cannot fit
        math.prod(shape) * dtype.itemsize,
        f"Reading array '{key}' of '{path}' (shape {tuple(shape)}, {dtype})",
        "save it with numpy.save as a .npy file, which is read a piece at a time, or keep "
        "fewer samples",
        error=DataError,
    )
    try:
        return np.asarray(z[key])
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(f"{where} could not be read ({exc}); save the file again.") from None


def _read_array_file(
    path: Path, opts: dict[str, Any], kind: str
) -> tuple[np.ndarray, np.ndarray | None]:
    where = f"'{path}'"
    if kind == "npy":
        return _read_npy(path, where), None
    return _read_npz(path, where, opts.get("key"), opts.get("labels_key"))


def _load_arrays(path: Path, name: str, kind: str, options: Mapping[str, Any] | None) -> Dataset:
    table = ".npy files" if kind == "npy" else ".npz files"
    opts = _bind(options, table, f"the {'.npy' if kind == 'npy' else '.npz'} file '{name}'")
    given = _given(options)
    x, labels = _read_array_file(path, opts, kind)
    layout = _layout(x.shape, f"'{path}'")
    shape = _sample_shape(x.shape, layout)
    footprint = _Footprint(
        per_sample=4 * math.prod(shape),
        what=f"samples of shape {shape} from '{name}' as float32",
        fix="use a smaller file, or fewer training samples with --data-opt limit=N (the test "
        "part is read whole)",
    )
    what = f"arrays from '{name}'"
    if opts["test"] is None:

        def take(idx: np.ndarray, part: str) -> torch.Tensor:
            return _gather(x, idx, layout, f"The {part} part of '{path}'")

        return _finish_split(name, what, len(x), take, labels, opts, footprint=footprint)
    if "test_fraction" in given:
        raise DataError(
            "Give either --data-opt test=FILE or --data-opt test_fraction=F, not both: "
            "a separate test file replaces the random split."
        )
    test_path = Path(opts["test"]).expanduser()
    if not test_path.is_file():
        raise DataError(
            f"Test file '{opts['test']}' does not exist; --data-opt test= takes a .npy or "
            ".npz file with samples shaped like the training data."
        )
    test_kind = _sniff(test_path)
    if test_kind == "other":
        raise DataError(_not_numpy_message(test_path))
    test_opts = dict(opts) if test_kind == "npz" else {}
    xt, labels_t = _read_array_file(test_path, test_opts, test_kind)
    layout_t = _layout(xt.shape, f"'{test_path}'")
    shape_t = _sample_shape(xt.shape, layout_t)
    if shape != shape_t:
        raise DataError(
            f"Test file '{test_path}' holds samples of shape {shape_t} but '{path}' holds "
            f"{shape}; train and test samples must have the same shape."
        )
    what = f"arrays from '{name}', test from '{opts['test']}'"
    return _finish_given_split(
        name,
        what,
        (x, layout, xt, layout_t),
        labels,
        labels_t,
        opts,
        wheres=(f"The training file '{path}'", f"The test file '{test_path}'"),
        footprint=footprint,
    )


def _not_numpy_message(path: Path) -> str:
    return (
        f"'{path}' is not a NumPy .npy/.npz file (it does not start with the NumPy or zip "
        "signature); save arrays with numpy.save or numpy.savez."
    )
