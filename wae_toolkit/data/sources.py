"""The built-in formats of files and folders, as data-source plugins (entry points in
pyproject.toml, group ``wae_toolkit.data``), and the order in which a path is offered to them.

Adding a format is one module that reads it, one class here (or anywhere: a third-party
distribution declares its class the same way) and one entry point.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wae_toolkit.data.arrays import _load_arrays, _not_numpy_message, _sniff
from wae_toolkit.data.dataset import Dataset
from wae_toolkit.data.idx import _find_idx, _load_idx_file, _load_idx_folder, _looks_idx
from wae_toolkit.data.images import _list_images, _load_image_folder
from wae_toolkit.data.source_base import TableSource
from wae_toolkit.errors import DataError

__all__ = [
    "PATH_SOURCE_ORDER",
    "IdxFolderSource",
    "ImageFolderSource",
    "ArrayFileSource",
    "IdxFileSource",
]

#: The built-in file and folder sources by plugin name, in the order a path is offered to them;
#: the other installed file and folder sources follow, sorted by name.
PATH_SOURCE_ORDER = ("idx-folder", "image-folder", "array-file", "idx-file", "hf")


def _need(path: Path | None, spec: str) -> Path:
    return Path(spec).expanduser() if path is None else path


class IdxFolderSource(TableSource):
    """A folder of MNIST's four IDX files (plain or .gz; also its raw/ sub-folder), 1x28x28.

    Keeps the official 60,000 / 10,000 split, or with ``split=paper`` the WAE paper's (train and
    test shuffled with ``seed``, the last ``holdout`` held out). Fashion-MNIST and KMNIST work the
    same way.
    """

    kind = "folder"
    tables = ("MNIST IDX folders",)

    def claims(self, path: Path) -> Any:
        return _find_idx(path)

    def read(self, spec: str, path: Any, found: Any, options: Mapping[str, Any]) -> Dataset:
        return _load_idx_folder(_need(path, spec), spec, found, options)


class ImageFolderSource(TableSource):
    """A folder of images (png, jpg, jpeg, bmp, gif, webp, tif, tiff; recursive), in [0, 1].

    Read with Pillow in sorted order; sub-folders give class labels. ``size`` resizes, ``crop``
    centre-crops first, ``holdout`` holds out the last N images of a seeded shuffle.
    """

    kind = "folder"
    tables = ("image folders",)

    def claims(self, path: Path) -> Any:
        return _list_images(path)

    def read(self, spec: str, path: Any, found: Any, options: Mapping[str, Any]) -> Dataset:
        return _load_image_folder(_need(path, spec), spec, found, options)


class ArrayFileSource(TableSource):
    """A NumPy .npy or .npz file of samples, read with allow_pickle=False (never unpickled).

    ``(N, F)`` vectors or images in the layouts of docs/data.md; ``key`` and ``labels_key`` pick
    the arrays of an .npz file; ``test`` names a second file holding the test part.
    """

    kind = "file"
    tables = (".npz files", ".npy files")

    def claims(self, path: Path) -> Any:
        return path.suffix.lower() in (".npy", ".npz")

    def read(self, spec: str, path: Any, found: Any, options: Mapping[str, Any]) -> Dataset:
        path = _need(path, spec)
        kind = _sniff(path)
        if kind == "other":
            raise DataError(_not_numpy_message(path))
        return _load_arrays(path, spec, kind, options)


class IdxFileSource(TableSource):
    """A single IDX images file (such as train-images-idx3-ubyte), split with test_fraction.

    Its labels are read from the matching labels file beside it, when there is one.
    """

    kind = "file"
    tables = ("single IDX files",)

    def claims(self, path: Path) -> Any:
        return _looks_idx(path)

    def read(self, spec: str, path: Any, found: Any, options: Mapping[str, Any]) -> Dataset:
        return _load_idx_file(_need(path, spec), spec, options)
