"""The entry point :func:`load_dataset`: a built-in name or a path, dispatched to its source."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from wae_toolkit.data.builtin import _BUILTIN_LOADERS, _BUILTINS
from wae_toolkit.data.dataset import Dataset
from wae_toolkit.data.expected import CELEBA_FOLDER_TEXT, MNIST_FILES_TEXT
from wae_toolkit.data.images import IMAGE_EXTENSIONS
from wae_toolkit.data.source_options import _given, _join
from wae_toolkit.data.sources import SOURCES
from wae_toolkit.errors import DataError, did_you_mean

_SOURCES_HINT = (
    "give a built-in name ({builtins}), a .npy/.npz file, a folder of images, or a folder of "
    "MNIST IDX files"
)
_IMAGE_TYPES = ", ".join(e.lstrip(".") for e in IMAGE_EXTENSIONS)
_EXPECTED = {
    "mnist": f"a folder holding {MNIST_FILES_TEXT} (the labels files are optional)",
    "celeba": CELEBA_FOLDER_TEXT,
    "images": f"a folder of images ({_IMAGE_TYPES})",
}
#: Options that only one kind of folder takes: giving them says which kind was meant.
_MNIST_ONLY = ("split",)
_IMAGES_ONLY = ("size", "channels", "crop")


def expected_contents(kind: Literal["mnist", "celeba", "images"]) -> str:
    """What a data folder of ``kind`` must hold, as a phrase for messages and help texts.

    ``expected_contents("mnist")`` names :data:`~wae_toolkit.data.MNIST_FILES`;
    ``expected_contents("celeba")`` the aligned CelebA JPEG images. Pass it to
    :func:`load_dataset` as ``expects`` so that a wrong folder is reported with it.
    """
    if kind not in _EXPECTED:
        raise DataError(f"Unknown kind of data folder '{kind}'; kinds: {', '.join(_EXPECTED)}.")
    return _EXPECTED[kind]


def load_dataset(
    spec: str | os.PathLike[str],
    options: Mapping[str, Any] | None = None,
    *,
    expects: str | None = None,
) -> Dataset:
    """Load a data set by built-in name or path.

    Args:
        spec: A built-in name (see :func:`builtin_datasets`), a ``.npy``/``.npz`` file, a folder
            of images, a folder of MNIST IDX files, or a single IDX file. A built-in name wins
            over a file or folder of the same name; write ``./digits`` for the folder.
        options: Data options (``--data-opt key=value``); values may be CLI text and are
            converted to each option's declared type.
        expects: What the caller expects ``spec`` to be, as a phrase (a preset passes
            :func:`expected_contents`); a missing path or a folder without usable data is then
            reported with it. Without it, options that only one kind of folder takes
            (``split``; ``size``, ``channels``, ``crop``) say what was expected.

    Returns:
        The data set, with float32 tensors on the CPU.

    Raises:
        DataError: Unknown name, missing or unreadable file, unknown option, bad value, or data
            of a shape or type that cannot be used; the message says what is allowed.
    """
    text = os.fspath(spec).strip() if isinstance(spec, str | os.PathLike) else ""
    sources = _SOURCES_HINT.format(builtins=", ".join(_BUILTINS))
    wanted = _wanted(options, expects)
    if not text:
        raise DataError(f"No data set given; {wanted or sources}.")
    name = text.lower().replace("_", "-")
    looks_like_path = any(c in text for c in "/\\") or text.startswith((".", "~"))
    if name in _BUILTINS and not looks_like_path:
        return _BUILTIN_LOADERS[name](name, options)
    path = Path(text).expanduser()
    if path.is_dir():
        return _load_folder(path, text, options, wanted)
    if path.exists():
        return _load_file(path, text, options)
    if not looks_like_path and not Path(text).suffix and not wanted:
        raise DataError(
            f"Unknown data set '{text}' (not a built-in name, and no file or folder of that name "
            f"exists).{did_you_mean(name, _BUILTINS)} Please {sources}."
        )
    raise DataError(f"Data file or folder '{text}' does not exist; {wanted or sources}.")


def _wanted(options: Mapping[str, Any] | None, expects: str | None) -> str | None:
    """The end of a not-found message when the caller or the options say what was meant."""
    if expects:
        return f"expected {expects}"
    given = _given(options)
    for keys, kind in ((_MNIST_ONLY, "mnist"), (_IMAGES_ONLY, "images")):
        named = sorted(given & set(keys))
        if named:
            verb = "expects" if len(named) == 1 else "expect"
            plural = "s" if len(named) > 1 else ""
            return f"the data option{plural} {_join(named)} {verb} {_EXPECTED[kind]}"
    return None


def _load_folder(
    folder: Path, name: str, options: Mapping[str, Any] | None, wanted: str | None
) -> Dataset:
    for source in SOURCES.values():
        found = source.claims(folder) if source.kind == "folder" else None
        if found:
            return source.load(folder, name, found, options)
    entries = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    arrays = [e for e in entries if Path(e).suffix.lower() in (".npy", ".npz")]
    hint = f" (to use the array file {arrays[0]}, give its path)" if arrays else ""
    if entries:
        more = f" and {len(entries) - 3} more" if len(entries) > 3 else ""
        state = f"holds only other files ({', '.join(entries[:3])}{more})"
    else:
        state = "is empty"
    if wanted:
        raise DataError(f"Folder '{name}' {state}{hint}; {wanted}.")
    raise DataError(
        f"Folder '{name}' {state}: no images ({_IMAGE_TYPES}) and no MNIST IDX files "
        f"({MNIST_FILES_TEXT}){hint}; give a folder of images, a folder of IDX files, or a "
        ".npy/.npz file."
    )


def _load_file(path: Path, name: str, options: Mapping[str, Any] | None) -> Dataset:
    suffix = path.suffix.lower()
    for source in SOURCES.values():
        found = source.claims(path) if source.kind == "file" else None
        if found:
            return source.load(path, name, found, options)
    if path.name.lower().endswith(IMAGE_EXTENSIONS):
        raise DataError(
            f"'{name}' is a single image; give the folder that holds the images instead."
        )
    raise DataError(
        f"Data file '{name}' has an unsupported type ('{suffix or path.name}'); give a .npy/.npz "
        "file, an IDX file (such as train-images-idx3-ubyte), a folder of images, or a "
        f"built-in name ({', '.join(_BUILTINS)})."
    )
