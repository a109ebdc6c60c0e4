"""Data options (``--data-opt key=value``): one option table per kind of source.

:func:`data_options` lists a table for help texts; ``_bind`` checks given options against a
table (names, types and allowed values) and fills in the defaults.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from wae_toolkit.data.expected import MNIST_FILES_TEXT
from wae_toolkit.errors import DataError, did_you_mean
from wae_toolkit.errors import short_repr as _show
from wae_toolkit.limits import MAX_SEED
from wae_toolkit.plugins.options import convert, type_name


@dataclass(frozen=True)
class _Opt:
    annotation: Any
    default: Any
    help: str


_TEST_FRACTION = _Opt(float, 0.2, "share of the samples held out as the test split, 0 < f < 1")
_SEED = _Opt(int, 123, "seed of the train/test split (and of generated data)")
_LIMIT = _Opt(int | None, None, "use only the first N training samples (quick runs)")
_SCALE = _Opt(
    Literal["unit", "symmetric"],
    "unit",
    "unit keeps the values; symmetric maps data in [0, 1] to [-1, 1] (x -> 2x - 1)",
)
_SPLIT = {"test_fraction": _TEST_FRACTION, "seed": _SEED, "limit": _LIMIT, "scale": _SCALE}


def _toy_options(noise: float) -> dict[str, _Opt]:
    return {
        "n": _Opt(int, 4000, "number of points, train and test together"),
        "noise": _Opt(float, noise, "standard deviation of the Gaussian noise"),
        **_SPLIT,
    }


#: The options that only a ``split="paper"`` MNIST IDX folder uses.
_PAPER_SPLIT_ONLY = ("seed", "holdout")


_TEST_FILE = _Opt(str | None, None, "a second file holding the test split (else test_fraction)")
_KEY = _Opt(str | None, None, "name of the data array in the .npz file")
_LABELS_KEY = _Opt(str | None, None, "name of the label array in the .npz file")
_SIZE = _Opt(int | None, None, "resize every image to size x size pixels")
_CROP = _Opt(int | None, None, "centre-crop to crop x crop pixels before resizing")
#: How an array's shape is read (the rule of ``auto``: :data:`wae_toolkit.data.layout.LAYOUT_RULE`).
_ARRAY_SHAPE = {
    "layout": _Opt(
        Literal["auto", "image", "signal"],
        "auto",
        "what a 3-D array (N, A, B) holds; auto: signals (A channels, length B) when A <= 16 "
        "and B >= 8 A, else A x B images",
    ),
    "size": _SIZE,
    "crop": _CROP,
}

#: Source label -> option table. Labels are what error messages call each kind of source.
_TABLES: dict[str, dict[str, _Opt]] = {
    "digits": dict(_SPLIT),
    "swiss-roll": _toy_options(0.05),
    "moons": _toy_options(0.05),
    "ring": _toy_options(0.05),
    ".npy files": {"test": _TEST_FILE, **_ARRAY_SHAPE, **_SPLIT},
    ".npz files": {
        "key": _KEY,
        "labels_key": _LABELS_KEY,
        "test": _TEST_FILE,
        **_ARRAY_SHAPE,
        **_SPLIT,
    },
    "image folders": {
        "size": _SIZE,
        "channels": _Opt(
            Literal[1, 3] | None, None, "1 (grayscale) or 3 (RGB); default: 1 if all are gray"
        ),
        "crop": _CROP,
        "holdout": _Opt(
            int | None, None, "hold out the last N images of a seeded shuffle (not test_fraction)"
        ),
        **_SPLIT,
    },
    "MNIST IDX folders": {
        "limit": _LIMIT,
        "split": _Opt(
            Literal["official", "paper"],
            "official",
            "official: 60k/10k; paper: train+test shuffled with seed, the last holdout held out",
        ),
        "seed": _Opt(int, 123, "with split=paper: seed of the shuffle"),
        "holdout": _Opt(int, 10000, "with split=paper: number of images held out"),
        "scale": _SCALE,
    },
    "single IDX files": dict(_SPLIT),
    "data given in Python": {**_ARRAY_SHAPE, **_SPLIT},
}
_NOTES = {
    ("MNIST IDX folders", "test_fraction"): (
        "MNIST IDX folders keep their official train/test split (or, with split=paper, hold out "
        "the last holdout images of a seeded shuffle)"
    ),
    ("image folders", "split"): (
        f"split chooses the train/test split of a folder holding {MNIST_FILES_TEXT}, and this "
        "folder holds images instead"
    ),
}


def data_options(source: str) -> dict[str, tuple[str, Any, str]]:
    """The options of one kind of data source, for help texts.

    Args:
        source: A built-in name, or one of ``".npy files"``, ``".npz files"``,
            ``"image folders"``, ``"MNIST IDX folders"``, ``"single IDX files"``.

    Returns:
        Option name -> (type name, default, one-line help).
    """
    if source not in _TABLES:
        raise DataError(
            f"Unknown data source kind '{source}'.{did_you_mean(source, _TABLES)} "
            f"Kinds: {', '.join(_TABLES)}."
        )
    return {k: (type_name(o.annotation), o.default, o.help) for k, o in _TABLES[source].items()}


def _bind(options: Mapping[str, Any] | None, table_name: str, source: str) -> dict[str, Any]:
    """Check ``options`` against one source's table, convert them, and fill in defaults."""
    table = _TABLES[table_name]
    out = {k: o.default for k, o in table.items()}
    for raw_key, value in (options or {}).items():
        key = str(raw_key).strip().replace("-", "_")
        if key not in table:
            note = _NOTES.get((table_name, key))
            if note:
                raise DataError(
                    f"{note}, so option '{key}' does not apply to {source}; "
                    f"options: {', '.join(table)}."
                )
            elsewhere = [name for name, t in _TABLES.items() if key in t and name != table_name]
            hint = f" ('{key}' applies to {_join(elsewhere[:3])}.)" if elsewhere else ""
            raise DataError(
                f"Option '{key}' does not apply to {source}.{did_you_mean(key, table)} "
                f"Options for {table_name}: {', '.join(table) or 'none'}.{hint}"
            )
        if value is None:
            continue
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        opt = table[key]
        try:
            out[key] = convert(value, opt.annotation)
        except ValueError as exc:
            raise DataError(
                f"Bad value {_show(value)} for data option '{key}': {exc} "
                f"(type {type_name(opt.annotation)})."
            ) from None
    _check_values(out)
    return out


def _check_values(opts: dict[str, Any]) -> None:
    """Refuse values out of range. Integers are already within 64 bits (the option rules of
    :func:`~wae_toolkit.plugins.options.convert`); whether a size fits in memory is told by each
    source,
    which knows the bytes per sample (:mod:`wae_toolkit.memory`)."""

    def bad(key: str, rule: str) -> DataError:
        return DataError(
            f"Data option {key}={_show(opts[key])} is not allowed; {key} must be {rule}."
        )

    f = opts.get("test_fraction")
    if f is not None and not 0.0 < f < 1.0:
        raise bad("test_fraction", "between 0 and 1 (exclusive), for example 0.2")
    if opts.get("seed") is not None and not 0 <= opts["seed"] <= MAX_SEED:
        raise bad("seed", "an integer from 0 to 2^63 - 1")
    for key in ("limit", "size", "crop", "holdout"):
        if opts.get(key) is not None and opts[key] < 1:
            raise bad(key, "a positive integer")
    if opts.get("n") is not None and opts["n"] < 2:
        raise bad("n", "at least 2 (train and test need one point each)")
    noise = opts.get("noise")
    if noise is not None and not (math.isfinite(noise) and noise >= 0):
        raise bad("noise", "a finite number >= 0")


def _given(options: Mapping[str, Any] | None) -> set[str]:
    """The option names the user gave (a value of ``None`` counts as not given)."""
    return {str(k).strip().replace("-", "_") for k, v in (options or {}).items() if v is not None}


def _join(items: Iterable[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
