"""Every registered plugin passes the same conformance kit (parametrized over the registry).

A newly registered plugin is tested here without anyone writing a test for it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from wae_toolkit.plugins import registry
from wae_toolkit.plugins.testing import (
    check_cost,
    check_data_source,
    check_network,
    check_penalty,
    check_prior,
)


def _names(kind: str) -> list[str]:
    return [i.name for i in registry.list_plugins(kind) if i.builtin]


@pytest.mark.parametrize("name", _names("cost"))
def test_cost_conforms(name):
    check_cost(registry.create("cost", name))


@pytest.mark.parametrize("dim", [1, 2, 8])
@pytest.mark.parametrize("name", _names("prior"))
def test_prior_conforms(name, dim):
    check_prior(registry.create("prior", name, dim=dim))


#: Small critics keep the adversarial penalties' checks fast; the defaults are 4 x 512.
SMALL_PENALTY_OPTIONS: dict[str, dict[str, int]] = {
    "gan-js": {"hidden": 32},
    "wgan-clip": {"hidden": 32, "critic_steps": 2},
    "wgan-gp": {"hidden": 32, "critic_steps": 2},
}


@pytest.mark.parametrize("dim", [2, 8])
@pytest.mark.parametrize("name", _names("penalty"))
def test_penalty_conforms(name, dim):
    torch.manual_seed(0)
    check_penalty(registry.create("penalty", name, **SMALL_PENALTY_OPTIONS.get(name, {})), dim=dim)


NETWORK_SHAPES = {
    "mlp": [(2,), (1, 8, 8), (3, 16, 16)],
    "conv": [(1, 8, 8), (1, 28, 28), (3, 32, 32), (3, 64, 64), (3, 37, 53)],
    "conv1d": [(1, 4), (1, 128), (3, 100), (2, 9)],
}


@pytest.mark.parametrize("name", _names("network"))
def test_network_conforms(name):
    options = {"width": 4} if name in ("conv", "conv1d") else {}
    for shape in NETWORK_SHAPES.get(name, [(1, 28, 28)]):
        check_network(registry.create("network", name, **options), data_shape=shape, latent_dim=3)


# ---------------------------------------------------------------------------------------------
# Data sources: each built-in reads a small example the test writes (a name source reads none).


def _png_folder(root: Path) -> Path:
    from PIL import Image

    pixels = (np.random.default_rng(0).random((6, 5, 4)) * 255).astype(np.uint8)
    for i, a in enumerate(pixels):
        Image.fromarray(a).save(root / f"{i}.png")
    return root


def _idx(path: Path, arr: np.ndarray) -> Path:
    kinds = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, kinds[arr.dtype], arr.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in arr.shape
    )
    path.write_bytes(header + arr.tobytes())
    return path


def _mnist(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("t10k", 3)):
        _idx(root / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 7, 7), dtype=np.uint8))
        _idx(root / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, n, dtype=np.uint8))
    return root


def _npy(root: Path) -> Path:
    np.save(root / "x.npy", np.random.default_rng(0).random((10, 3)))
    return root / "x.npy"


def _hf(root: Path) -> Path:
    datasets = pytest.importorskip("datasets", reason="the hf extra is not installed")
    x = np.random.default_rng(0).random((10, 3)).astype(np.float32)
    datasets.Dataset.from_dict({"x": x, "label": [i % 2 for i in range(10)]}).save_to_disk(
        str(root / "hf")
    )
    return root / "hf"


#: Built-in data source -> a function writing a small example of its data into a folder.
DATA_EXAMPLES: dict[str, Callable[[Path], Path] | None] = {
    "digits": None,
    "swiss-roll": None,
    "moons": None,
    "ring": None,
    "image-folder": _png_folder,
    "idx-folder": _mnist,
    "array-file": _npy,
    "idx-file": lambda root: _mnist(root) / "train-images-idx3-ubyte",
    "hf": _hf,
}


@pytest.mark.parametrize("name", _names("data"))
def test_data_source_conforms(name, tmp_path):
    assert name in DATA_EXAMPLES, f"add an example of the data source '{name}' to DATA_EXAMPLES"
    example = DATA_EXAMPLES[name]
    source = registry.create("data", name)
    options = {"n": 50} if name in ("swiss-roll", "moons", "ring") else {}
    data = check_data_source(source, None if example is None else example(tmp_path), options)
    assert data.train.shape[0] + data.test.shape[0] >= 2
