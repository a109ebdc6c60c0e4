"""Built-in data sets: scikit-learn's 8x8 digits and the seeded 2-D toy sets, as the data sources
of kind ``name`` (``--data digits``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from wae_toolkit.data.dataset import Dataset, _from_arrays
from wae_toolkit.data.source_base import TableSource
from wae_toolkit.data.source_options import _bind
from wae_toolkit.errors import DataError
from wae_toolkit.memory import check_fits

_BUILTINS: dict[str, str] = {
    "digits": "1,797 real 8x8 handwritten digits bundled with scikit-learn, in [0, 1], 10 classes "
    "(the default)",
    "swiss-roll": "2-D swiss roll standardised to unit scale (toy set for quick runs and plots)",
    "moons": "two interleaving half circles in 2-D, 2 classes (toy set)",
    "ring": "a ring of 8 Gaussians of radius 2 in 2-D, 8 classes (toy set)",
}


def builtin_datasets() -> dict[str, str]:
    """The built-in data sets: name -> one-line description."""
    return dict(_BUILTINS)


def _load_digits(name: str, options: Mapping[str, Any] | None) -> Dataset:
    opts = _bind(options, "digits", "the built-in data set 'digits'")
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    bunch = load_digits()
    x = (np.asarray(bunch.images, dtype=np.float32) / 16.0)[:, None, :, :]
    labels = np.asarray(bunch.target, dtype=np.int64)
    return _from_arrays(name, "scikit-learn's 8x8 handwritten digits", x, labels, opts)


def _swiss_roll(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, None]:
    t = 1.5 * np.pi * (1.0 + 2.0 * rng.random(n))
    x = np.stack([t * np.cos(t), t * np.sin(t)], axis=1)
    x = (x - x.mean(axis=0)) / x.std()
    return x + noise * rng.standard_normal((n, 2)), None


def _moons(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, 2, n)
    theta = np.pi * rng.random(n)
    outer = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    inner = np.stack([1.0 - np.cos(theta), 0.5 - np.sin(theta)], axis=1)
    x = np.where(labels[:, None] == 0, outer, inner) - np.array([0.5, 0.25])
    return x + noise * rng.standard_normal((n, 2)), labels


def _ring(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, 8, n)
    angle = 2.0 * np.pi * labels / 8.0
    x = 2.0 * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return x + noise * rng.standard_normal((n, 2)), labels


_TOYS: dict[str, Callable[[int, float, np.random.Generator], tuple[np.ndarray, Any]]] = {
    "swiss-roll": _swiss_roll,
    "moons": _moons,
    "ring": _ring,
}

#: Peak bytes per point while a toy set is generated, split and converted (float64 coordinates,
#: angles, labels and noise, then the float32 parts; measured: 81 for moons, the largest).
_TOY_BYTES_PER_POINT = 96


def _load_toy(name: str, options: Mapping[str, Any] | None) -> Dataset:
    opts = _bind(options, name, f"the built-in data set '{name}'")
    check_fits(  # refused before generating: a huge n would end in the out-of-memory killer
        opts["n"] * _TOY_BYTES_PER_POINT,
        f"The {name} toy set with n={opts['n']:,}",
        "use a smaller n (the default is 4,000)",
        error=DataError,
    )
    rng = np.random.default_rng(opts["seed"])
    x, labels = _TOYS[name](opts["n"], opts["noise"], rng)
    what = f"{name} toy set, noise {opts['noise']:g}, seed {opts['seed']}"
    return _from_arrays(name, what, x, labels, opts, unbounded=True)


# ---------------------------------------------------------------------------------------------
# The built-in names as data-source plugins (entry points in pyproject.toml, group
# wae_toolkit.data), each given by its name: ``--data digits``.


class DigitsSource(TableSource):
    """scikit-learn's 1,797 real 8x8 handwritten digits, (1, 8, 8) in [0, 1], 10 classes.

    Bundled with scikit-learn, so nothing is downloaded; the default data set. The test part is
    the last ``test_fraction`` (20%, 360 images) of a permutation with ``seed`` (123).
    """

    kind = "name"
    tables = ("digits",)

    def read(self, spec: str, path: Any, found: Any, options: Mapping[str, Any]) -> Dataset:
        return _load_digits("digits", options)


class _ToySource(TableSource):
    """A 2-D toy set generated from the seed."""

    kind = "name"
    toy = ""

    def read(self, spec: str, path: Any, found: Any, options: Mapping[str, Any]) -> Dataset:
        return _load_toy(self.toy, options)


class SwissRollSource(_ToySource):
    """A 2-D swiss roll standardised to unit scale (toy set for quick runs and plots), unbounded.

    ``n`` points generated from ``seed``, with Gaussian noise of standard deviation ``noise``.
    """

    tables = ("swiss-roll",)
    toy = "swiss-roll"


class MoonsSource(_ToySource):
    """Two interleaving half circles in 2-D, centred, 2 classes (toy set), unbounded.

    ``n`` points generated from ``seed``, with Gaussian noise of standard deviation ``noise``.
    """

    tables = ("moons",)
    toy = "moons"


class RingSource(_ToySource):
    """A ring of 8 Gaussians of radius 2 in 2-D, 8 classes (toy set), unbounded.

    ``n`` points generated from ``seed``, with Gaussian noise of standard deviation ``noise``.
    """

    tables = ("ring",)
    toy = "ring"
