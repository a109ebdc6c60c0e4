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

from wae_toolkit.data.layout import _gather, _sample_shape
from wae_toolkit.data.resample import Resize
from wae_toolkit.data.streamed import StreamedPart, read_part
from wae_toolkit.errors import DataError
from wae_toolkit.memory import check_fits


@dataclass
class Dataset:
    """A data set split into a training part and a fixed held-out test part.

    Attributes:
        name: The built-in name (``"digits"``, ``"swiss-roll"``) or the path as given.
        train: ``(N, *S)`` float32 training samples on the CPU; when a run loads a data set
            larger than its memory budget, a :class:`~wae_toolkit.data.streamed.StreamedPart`
            that reads them a batch at a time.
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
    train: torch.Tensor | StreamedPart = field(repr=False)
    test: torch.Tensor = field(repr=False)
    train_labels: torch.Tensor | None = field(repr=False)
    test_labels: torch.Tensor | None = field(repr=False)
    value_range: tuple[float, float] | None
    description: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape ``S`` of one sample: ``(F,)`` for vectors, ``(C, L)`` for signals, ``(C, H, W)``
        for images."""
        return tuple(self.train.shape[1:])

    @property
    def train_tensor(self) -> torch.Tensor:
        """The training samples as one tensor (a data set loaded outside a run's memory budget
        always has it)."""
        if isinstance(self.train, StreamedPart):
            raise DataError(
                f"The training part of '{self.name}' is read a batch at a time (it is larger "
                "than the memory budget); load the data set without a budget to hold it whole."
            )
        return self.train

    @property
    def is_image(self) -> bool:
        """Whether samples are images, shaped ``(C, H, W)``."""
        return len(self.sample_shape) == 3

    @property
    def is_signal(self) -> bool:
        """Whether samples are signals, shaped ``(C, L)``."""
        return len(self.sample_shape) == 2


@dataclass(frozen=True)
class _Footprint:
    """What reading samples costs in memory, so that a size is refused before it is allocated.

    Attributes:
        per_sample: bytes per sample read (its float32 copy, and any scratch per sample).
        what: the samples, as they follow their count in a message ("images of 'x' at 64x64
            pixels").
        fix: what to do instead, for the message.
        fixed: bytes needed once besides the samples (decoding scratch).
    """

    per_sample: int
    what: str
    fix: str
    fixed: int = 0

    def check(self, n_read: int, extra: int = 0) -> None:
        """Refuse reading ``n_read`` samples (and ``extra`` bytes of indices) that cannot fit."""
        check_fits(
            n_read * self.per_sample + self.fixed + extra,
            f"Reading {n_read:,} {self.what}",
            self.fix,
            error=DataError,
        )


#: Bytes per sample of the split's index arrays: NumPy's permutations (int64, with a copy), and
#: the Python 2 shuffle's list of Python ints.
_INDEX_BYTES = {"numpy": 16, "python2": 64}


def _test_count(n: int, fraction: float) -> int:
    """The size of the test part of ``n`` samples split with ``fraction``: at least 1, and at
    most ``n - 1``."""
    return min(max(math.ceil(n * fraction - 1e-9), 1), n - 1)


def _split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Permute ``range(n)`` with ``seed``; the last ``ceil(fraction * n)`` indices are the test."""
    n_test = _test_count(n, fraction)
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


def _check_holdout(holdout: int, n: int, name: str) -> None:
    if not 1 <= holdout <= n - 1:
        raise DataError(
            f"Data option holdout={holdout:,} does not fit '{name}', which holds {n:,} samples; "
            f"holdout must be between 1 and {n - 1:,} so that both parts keep a sample."
        )


def _holdout_split(order: np.ndarray, holdout: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Split a shuffled ``order`` of indices: the last ``holdout`` are the test part."""
    n = len(order)
    _check_holdout(holdout, n, name)
    return order[: n - holdout], order[n - holdout :]


def _labels_tensor(labels: np.ndarray | None, idx: np.ndarray | None) -> torch.Tensor | None:
    if labels is None:
        return None
    part = labels if idx is None else labels[idx]
    return torch.from_numpy(np.asarray(part, dtype=np.int64).copy())


def _finish(
    name: str,
    what: str,
    train: torch.Tensor | StreamedPart,
    test: torch.Tensor,
    train_labels: torch.Tensor | None,
    test_labels: torch.Tensor | None,
    opts: dict[str, Any],
    unbounded: bool = False,
) -> Dataset:
    """Infer the value range (unless ``unbounded``) and describe the data.

    Data read from files were checked for NaN and infinite values as they were converted
    (:func:`~wae_toolkit.data.layout._gather`); the minimum and maximum of each part (which
    torch computes as NaN when a NaN is there) only guard the other sources.
    """
    lo_train, hi_train = (
        train.scan()
        if isinstance(train, StreamedPart)
        else (float(train.min()), float(train.max()))
    )
    lows, highs = (lo_train, float(test.min())), (hi_train, float(test.max()))
    for label, lo_part, hi_part in zip(("training", "test"), lows, highs, strict=True):
        if not (math.isfinite(lo_part) and math.isfinite(hi_part)):
            raise DataError(
                f"The {label} part of the data ({what}) holds NaN or infinite values; only finite "
                "numbers can be used, so clean or drop those samples first."
            )
    lo, hi = min(lows), max(highs)
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
            if isinstance(part, StreamedPart):
                part.symmetric = True  # scaled batch by batch, on the device
            else:
                part.mul_(2.0).sub_(1.0)
        value_range, range_text = (-1.0, 1.0), "in [-1, 1] (scale=symmetric: 2x - 1)"
    shape = tuple(train.shape[1:])
    kind = {3: "images", 2: "signals"}.get(len(shape), "vectors")
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

    def take(idx: np.ndarray, part: str) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x[idx], dtype=np.float32))

    return _finish_split(name, what, len(x), take, labels, opts, unbounded)


def _check_split(n: int, opts: dict[str, Any], name: str, footprint: _Footprint) -> None:
    """Refuse a split of ``n`` samples (as :func:`_finish_split` makes it with ``opts``) whose
    indices and used samples cannot fit in memory, before anything is allocated."""
    if opts.get("holdout") is None:
        n_test, index_bytes = _test_count(n, opts["test_fraction"]), _INDEX_BYTES["numpy"]
    else:
        _check_holdout(opts["holdout"], n, name)
        shuffle = "numpy" if opts.get("split") == "paper" else "python2"
        n_test, index_bytes = opts["holdout"], _INDEX_BYTES[shuffle]
    n_train = n - n_test if opts["limit"] is None else min(n - n_test, opts["limit"])
    footprint.check(n_train + n_test, extra=n * index_bytes)


def _finish_split(
    name: str,
    what: str,
    n: int,
    take: Callable[[np.ndarray, str], torch.Tensor],
    labels: np.ndarray | None,
    opts: dict[str, Any],
    unbounded: bool = False,
    footprint: _Footprint | None = None,
) -> Dataset:
    """Split ``n`` samples with ``test_fraction``/``seed`` (or, when the options hold a
    ``holdout``, the last ``holdout`` samples of the reference code's shuffle: NumPy's for
    ``split="paper"``, Python 2's otherwise), keep the first ``limit`` training indices, read each
    part with ``take(indices, part)`` (``part`` is ``"training"`` or ``"test"``) and
    :func:`_finish` the data set. With a ``footprint``, reading the samples that are used (and
    the split's indices) is first checked against the machine's memory."""
    paper = opts.get("split") == "paper"
    if footprint is not None:
        _check_split(n, opts, name, footprint)
    if opts.get("holdout") is None:
        train_idx, test_idx = _split(n, opts["test_fraction"], opts["seed"])
    else:
        shuffle = _numpy_shuffle if paper else _python2_shuffle
        train_idx, test_idx = _holdout_split(shuffle(n, opts["seed"]), opts["holdout"], name)
    train_idx = train_idx[: opts["limit"]]
    return _finish(
        name,
        what,
        take(train_idx, "training"),
        take(test_idx, "test"),
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
    wheres: tuple[str, str] = ("The training data", "The test data"),
    footprint: _Footprint | None = None,
    resizes: tuple[Resize | None, Resize | None] = (None, None),
) -> Dataset:
    """Keep a given train/test split, ``arrays = (x, layout, x_test, layout_test)``: the first
    ``limit`` training samples and the whole test part; labels only if both parts have them.
    ``wheres`` name the two parts in messages about bad values; with a ``footprint``, reading
    them is first checked against the machine's memory; ``resizes`` crop and resize the images
    of each part (the data options ``crop`` and ``size``)."""
    x, layout, xt, layout_t = arrays
    n_train = min(len(x), opts["limit"] or len(x))
    if footprint is not None:
        footprint.check(n_train + len(xt), extra=n_train * _INDEX_BYTES["numpy"])
    train_idx = np.arange(n_train)
    shape = _sample_shape(x.shape, layout)
    shape = shape if resizes[0] is None else resizes[0].shape(shape)
    train = read_part(x, train_idx, layout, resizes[0], shape, wheres[0], training=True)
    test = _gather(xt, None, layout_t, wheres[1], resize=resizes[1])
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
