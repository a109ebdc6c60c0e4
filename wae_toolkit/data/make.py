"""A :class:`Dataset` from arrays, as the built-in sources make theirs: for data-source plugins."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from wae_toolkit.data.arrays import arrays_dataset
from wae_toolkit.data.dataset import Dataset
from wae_toolkit.data.layout import _as_labels
from wae_toolkit.data.source_options import _check_values
from wae_toolkit.errors import DataError
from wae_toolkit.errors import short_repr as _show

if TYPE_CHECKING:
    pass

__all__ = ["dataset_from_arrays", "SPLIT_DEFAULTS"]

#: The options :func:`dataset_from_arrays` reads, and their defaults (those of every source).
SPLIT_DEFAULTS: dict[str, Any] = {"test_fraction": 0.2, "seed": 123, "limit": None, "scale": "unit"}


def dataset_from_arrays(
    name: str,
    x: Any,
    labels: Any = None,
    *,
    options: Mapping[str, Any] | None = None,
    test: Any = None,
    test_labels: Any = None,
    what: str | None = None,
) -> Dataset:
    """Split, check and describe samples held in arrays, as the built-in sources do.

    Args:
        name: the data set's name (the ``spec`` a source's ``load`` was given).
        x: ``(N, *S)`` samples, a NumPy array (or anything ``numpy.asarray`` takes, a
            memory-mapped array included) in one of the layouts of docs/data.md: ``(N, F)``
            vectors, ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)`` images; bool, integer or
            floating point (``uint8`` is divided by 255). NaN and infinite values are refused.
        labels: ``(N,)`` integer class labels, or ``None``.
        options: the source's options (``source.options()``), recorded in the run's
            configuration; ``test_fraction`` (0.2), ``seed`` (123), ``limit`` (``None``: every
            training sample) and ``scale`` (``"unit"``, or ``"symmetric"`` to map [0, 1] to
            [-1, 1]) are read from it.
        test: a given test part shaped like ``x``; else the last ``test_fraction`` of a
            permutation with ``seed`` is held out.
        test_labels: the test part's labels (used only when both parts have labels).
        what: where the data came from, for the one-line description.

    Returns:
        the :class:`Dataset`, float32 tensors on the CPU.

    Raises:
        DataError: a shape, dtype, value or option that cannot be used, in one sentence.
    """
    opts = {**SPLIT_DEFAULTS, **dict(options or {})}
    if opts["scale"] not in ("unit", "symmetric"):
        raise DataError(
            f"Data option scale={_show(opts['scale'])} is not allowed; scale must be unit or "
            "symmetric."
        )
    _check_values(opts)
    what = what or f"arrays from '{name}'"
    opts = {"layout": "auto", "size": None, "crop": None, **opts}
    x = x if isinstance(x, np.ndarray) else np.asarray(x)
    y = None if labels is None else _labels(labels, len(x), f"The labels of '{name}'")
    wheres: tuple[str, ...] = (f"the data of '{name}'", f"the test data of '{name}'")
    wheres += (f"The training data of '{name}'", f"The test data of '{name}'")
    if test is None:
        return arrays_dataset(x, y, None, opts, name, what, wheres)
    xt = test if isinstance(test, np.ndarray) else np.asarray(test)
    yt = (
        None
        if test_labels is None
        else _labels(test_labels, len(xt), f"The test labels of '{name}'")
    )
    return arrays_dataset(x, y, (xt, yt), opts, name, what, wheres)


def _labels(labels: Any, n: int, where: str) -> np.ndarray:
    out = _as_labels(labels, n, where, explicit=True)
    if out is None:  # unreachable: explicit=True raises instead
        raise DataError(f"{where} cannot be used as labels.")
    return out
