"""The Hugging Face ``datasets`` source: save_to_disk folders, Parquet and Arrow files read offline
give the same tensors (and train the same model) as the same samples saved as a .npy file."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import wae_toolkit as wt
from wae_toolkit.data import load_dataset
from wae_toolkit.errors import DataError

datasets = pytest.importorskip(
    "datasets", reason="the hf extra is not installed: pip install -c constraints.txt -e '.[hf]'"
)
from PIL import Image  # noqa: E402

FAST = {"epochs": 1, "latent_dim": 2, "seed": 3, "log_every": 1}
N = 40


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    """``(N, 8, 8)`` uint8 grayscale images and their labels' source."""
    return (np.random.default_rng(0).random((N, 8, 8)) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def labels() -> list[int]:
    return [i % 4 for i in range(N)]


@pytest.fixture(scope="module")
def store(tmp_path_factory, pixels, labels) -> Path:
    """The same images as PIL images (an Image column) and as arrays, on disk in every form."""
    root = tmp_path_factory.mktemp("hf")
    images = datasets.Dataset.from_dict(
        {"image": [Image.fromarray(a) for a in pixels], "label": labels}
    ).cast_column("image", datasets.Image())
    images.save_to_disk(str(root / "images"))
    images.to_parquet(str(root / "images.parquet"))
    features = datasets.Features(
        {"pixels": datasets.Array2D((8, 8), "uint8"), "label": datasets.ClassLabel(num_classes=4)}
    )
    arrays = datasets.Dataset.from_dict({"pixels": pixels, "label": labels}, features=features)
    arrays.save_to_disk(str(root / "arrays"))
    arrays.to_parquet(str(root / "arrays.parquet"))
    datasets.DatasetDict({"train": images, "test": images.select(range(10))}).save_to_disk(
        str(root / "dict")
    )
    np.save(root / "x.npy", pixels)
    np.savez(root / "xy.npz", x=pixels, y=np.asarray(labels))
    return root


def _arrow(folder: Path) -> str:
    return str(next(folder.glob("*.arrow")))


@pytest.mark.parametrize(
    "where", ["images", "images.parquet", "arrays", "arrays.parquet", "images/arrow"]
)
def test_every_form_gives_the_tensors_of_the_npy_file(store, where):
    spec = _arrow(store / "images") if where == "images/arrow" else str(store / where)
    d = load_dataset(spec)
    ref = load_dataset(str(store / "xy.npz"))
    assert d.sample_shape == (1, 8, 8) and d.value_range == (0.0, 1.0)
    assert torch.equal(d.train, ref.train) and torch.equal(d.test, ref.test)
    assert torch.equal(d.train_labels, ref.train_labels)
    assert d.train.dtype == torch.float32 and float(d.train.max()) <= 1.0
    assert "Hugging Face data set" in d.description and "4 classes" in d.description
    json.dumps(d.options)  # recorded in config.json


def test_options_select_limit_and_resize(store):
    d = load_dataset(str(store / "images"), {"limit": "5", "seed": "7", "test_fraction": "0.25"})
    assert d.train.shape == (5, 1, 8, 8) and d.test.shape == (10, 1, 8, 8)
    ref = load_dataset(str(store / "x.npy"), {"limit": 5, "seed": 7, "test_fraction": 0.25})
    assert torch.equal(d.train, ref.train) and torch.equal(d.test, ref.test)
    big = load_dataset(str(store / "images"), {"size": 16, "channels": 3})
    assert big.sample_shape == (3, 16, 16)
    # Resized as an image folder resizes (Pillow, bicubic): compare with a folder of the same PNGs.
    folder = store / "pngs"
    folder.mkdir(exist_ok=True)
    for i, a in enumerate(np.load(store / "x.npy")):
        Image.fromarray(a).save(folder / f"{i:03d}.png")
    pngs = load_dataset(str(folder), {"size": 16, "channels": 3})
    assert torch.equal(big.train, pngs.train)
    named = load_dataset(str(store / "arrays"), {"column": "pixels", "labels_column": "label"})
    assert torch.equal(named.train_labels, load_dataset(str(store / "xy.npz")).train_labels)
    # A column named like labels that holds no class numbers is not taken, unless it is named.
    words = datasets.Dataset.from_dict({"x": [[0.5, 1.0]] * 4, "label": ["a", "b", "a", "b"]})
    words.save_to_disk(str(store / "words"))
    assert load_dataset(str(store / "words")).train_labels is None
    with pytest.raises(DataError, match="cannot be used as labels"):
        load_dataset(str(store / "words"), {"labels_column": "label"})
    assert load_dataset(str(store / "images"), {"scale": "symmetric"}).value_range == (-1.0, 1.0)


def test_a_dataset_dict_keeps_its_test_split(store, pixels):
    d = load_dataset(str(store / "dict"))
    assert d.train.shape[0] == N and d.test.shape[0] == 10
    expected = torch.from_numpy(pixels[:10].astype(np.float32) / 255.0)[:, None]
    assert torch.equal(d.test, expected)
    assert d.options["split"] == "train" and d.options["test_split"] == "test"
    assert d.options["test_fraction"] is None
    fraction = load_dataset(str(store / "dict"), {"test_fraction": 0.5})
    assert fraction.train.shape[0] == N // 2 and fraction.options["test_split"] is None
    swapped = load_dataset(str(store / "dict"), {"split": "test", "test_split": "train"})
    assert swapped.train.shape[0] == 10 and swapped.test.shape[0] == N
    # The resolved options read the same data again (as a run's config.json repeats it).
    again = load_dataset(str(store / "dict"), d.options)
    assert torch.equal(again.train, d.train) and torch.equal(again.test, d.test)


def test_training_matches_the_npy_file(store, tmp_path):
    a = wt.fit(data=str(store / "images"), out=str(tmp_path / "hf"), **FAST).state_dict()
    b = wt.fit(data=str(store / "x.npy"), out=str(tmp_path / "npy"), **FAST).state_dict()
    assert a.keys() == b.keys()
    for k, v in a.items():
        assert torch.equal(v, b[k]), k
    record = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert record["run"]["data"] == str(store / "images")
    assert record["run"]["data_opts"] == {} and record["data"]["train_size"] == 32


def test_reading_is_offline_silent_and_leaves_the_environment(store, capfd, monkeypatch):
    for key in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(key, raising=False)
    load_dataset(str(store / "images.parquet"))
    load_dataset(str(store / "dict"))
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # no progress bars: the library never prints
    assert "HF_DATASETS_OFFLINE" not in os.environ and "HF_HUB_OFFLINE" not in os.environ


def _error(spec: str, options: dict | None, *words: str) -> None:
    with pytest.raises(DataError) as info:
        load_dataset(spec, options)
    for word in words:
        assert word in str(info.value), f"{word!r} not in {str(info.value)!r}"


def test_bad_options_and_data_are_one_sentence(store, tmp_path):
    images, dd = str(store / "images"), str(store / "dict")
    _error(images, {"column": "imag"}, "no column 'imag'", "Did you mean 'image'?", "Columns:")
    _error(images, {"labels_column": "image"}, "both name 'image'")
    _error(images, {"split": "train"}, "one data set", "DatasetDict")
    _error(dd, {"split": "valid"}, "no split 'valid'", "Splits: train, test")
    _error(dd, {"test_split": "test", "test_fraction": 0.1}, "not both")
    _error(dd, {"split": "test", "test_split": "test"}, "both name 'test'")
    _error(images, {"colour": 3}, "no option 'colour'", "Options: column")
    _error(images, {"limit": "many"}, "Bad value 'many'", "limit")
    _error(images, {"test_fraction": 2}, "between 0 and 1")
    _error(str(store / "arrays"), {"size": 4}, "applies to image columns")
    ragged = datasets.Dataset.from_dict({"x": [[1.0] * (1 + i % 3) for i in range(6)]})
    ragged.save_to_disk(str(tmp_path / "ragged"))
    _error(str(tmp_path / "ragged"), None, "different shapes", "same shape")
    two = datasets.Dataset.from_dict({"a": [[1.0, 2.0]] * 4, "b": [[3.0, 4.0]] * 4})
    two.save_to_disk(str(tmp_path / "two"))
    _error(str(tmp_path / "two"), None, "columns a, b", 'data_opts={"column": NAME}')
    assert load_dataset(str(tmp_path / "two"), {"column": "b"}).train.shape[1:] == (2,)
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    _error(str(tmp_path / "bad.parquet"), None, "could not be read as a Hugging Face data set")
    one = datasets.Dataset.from_dict({"x": [[1.0, 2.0]]})
    one.save_to_disk(str(tmp_path / "one"))
    _error(str(tmp_path / "one"), None, "holds 1 sample(s)", "at least 2")


def test_a_missing_datasets_package_names_the_extra(store, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    _error(str(store / "images.parquet"), None, "pip install 'wae-toolkit[hf]'")


def test_a_folder_of_parquet_files_points_at_them(store, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.parquet").write_bytes((store / "images.parquet").read_bytes())
    _error(str(tmp_path / "data"), None, "Hugging Face data file train.parquet", "give its path")
    assert load_dataset(str(tmp_path / "data" / "train.parquet")).train.shape[0] == 32


@pytest.mark.parametrize("form", ["images", "arrays", "dict"])
def test_a_streamed_hugging_face_data_set_trains_as_the_resident_one(store, tmp_path, form):
    from wae_toolkit.data.streamed import StreamedPart, memory_budget

    with memory_budget(100):
        data = wt_load(str(store / form))
    assert isinstance(data.train, StreamedPart) and data.train.raw  # bytes until the device
    a = wt.fit(data=str(store / form), out=str(tmp_path / "r"), **FAST).state_dict()
    b = wt.fit(data=str(store / form), memory_budget=100, out=str(tmp_path / "s"), **FAST)
    for k, v in a.items():
        assert torch.equal(v, b.state_dict()[k]), k


def wt_load(spec: str):
    from wae_toolkit.data import load_dataset

    return load_dataset(spec)
