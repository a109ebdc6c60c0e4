"""The entry point :func:`load_dataset`: a built-in name or a path, dispatched to its source."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wae_toolkit.data.arrays import _load_arrays, _not_numpy_message, _sniff
from wae_toolkit.data.builtin import _BUILTIN_LOADERS, _BUILTINS
from wae_toolkit.data.dataset import Dataset
from wae_toolkit.data.idx import _find_idx, _load_idx_file, _load_idx_folder, _looks_idx
from wae_toolkit.data.images import IMAGE_EXTENSIONS, _list_images, _load_image_folder
from wae_toolkit.errors import DataError, did_you_mean

_SOURCES_HINT = (
    "give a built-in name ({builtins}), a .npy/.npz file, a folder of images, or a folder of "
    "MNIST IDX files"
)


def load_dataset(spec: str | os.PathLike[str], options: Mapping[str, Any] | None = None) -> Dataset:
    """Load a data set by built-in name or path.

    Args:
        spec: A built-in name (see :func:`builtin_datasets`), a ``.npy``/``.npz`` file, a folder
            of images, a folder of MNIST IDX files, or a single IDX file. A built-in name wins
            over a file or folder of the same name; write ``./digits`` for the folder.
        options: Data options (``--data-opt key=value``); values may be CLI text and are
            converted to each option's declared type.

    Returns:
        The data set, with float32 tensors on the CPU.

    Raises:
        DataError: Unknown name, missing or unreadable file, unknown option, bad value, or data
            of a shape or type that cannot be used; the message says what is allowed.
    """
    text = os.fspath(spec).strip() if isinstance(spec, str | os.PathLike) else ""
    sources = _SOURCES_HINT.format(builtins=", ".join(_BUILTINS))
    if not text:
        raise DataError(f"No data set given; {sources}.")
    name = text.lower().replace("_", "-")
    looks_like_path = any(c in text for c in "/\\") or text.startswith((".", "~"))
    if name in _BUILTINS and not looks_like_path:
        return _BUILTIN_LOADERS[name](name, options)
    path = Path(text).expanduser()
    if path.is_dir():
        return _load_folder(path, text, options)
    if path.exists():
        return _load_file(path, text, options)
    if not looks_like_path and not Path(text).suffix:
        raise DataError(
            f"Unknown data set '{text}' (not a built-in name, and no file or folder of that name "
            f"exists).{did_you_mean(name, _BUILTINS)} Please {sources}."
        )
    raise DataError(f"Data file or folder '{text}' does not exist; {sources}.")


def _load_folder(folder: Path, name: str, options: Mapping[str, Any] | None) -> Dataset:
    idx = _find_idx(folder)
    if idx:
        return _load_idx_folder(folder, name, idx, options)
    images = _list_images(folder)
    if images:
        return _load_image_folder(folder, name, images, options)
    arrays = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in (".npy", ".npz"))
    hint = f" (to use the array file {arrays[0]}, give its path)" if arrays else ""
    raise DataError(
        f"Folder '{name}' holds no images ({', '.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)}) "
        f"and no MNIST IDX files (train-images-idx3-ubyte and t10k-images-idx3-ubyte){hint}; "
        "give a folder of images, a folder of IDX files, or a .npy/.npz file."
    )


def _load_file(path: Path, name: str, options: Mapping[str, Any] | None) -> Dataset:
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        kind = _sniff(path)
        if kind == "other":
            raise DataError(_not_numpy_message(path))
        return _load_arrays(path, name, kind, options)
    if _looks_idx(path):
        return _load_idx_file(path, name, options)
    if path.name.lower().endswith(IMAGE_EXTENSIONS):
        raise DataError(
            f"'{name}' is a single image; give the folder that holds the images instead."
        )
    raise DataError(
        f"Data file '{name}' has an unsupported type ('{suffix or path.name}'); give a .npy/.npz "
        "file, an IDX file (such as train-images-idx3-ubyte), a folder of images, or a "
        f"built-in name ({', '.join(_BUILTINS)})."
    )
