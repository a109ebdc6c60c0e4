"""The :class:`Dataset` type and how one is built.

The seeded train/test split (or a given one), the ``limit`` cut of the training part, label
tensors, the finiteness check, the inferred value range, the ``scale`` option and the one-line
description.

Splits that hold out a fixed number of samples (``holdout``) use the shuffles of the WAE
reference code, so that the paper's test sets are reproduced exactly: NumPy's legacy
``np.random.seed(seed); np.random.shuffle(x)`` for MNIST (:func:`_numpy_shuffle`) and Python 2's
``random.seed(seed); random.shuffle(paths)`` for CelebA's sorted file names
(:func:`_python2_shuffle`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from wae_toolkit.data.layout import _gather
from wae_toolkit.errors import DataError


@dataclass
class Dataset:
    """A data set split into a training part and a fixed held-out test part.

    Attributes:
        name: The built-in name (``"digits"``, ``"swiss-roll"``) or the path as given.
        train: ``(N, *S)`` float32 training samples on the CPU.
        test: ``(M, *S)`` float32 held-out samples; the same for a given data set and seed.
        train_labels: ``(N,)`` int64 class labels, or ``None``.
        test_labels: ``(M,)`` int64 class labels, or ``None``.
        value_range: ``(0.0, 1.0)``, ``(-1.0, 1.0)``, or ``None`` for unbounded data. The decoder
            ends in a sigmoid, a tanh or a linear layer accordingly.
        description: One line for the run summary.
        options: The resolved data options (given and default), JSON-friendly, for the run
            configuration.
    """

    name: str
    train: torch.Tensor = field(repr=False)
    test: torch.Tensor = field(repr=False)
    train_labels: torch.Tensor | None = field(repr=False)
    test_labels: torch.Tensor | None = field(repr=False)
    value_range: tuple[float, float] | None
    description: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape ``S`` of one sample: ``(F,)`` for vectors, ``(C, H, W)`` for images."""
        return tuple(self.train.shape[1:])

    @property
    def is_image(self) -> bool:
        """Whether samples are images, shaped ``(C, H, W)``."""
        return len(self.sample_shape) == 3


def _split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Permute ``range(n)`` with ``seed``; the last ``ceil(fraction * n)`` indices are the test."""
    n_test = min(max(math.ceil(n * fraction - 1e-9), 1), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return perm[: n - n_test], perm[n - n_test :]


def _numpy_shuffle(n: int, seed: int) -> np.ndarray:
    """The order ``np.random.seed(seed); np.random.shuffle(x)`` gives ``x``'s ``n`` rows.

    NumPy's legacy generator is frozen (NEP 19), so the order never changes across versions.
    """
    return np.random.RandomState(seed).permutation(n)


def _python2_shuffle(n: int, seed: int) -> np.ndarray:
    """The order Python 2.7's ``random.seed(seed); random.shuffle(x)`` gives a list of ``n``.

    Python 2 swapped ``x[i]`` with ``x[int(random() * (i + 1))]`` for ``i = n-1, ..., 1``; the
    Mersenne Twister and its seeding from an integer are unchanged in Python 3, only
    ``shuffle`` itself changed, so the old loop is replayed here.
    """
    rng = random.Random(seed)
    order = list(range(n))
    for i in reversed(range(1, n)):
        j = int(rng.random() * (i + 1))
        order[i], order[j] = order[j], order[i]
    return np.asarray(order, dtype=np.int64)


def _holdout_split(order: np.ndarray, holdout: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Split a shuffled ``order`` of indices: the last ``holdout`` are the test part."""
    n = len(order)
    if not 1 <= holdout <= n - 1:
        raise DataError(
            f"Data option holdout={holdout:,} does not fit '{name}', which holds {n:,} samples; "
            f"holdout must be between 1 and {n - 1:,} so that both parts keep a sample."
        )
    return order[: n - holdout], order[n - holdout :]


def _labels_tensor(labels: np.ndarray | None, idx: np.ndarray | None) -> torch.Tensor | None:
    if labels is None:
        return None
    part = labels if idx is None else labels[idx]
    return torch.from_numpy(np.asarray(part, dtype=np.int64).copy())


def _finish(
    name: str,
    what: str,
    train: torch.Tensor,
    test: torch.Tensor,
    train_labels: torch.Tensor | None,
    test_labels: torch.Tensor | None,
    opts: dict[str, Any],
    unbounded: bool = False,
) -> Dataset:
    """Check finiteness, infer the value range (unless ``unbounded``) and describe the data."""
    lo = min(float(train.min()), float(test.min()))
    hi = max(float(train.max()), float(test.max()))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise DataError(
            f"The data ({what}) holds NaN or infinite values; only finite numbers can be used, "
            "so clean or drop those samples first."
        )
    value_range: tuple[float, float] | None
    if unbounded:
        value_range, range_text = None, "unbounded"
    elif lo >= 0.0 and hi <= 1.0:
        value_range, range_text = (0.0, 1.0), "in [0, 1]"
    elif lo >= -1.0 and hi <= 1.0:
        value_range, range_text = (-1.0, 1.0), "in [-1, 1]"
    else:
        value_range, range_text = None, f"unbounded (seen {lo:.3g} to {hi:.3g})"
    if opts.get("scale") == "symmetric":
        if value_range != (0.0, 1.0):
            raise DataError(
                f"Data option scale=symmetric maps data in [0, 1] to [-1, 1], but the data "
                f"({what}) is {range_text}; drop the option (scale=unit keeps the values)."
            )
        for part in (train, test):  # fresh tensors: scaled in place to spare memory
            part.mul_(2.0).sub_(1.0)
        value_range, range_text = (-1.0, 1.0), "in [-1, 1] (scale=symmetric: 2x - 1)"
    shape = tuple(train.shape[1:])
    kind = "images" if len(shape) == 3 else "vectors"
    classes = ""
    if train_labels is not None and test_labels is not None:
        n_classes = len(torch.unique(torch.cat([train_labels, test_labels])))
        classes = f", {n_classes} classes"
    limited = f" (limit {opts['limit']})" if opts.get("limit") is not None else ""
    description = (
        f"{name}: {len(train):,} train{limited} / {len(test):,} test {kind} of shape "
        f"{'x'.join(map(str, shape))}, {range_text}{classes}; {what}"
    )
    return Dataset(
        name=name,
        train=train,
        test=test,
        train_labels=train_labels,
        test_labels=test_labels,
        value_range=value_range,
        description=description,
        options=dict(opts),
    )


def _from_arrays(
    name: str,
    what: str,
    x: np.ndarray,
    labels: np.ndarray | None,
    opts: dict[str, Any],
    unbounded: bool = False,
) -> Dataset:
    """Split in-memory float arrays (built-ins) with the options ``test_fraction``/``seed``."""

    def take(idx: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x[idx], dtype=np.float32))

    return _finish_split(name, what, len(x), take, labels, opts, unbounded)


def _finish_split(
    name: str,
    what: str,
    n: int,
    take: Callable[[np.ndarray], torch.Tensor],
    labels: np.ndarray | None,
    opts: dict[str, Any],
    unbounded: bool = False,
) -> Dataset:
    """Split ``n`` samples with ``test_fraction``/``seed`` (or, when the options hold a
    ``holdout``, the last ``holdout`` samples of the reference code's shuffle: NumPy's for
    ``split="paper"``, Python 2's otherwise), keep the first ``limit`` training indices, read each
    part with ``take(indices)`` and :func:`_finish` the data set."""
    if opts.get("holdout") is None:
        train_idx, test_idx = _split(n, opts["test_fraction"], opts["seed"])
    else:
        shuffle = _numpy_shuffle if opts.get("split") == "paper" else _python2_shuffle
        train_idx, test_idx = _holdout_split(shuffle(n, opts["seed"]), opts["holdout"], name)
    train_idx = train_idx[: opts["limit"]]
    return _finish(
        name,
        what,
        take(train_idx),
        take(test_idx),
        _labels_tensor(labels, train_idx),
        _labels_tensor(labels, test_idx),
        opts,
        unbounded,
    )


def _finish_given_split(
    name: str,
    what: str,
    arrays: tuple[np.ndarray, str, np.ndarray, str],
    labels: np.ndarray | None,
    test_labels: np.ndarray | None,
    opts: dict[str, Any],
) -> Dataset:
    """Keep a given train/test split, ``arrays = (x, layout, x_test, layout_test)``: the first
    ``limit`` training samples and the whole test part; labels only if both parts have them."""
    x, layout, xt, layout_t = arrays
    train_idx = np.arange(min(len(x), opts["limit"] or len(x)))
    train, test = _gather(x, train_idx, layout), _gather(xt, None, layout_t)
    if labels is None or test_labels is None:
        labels = test_labels = None
    return _finish(
        name,
        what,
        train,
        test,
        _labels_tensor(labels, train_idx),
        _labels_tensor(test_labels, None),
        opts,
    )
