"""The kinds of files and folders :func:`~wae_toolkit.data.load_dataset` reads: a table of
name -> :class:`Source`, tried in order. Adding a format is one new module that reads it plus
one line here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from wae_toolkit.data.arrays import _load_arrays, _not_numpy_message, _sniff
from wae_toolkit.data.dataset import Dataset
from wae_toolkit.data.idx import _find_idx, _load_idx_file, _load_idx_folder, _looks_idx
from wae_toolkit.data.images import _list_images, _load_image_folder
from wae_toolkit.errors import DataError

__all__ = ["Source", "SOURCES"]


@dataclass(frozen=True)
class Source:
    """One format: ``claims(path)`` says whether the file or folder is this format (returning
    what it found there, e.g. the files to read, or something false), and
    ``load(path, name, found, options)`` reads it."""

    kind: Literal["file", "folder"]
    claims: Callable[[Path], Any]
    load: Callable[[Path, str, Any, Mapping[str, Any] | None], Dataset]


def _is_array_file(path: Path) -> bool:
    return path.suffix.lower() in (".npy", ".npz")


def _load_array_file(path: Path, name: str, _: Any, options: Mapping[str, Any] | None) -> Dataset:
    kind = _sniff(path)
    if kind == "other":
        raise DataError(_not_numpy_message(path))
    return _load_arrays(path, name, kind, options)


#: name -> format, in the order they are tried on a folder or a file.
SOURCES: dict[str, Source] = {
    "idx-folder": Source("folder", _find_idx, _load_idx_folder),
    "image-folder": Source("folder", _list_images, _load_image_folder),
    "array-file": Source("file", _is_array_file, _load_array_file),
    "idx-file": Source("file", _looks_idx, lambda p, n, _, o: _load_idx_file(p, n, o)),
}
