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
from wae_toolkit.data.layout import _as_labels, _check_dtype, _layout, _sample_shape
from wae_toolkit.data.resample import resize_for
from wae_toolkit.data.source_options import _bind, _given
from wae_toolkit.data.streamed import keeps_bytes, read_part, resident_bytes
from wae_toolkit.errors import DataError, did_you_mean, setting
from wae_toolkit.memory import check_fits

if TYPE_CHECKING:
    pass

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


def _read_npy(path: Path, where: str, layout: str) -> np.ndarray:
    with open(path, "rb") as fp:
        shape, dtype, offset = _read_header(fp, where)
    _check_dtype(dtype, where)
    _layout(shape, where, layout)
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
    path: Path, where: str, key: str | None, labels_key: str | None, layout: str
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
                    f"{', '.join(_DATA_KEYS)}; choose one with {setting('data_opts', 'key=NAME')}."
                )
        x = _npz_member(z, path, key, layout=layout)
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


def _npz_member(
    z: Any, path: Path, key: str, labels: bool = False, layout: str = "auto"
) -> np.ndarray:
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
        _layout(shape, where, layout)
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
    where, layout = f"'{path}'", opts.get("layout", "auto")
    if kind == "npy":
        return _read_npy(path, where, layout), None
    return _read_npz(path, where, opts.get("key"), opts.get("labels_key"), layout)


def _load_arrays(path: Path, name: str, kind: str, options: Mapping[str, Any] | None) -> Dataset:
    table = ".npy files" if kind == "npy" else ".npz files"
    opts = _bind(options, table, f"the {'.npy' if kind == 'npy' else '.npz'} file '{name}'")
    given = _given(options)
    x, labels = _read_array_file(path, opts, kind)
    if opts["test"] is None:
        return arrays_dataset(x, labels, None, opts, name, f"arrays from '{name}'", (f"'{path}'",))
    if "test_fraction" in given:
        raise DataError(
            f"Give either {setting('data_opts', 'test=FILE')} or "
            f"{setting('data_opts', 'test_fraction=F')}, not both: a separate test file "
            "replaces the random split."
        )
    test_path = Path(opts["test"]).expanduser()
    if not test_path.is_file():
        raise DataError(
            f"Test file '{opts['test']}' does not exist; the data option test takes a .npy "
            "or .npz file with samples shaped like the training data."
        )
    test_kind = _sniff(test_path)
    if test_kind == "other":
        raise DataError(_not_numpy_message(test_path))
    test_opts = dict(opts) if test_kind == "npz" else {"layout": opts["layout"]}
    xt, labels_t = _read_array_file(test_path, test_opts, test_kind)
    what = f"arrays from '{name}', test from '{opts['test']}'"
    wheres: tuple[str, ...] = (f"'{path}'", f"Test file '{test_path}'")
    wheres += (f"The training file '{path}'", f"The test file '{test_path}'")
    return arrays_dataset(x, labels, (xt, labels_t), opts, name, what, wheres)


def arrays_dataset(
    x: np.ndarray,
    labels: np.ndarray | None,
    test: tuple[np.ndarray, np.ndarray | None] | None,
    opts: dict[str, Any],
    name: str,
    what: str,
    wheres: tuple[str, ...],
) -> Dataset:
    """The data set of the samples ``x`` (an array, possibly memory-mapped, shaped as a ``.npy``
    file may be) and their ``labels``: laid out, resized and split as the bound options ``opts``
    say, or with the given ``test`` part ``(samples, labels)``. ``wheres`` name the training
    (and test) array in messages. Files and data given in Python share it, so that the same
    samples make the same data set. With a ``test`` part, ``wheres`` also name both in sentences
    of their own (``"Test file 't.npy'"``, ``"The training file 'x.npy'"``, ``"The test file
    't.npy'"``)."""
    _check_dtype(x.dtype, _cap(wheres[0]))
    layout = _layout(x.shape, _cap(wheres[0]), opts["layout"])
    resize = resize_for(opts, x.shape, layout, _cap(wheres[0]))
    shape = _sample_shape(x.shape, layout)
    shape = shape if resize is None else resize.shape(shape)
    streams = keeps_bytes(x.dtype, resident_bytes(len(x), shape, x.dtype))
    footprint: _Footprint | None = (
        None
        if streams
        else _Footprint(
            per_sample=4 * math.prod(shape),
            what=f"samples of shape {shape} from '{name}' as float32",
            fix="use a smaller data set, or fewer training samples with "
            f"{setting('data_opts', 'limit=N')} (the test part is read whole)",
        )
    )
    if test is None:

        def take(idx: np.ndarray, part: str) -> Any:
            where = f"The {part} part of {wheres[0]}"
            return read_part(x, idx, layout, resize, shape, where, training=part == "training")

        return _finish_split(name, what, len(x), take, labels, opts, footprint=footprint)
    xt, labels_t = test
    _check_dtype(xt.dtype, _cap(wheres[1]))
    layout_t = _layout(xt.shape, _cap(wheres[1]), opts["layout"])
    resize_t = resize_for(opts, xt.shape, layout_t, _cap(wheres[1]))
    shape_t = _sample_shape(xt.shape, layout_t)
    shape_t = shape_t if resize_t is None else resize_t.shape(shape_t)
    if shape != shape_t:
        raise DataError(
            f"{_cap(wheres[1])} holds samples of shape {shape_t} but {wheres[0]} holds {shape}; "
            "train and test samples must have the same shape."
        )
    return _finish_given_split(
        name,
        what,
        (x, layout, xt, layout_t),
        labels,
        labels_t,
        opts,
        wheres=(wheres[2], wheres[3]),
        footprint=footprint,
        resizes=(resize, resize_t),
    )


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _not_numpy_message(path: Path) -> str:
    return (
        f"'{path}' is not a NumPy .npy/.npz file (it does not start with the NumPy or zip "
        "signature); save arrays with numpy.save or numpy.savez."
    )
