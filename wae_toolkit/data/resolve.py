"""The entry point :func:`load_dataset`: a name or a path, dispatched to its data source.

The sources are plugins of the kind ``data``
(:class:`~wae_toolkit.plugins.interfaces.DataSource`), found through the registry: a name goes to
the source of kind ``name`` registered under it; a path is offered to the file and folder sources
in order (:data:`~wae_toolkit.data.sources.PATH_SOURCE_ORDER` for the built-ins, then the others
by name), and the first that claims it reads it. Only the source asked for is imported, and for
a path the file and folder sources needed to claim it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from wae_toolkit.data.builtin import _BUILTINS
from wae_toolkit.data.dataset import Dataset
from wae_toolkit.data.expected import CELEBA_FOLDER_TEXT, MNIST_FILES_TEXT
from wae_toolkit.data.images import IMAGE_EXTENSIONS
from wae_toolkit.data.source_options import _given, _join
from wae_toolkit.data.sources import PATH_SOURCE_ORDER
from wae_toolkit.errors import DataError, PluginLoadError, WaeError, did_you_mean
from wae_toolkit.plugins.interfaces import DataSource
from wae_toolkit.plugins.registry import (
    DATA_KIND,
    get_plugin_class,
    list_plugins,
    plugin_class,
    plugin_names,
)

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
    if not looks_like_path:
        source = _name_source(name)
        if source is not None:
            return source.from_options(options, name).load(name)
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
    loaded = _claimed(folder, name, options)
    if loaded is not None:
        return loaded
    entries = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    arrays = [e for e in entries if Path(e).suffix.lower() in (".npy", ".npz")]
    tables = [e for e in entries if Path(e).suffix.lower() in (".parquet", ".arrow")]
    hint = f" (to use the array file {arrays[0]}, give its path)" if arrays else ""
    if tables and not arrays:
        hint = f" (to use the Hugging Face data file {tables[0]}, give its path)"
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
    loaded = _claimed(path, name, options)
    if loaded is not None:
        return loaded
    if path.name.lower().endswith(IMAGE_EXTENSIONS):
        raise DataError(
            f"'{name}' is a single image; give the folder that holds the images instead."
        )
    raise DataError(
        f"Data file '{name}' has an unsupported type ('{suffix or path.name}'); give a .npy/.npz "
        "file, an IDX file (such as train-images-idx3-ubyte), a folder of images, or a "
        f"built-in name ({', '.join(_BUILTINS)})."
    )


# ---------------------------------------------------------------------------------------------
# The data sources, through the registry.


def _name_source(name: str) -> type[DataSource] | None:
    """The installed source of kind ``name`` registered as ``name``, if there is one (only that
    plugin is imported)."""
    if name not in plugin_names(DATA_KIND):
        return None
    cls: type[DataSource] = get_plugin_class(DATA_KIND, name)
    return cls if cls.kind == "name" else None


def path_sources(folder: bool) -> Iterator[tuple[str, type[DataSource]]]:
    """``(name, class)`` of the sources that read folders (``folder``) or files, in the order a
    path is offered to them: the built-ins in :data:`~wae_toolkit.data.sources.PATH_SOURCE_ORDER`,
    then the others by name. Each is imported when it is reached.

    Raises:
        PluginLoadError: once every other source was offered the path, the first that failed to
            import: a broken plugin only matters when no other source claims the path.
    """
    rank = {n: i for i, n in enumerate(PATH_SOURCE_ORDER)}
    infos = sorted(
        list_plugins(DATA_KIND),
        key=lambda i: (not i.builtin, rank.get(i.name, len(rank)), i.name),
    )
    kinds = ("folder", "path") if folder else ("file", "path")
    failed: list[PluginLoadError] = []
    for info in infos:
        try:
            cls: type[DataSource] = plugin_class(info)
        except PluginLoadError as exc:
            failed.append(exc)
            continue
        if cls.kind in kinds:
            yield info.name, cls
    if failed:
        raise failed[0]


def _claimed(path: Path, spec: str, options: Mapping[str, Any] | None) -> Dataset | None:
    """The data set read by the first source that claims ``path``, or ``None`` if none does."""
    for name, cls in path_sources(path.is_dir()):
        try:
            found = cls().claims(path)
        except WaeError:
            raise
        except Exception as exc:  # a third party's claims must not raise; name it if it does
            raise DataError(
                f"The data source '{name}' failed while checking '{spec}': "
                f"{type(exc).__name__}: {exc}."
            ) from exc
        if found:
            loaded: Dataset = cls.from_options(options, name).load(spec, path, found)
            return loaded
    return None
