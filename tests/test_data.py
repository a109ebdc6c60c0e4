"""Tests of wae_toolkit.data: built-ins, arrays, image folders, IDX files and every bad input."""

from __future__ import annotations

import gzip
import io
import os
import struct
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from wae_toolkit.data import Dataset, builtin_datasets, data_options, load_dataset
from wae_toolkit.errors import DataError, UsageError

SOURCES = "digits, swiss-roll, moons, ring"


def rows(t: torch.Tensor) -> Counter[bytes]:
    """Multiset of the samples of ``t``, for comparing splits."""
    return Counter(r.tobytes() for r in t.reshape(len(t), -1).numpy())


def write_idx(path: Path, arr: np.ndarray, gz: bool = False) -> Path:
    """Write ``arr`` (uint8) in the IDX format: magic 0 0 8 ndim, big-endian dims, data."""
    data = struct.pack(">BBBB", 0, 0, 8, arr.ndim)
    data += struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def write_mnist(folder: Path, gz: bool = False, sep: str = "-", labels: bool = True) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    out = {
        "train": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "test": rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, 6, dtype=np.uint8),
        "test_labels": rng.integers(0, 10, 4, dtype=np.uint8),
    }
    write_idx(folder / f"train-images{sep}idx3-ubyte", out["train"], gz)
    write_idx(folder / f"t10k-images{sep}idx3-ubyte", out["test"], gz)
    if labels:
        write_idx(folder / f"train-labels{sep}idx1-ubyte", out["train_labels"], gz)
        write_idx(folder / f"t10k-labels{sep}idx1-ubyte", out["test_labels"], gz)
    return out


def save_png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8)).save(path)


def assert_error(spec: str, options: dict | None, *words: str) -> str:
    with pytest.raises(DataError) as info:
        load_dataset(spec, options)
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------------------------
# Built-ins
# --------------------------------------------------------------------------------------------


def test_builtin_datasets_listed():
    names = builtin_datasets()
    assert list(names) == ["digits", "swiss-roll", "moons", "ring"]
    assert all(isinstance(v, str) and v for v in names.values())


def test_digits_shape_range_split_and_determinism():
    from sklearn.datasets import load_digits

    d = load_dataset("digits")
    assert isinstance(d, Dataset)
    assert d.name == "digits"
    assert d.train.shape == (1437, 1, 8, 8) and d.test.shape == (360, 1, 8, 8)
    assert d.train.dtype == torch.float32 and d.test.dtype == torch.float32
    assert d.sample_shape == (1, 8, 8) and d.is_image
    assert d.value_range == (0.0, 1.0)
    assert 0.0 <= float(d.train.min()) and float(d.train.max()) <= 1.0
    assert d.train_labels is not None and d.test_labels is not None
    assert d.train_labels.dtype == torch.int64 and d.train_labels.shape == (1437,)
    assert "digits" in d.description and "\n" not in d.description
    # train and test together are exactly the 1,797 images: disjoint by sample
    full = torch.from_numpy(load_digits().images.astype(np.float32) / 16.0)[:, None]
    assert rows(d.train) + rows(d.test) == rows(full)
    again = load_dataset("digits")
    assert torch.equal(d.train, again.train) and torch.equal(d.test, again.test)
    assert torch.equal(d.train_labels, again.train_labels)


def test_digits_options_from_text_and_limit():
    d = load_dataset("digits", {"limit": "100", "seed": "123"})
    full = load_dataset("digits")
    assert d.train.shape[0] == 100 and torch.equal(d.test, full.test)
    assert torch.equal(d.train, full.train[:100])
    other = load_dataset("digits", {"seed": 7, "test_fraction": "0.5"})
    assert other.test.shape[0] == 899 and other.train.shape[0] == 898
    assert d.options["limit"] == 100


@pytest.mark.parametrize("name", ["swiss-roll", "moons", "ring"])
def test_toy_sets(name):
    d = load_dataset(name)
    assert d.train.shape == (3200, 2) and d.test.shape == (800, 2)
    assert d.sample_shape == (2,) and not d.is_image
    assert d.value_range is None
    assert torch.isfinite(d.train).all()
    assert torch.equal(d.train, load_dataset(name).train)
    assert not torch.equal(d.train, load_dataset(name, {"seed": 1}).train)
    small = load_dataset(name, {"n": "100", "noise": "0"})
    assert small.train.shape == (80, 2) and small.test.shape == (20, 2)


def test_toy_set_scales():
    ring = load_dataset("ring", {"noise": 0})
    radius = ring.train.norm(dim=1)
    assert torch.allclose(radius, torch.full_like(radius, 2.0), atol=1e-5)
    assert ring.train_labels is not None and set(ring.train_labels.tolist()) == set(range(8))
    roll = load_dataset("swiss-roll")
    assert 0.5 < float(roll.train.std()) < 1.5 and float(roll.train.mean().abs()) < 0.2
    moons = load_dataset("moons")
    assert moons.train_labels is not None and set(moons.train_labels.tolist()) == {0, 1}


def test_builtin_name_is_case_and_underscore_insensitive():
    assert load_dataset("Swiss_Roll", {"n": 10}).name == "swiss-roll"


# --------------------------------------------------------------------------------------------
# .npy / .npz
# --------------------------------------------------------------------------------------------


def test_npy_vectors(tmp_path):
    x = np.random.default_rng(0).standard_normal((50, 7)).astype(np.float64) * 3
    np.save(tmp_path / "x.npy", x)
    d = load_dataset(str(tmp_path / "x.npy"))
    assert d.train.shape == (40, 7) and d.test.shape == (10, 7)
    assert d.value_range is None and d.train_labels is None
    assert rows(d.train) + rows(d.test) == rows(torch.from_numpy(x.astype(np.float32)))
    assert d.name == str(tmp_path / "x.npy")


def test_npy_grayscale_images_get_a_channel_axis(tmp_path):
    x = np.random.default_rng(0).random((10, 6, 5)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    d = load_dataset(str(tmp_path / "x.npy"), {"test_fraction": "0.3"})
    assert d.sample_shape == (1, 6, 5) and d.is_image
    assert d.train.shape[0] == 7 and d.test.shape[0] == 3
    assert d.value_range == (0.0, 1.0)


def test_npy_channels_last_is_transposed(tmp_path):
    x = np.random.default_rng(0).random((4, 8, 9, 3)).astype(np.float32) * 2 - 1
    np.save(tmp_path / "x.npy", x)
    d = load_dataset(str(tmp_path / "x.npy"), {"test_fraction": 0.25})
    assert d.sample_shape == (3, 8, 9)
    assert d.value_range == (-1.0, 1.0)
    expected = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    assert rows(d.train) + rows(d.test) == rows(expected)


def test_npy_channels_first_is_kept(tmp_path):
    x = np.zeros((5, 3, 4, 4), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    assert load_dataset(str(tmp_path / "x.npy")).sample_shape == (3, 4, 4)


def test_npy_uint8_is_scaled(tmp_path):
    x = np.arange(2 * 4 * 16, dtype=np.int64).reshape(8, 16) % 256
    x[1, 0] = 255
    np.save(tmp_path / "x.npy", x.astype(np.uint8))
    d = load_dataset(str(tmp_path / "x.npy"))
    assert d.value_range == (0.0, 1.0)
    both = torch.cat([d.train, d.test])
    assert float(both.max()) == 1.0 and float(both.min()) == 0.0
    assert rows(d.train) + rows(d.test) == rows(torch.from_numpy(x.astype(np.float32) / 255))


def test_npy_integers_other_than_uint8_keep_their_values(tmp_path):
    np.save(tmp_path / "x.npy", np.full((4, 3), 200, dtype=np.int64))
    d = load_dataset(str(tmp_path / "x.npy"))
    assert float(d.train.max()) == 200.0 and d.value_range is None


def test_npz_with_key_and_labels(tmp_path):
    rng = np.random.default_rng(1)
    feats, y = rng.random((20, 3)), rng.integers(0, 4, 20)
    np.savez(tmp_path / "d.npz", feats=feats, other=rng.random((5, 2)), classes=y)
    d = load_dataset(str(tmp_path / "d.npz"), {"key": "feats", "labels_key": "classes"})
    assert d.sample_shape == (3,) and d.train.shape[0] == 16
    assert d.train_labels is not None and d.train_labels.dtype == torch.int64
    # labels follow their samples through the split
    lookup = {r.tobytes(): int(c) for r, c in zip(feats.astype(np.float32), y, strict=True)}
    for sample, label in zip(d.train.numpy(), d.train_labels.tolist(), strict=True):
        assert lookup[sample.tobytes()] == label


def test_npz_default_keys(tmp_path):
    np.savez(tmp_path / "a.npz", np.ones((4, 2)))  # arr_0
    assert load_dataset(str(tmp_path / "a.npz")).sample_shape == (2,)
    np.savez(tmp_path / "b.npz", images=np.zeros((6, 5, 5)), labels=np.arange(6), meta=np.ones(3))
    d = load_dataset(str(tmp_path / "b.npz"))
    assert d.sample_shape == (1, 5, 5) and d.train_labels is not None
    np.savez(tmp_path / "c.npz", x=np.zeros((6, 2)), y=np.arange(5))  # wrong length: ignored
    assert load_dataset(str(tmp_path / "c.npz")).train_labels is None


def test_explicit_test_file(tmp_path):
    np.save(tmp_path / "train.npy", np.zeros((10, 8, 8, 1), dtype=np.uint8))
    np.savez(tmp_path / "test.npz", x=np.full((3, 1, 8, 8), 255, dtype=np.uint8))
    d = load_dataset(str(tmp_path / "train.npy"), {"test": str(tmp_path / "test.npz")})
    assert d.train.shape == (10, 1, 8, 8) and d.test.shape == (3, 1, 8, 8)
    assert float(d.test.min()) == 1.0 and float(d.train.max()) == 0.0
    limited = load_dataset(str(tmp_path / "train.npy"), {"test": tmp_path / "test.npz", "limit": 2})
    assert limited.train.shape[0] == 2


def test_explicit_test_file_errors(tmp_path):
    np.save(tmp_path / "train.npy", np.zeros((10, 4)))
    np.save(tmp_path / "test.npy", np.zeros((3, 5)))
    train = str(tmp_path / "train.npy")
    assert_error(train, {"test": str(tmp_path / "test.npy")}, "same shape")
    assert_error(train, {"test": str(tmp_path / "nope.npy")}, "does not exist", ".npy")
    assert_error(train, {"test": str(tmp_path / "test.npy"), "test_fraction": 0.1}, "not both")


class _Marker:
    """Unpickling this object creates a file: proof that a loader unpickled data."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickled_object_array_is_refused_without_unpickling(tmp_path):
    marker = tmp_path / "unpickled.txt"
    arr = np.empty((3, 2), dtype=object)
    arr[:] = _Marker(str(marker))
    np.save(tmp_path / "evil.npy", arr, allow_pickle=True)
    np.savez(tmp_path / "evil.npz", x=arr)
    assert_error(str(tmp_path / "evil.npy"), None, "Python objects", "never unpickled", "numeric")
    assert_error(str(tmp_path / "evil.npz"), None, "Python objects", "never unpickled")
    assert not marker.exists()
    # the crafted file is a real threat: unpickling it does create the marker
    np.load(tmp_path / "evil.npy", allow_pickle=True)
    assert marker.exists()


def test_bad_arrays(tmp_path):
    def save(name: str, arr: np.ndarray) -> str:
        np.save(tmp_path / name, arr)
        return str(tmp_path / name)

    assert_error(save("one_d.npy", np.zeros(5)), None, "allowed are", "(N, F)")
    assert_error(save("one.npy", np.zeros((1, 3))), None, "N >= 2")
    assert_error(save("five_d.npy", np.zeros((2, 3, 4, 5, 6))), None, "(N, C, H, W)")
    assert_error(save("chan.npy", np.zeros((2, 2, 8, 8))), None, "C in 1 or 3")
    assert_error(save("text.npy", np.array([["a", "b"], ["c", "d"]])), None, "non-numeric")
    assert_error(save("cplx.npy", np.zeros((3, 2), dtype=complex)), None, "non-numeric")
    nan = np.zeros((4, 2))
    nan[2, 1] = np.nan
    assert_error(save("nan.npy", nan), {"test_fraction": 0.5}, "NaN or infinite", "finite")
    inf = np.zeros((4, 2))
    inf[0, 0] = np.inf
    assert_error(save("inf.npy", inf), {"test_fraction": 0.5}, "NaN or infinite")


def test_files_that_are_not_what_they_claim(tmp_path):
    (tmp_path / "text.npy").write_text("hello, I am text\n")
    assert_error(str(tmp_path / "text.npy"), None, "not a NumPy", "numpy.save")
    (tmp_path / "text.npz").write_text("x,y\n1,2\n")
    assert_error(str(tmp_path / "text.npz"), None, "not a NumPy")
    np.save(tmp_path / "cut.npy", np.zeros((100, 10)))
    data = (tmp_path / "cut.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[: len(data) // 2])
    assert_error(str(tmp_path / "cut.npy"), None, "truncated")
    np.savez(tmp_path / "z.npz", x=np.zeros((100, 10)))
    data = (tmp_path / "z.npz").read_bytes()
    (tmp_path / "zcut.npz").write_bytes(data[: len(data) // 2])
    assert_error(str(tmp_path / "zcut.npz"), None, "numpy.savez")
    (tmp_path / "data.csv").write_text("1,2\n3,4\n")
    assert_error(str(tmp_path / "data.csv"), None, "unsupported", ".npy/.npz", "folder of images")
    save_png(tmp_path / "one.png", np.zeros((5, 5)))
    assert_error(str(tmp_path / "one.png"), None, "single image", "folder")


def test_npz_key_errors(tmp_path):
    np.savez(tmp_path / "d.npz", a=np.zeros((4, 2)), b=np.zeros((4, 3)))
    spec = str(tmp_path / "d.npz")
    assert_error(spec, None, "several arrays", "a, b", 'data_opts={"key": NAME}')
    assert_error(spec, {"key": "c"}, "no array 'c'", "Arrays: a, b")
    assert_error(spec, {"key": "a", "labels_key": "bb"}, "Did you mean 'b'?")
    assert_error(spec, {"key": "a", "labels_key": "b"}, "1-D array", "integer")
    np.savez(tmp_path / "empty.npz")
    assert_error(str(tmp_path / "empty.npz"), None, "no arrays")


def test_value_ranges(tmp_path):
    for values, expected in [((0.0, 1.0), (0.0, 1.0)), ((-1.0, 0.5), (-1.0, 1.0)), ((0, 2), None)]:
        np.save(tmp_path / "v.npy", np.array([[values[0]], [values[1]], [values[0]]]))
        assert load_dataset(str(tmp_path / "v.npy")).value_range == expected


def expected_shape(shape: tuple[int, ...], dtype: np.dtype) -> tuple[int, ...] | None:
    """The documented shape rule, written independently of the implementation."""
    if dtype.kind not in "biuf" or len(shape) < 2 or shape[0] < 2 or 0 in shape:
        return None
    if len(shape) == 2:
        return shape[1:]
    if len(shape) == 3:
        return (1, *shape[1:])
    if len(shape) == 4:
        n, a, b, c = shape
        if c in (1, 3, 4) and a > 4 and b > 4:
            return (c, a, b)
        if a in (1, 3):
            return (a, b, c)
    return None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.lists(st.integers(0, 7), min_size=0, max_size=5).map(tuple),
    dtype=st.sampled_from(["uint8", "float32", "float64", "int16", "bool", "complex64", "U2"]),
)
def test_random_array_shapes_load_or_raise_data_error(shape, dtype):
    arr = np.zeros(shape, dtype=dtype)
    expected = expected_shape(shape, arr.dtype)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.npy"
        np.save(path, arr)
        try:
            d = load_dataset(str(path))
        except DataError as exc:
            assert expected is None, f"{shape} {dtype} should load but raised {exc}"
            assert "allowed" in str(exc) or "non-numeric" in str(exc)
        else:
            assert expected is not None, f"{shape} {dtype} should be refused"
            assert d.sample_shape == expected
            assert len(d.train) + len(d.test) == shape[0] and len(d.test) >= 1
            assert d.train.dtype == torch.float32


# --------------------------------------------------------------------------------------------
# Folders of images
# --------------------------------------------------------------------------------------------


def test_image_folder_grayscale(tmp_path):
    for i in range(10):
        save_png(tmp_path / "imgs" / f"{i:02d}.png", np.full((6, 7), i * 25))
    d = load_dataset(str(tmp_path / "imgs"))
    assert d.sample_shape == (1, 6, 7) and d.value_range == (0.0, 1.0)
    assert d.train.shape[0] == 8 and d.test.shape[0] == 2 and d.train_labels is None
    values = sorted(float(x[0, 0, 0]) for x in torch.cat([d.train, d.test]))
    assert values == pytest.approx([i * 25 / 255 for i in range(10)])
    again = load_dataset(str(tmp_path / "imgs"))
    assert torch.equal(d.train, again.train)
    assert d.options["channels"] == 1


def test_image_folder_rgb_and_channels_option(tmp_path):
    save_png(tmp_path / "a.png", np.zeros((5, 5)))
    save_png(
        tmp_path / "b.png", np.dstack([np.full((5, 5), 255), np.zeros((5, 5)), np.zeros((5, 5))])
    )
    Image.new("RGB", (5, 5), (0, 0, 255)).save(tmp_path / "c.jpg", quality=100)
    d = load_dataset(str(tmp_path))
    assert d.sample_shape == (3, 5, 5)
    gray = load_dataset(str(tmp_path), {"channels": "1"})
    assert gray.sample_shape == (1, 5, 5)
    assert_error(str(tmp_path), {"channels": "2"}, "Bad value", "channels", "1, 3")


def test_image_folder_mixed_sizes(tmp_path):
    save_png(tmp_path / "a.png", np.zeros((8, 8)))
    save_png(tmp_path / "b.png", np.zeros((12, 10)))
    save_png(tmp_path / "c.png", np.zeros((8, 8)))
    assert_error(str(tmp_path), None, "different sizes", 'data_opts={"size": 64}', "a.png")
    d = load_dataset(str(tmp_path), {"size": "4"})
    assert d.sample_shape == (1, 4, 4) and len(d.train) + len(d.test) == 3


def test_image_folder_crop(tmp_path):
    img = np.zeros((30, 20), dtype=np.uint8)
    img[10:20, 5:15] = 255  # the centre 10x10 square is white
    for i in range(4):
        save_png(tmp_path / f"{i}.png", img)
    d = load_dataset(str(tmp_path), {"crop": 10})
    assert d.sample_shape == (1, 10, 10) and float(d.train.min()) == 1.0
    resized = load_dataset(str(tmp_path), {"crop": 10, "size": 5})
    assert resized.sample_shape == (1, 5, 5)
    assert_error(str(tmp_path), {"crop": 25}, 'smaller than data_opts={"crop": 25}')


def test_image_folder_labels_from_sub_folders_and_hidden_files(tmp_path):
    for cls in ("cat", "dog"):
        for i in range(3):
            save_png(tmp_path / cls / f"{i}.png", np.full((4, 4), 0 if cls == "cat" else 255))
    (tmp_path / "cat" / ".DS_Store").write_text("junk")
    (tmp_path / "dog" / "._0.png").write_text("AppleDouble junk")
    d = load_dataset(str(tmp_path), {"test_fraction": 0.5})
    assert d.train_labels is not None and d.test_labels is not None
    for x, y in zip(
        torch.cat([d.train, d.test]), torch.cat([d.train_labels, d.test_labels]), strict=True
    ):
        assert float(x.max()) == float(y)  # cat -> 0 and black, dog -> 1 and white


def test_unreadable_image_is_named(tmp_path):
    save_png(tmp_path / "good.png", np.zeros((4, 4)))
    save_png(tmp_path / "good2.png", np.zeros((4, 4)))
    (tmp_path / "broken.png").write_text("not an image")
    assert_error(str(tmp_path), None, "broken.png", "could not be read as images")


def test_truncated_image_is_named(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        save_png(tmp_path / f"{i}.png", rng.integers(0, 256, (64, 64)))
    data = (tmp_path / "1.png").read_bytes()
    (tmp_path / "1.png").write_bytes(data[: len(data) // 2])
    assert_error(str(tmp_path), None, "1.png")


def test_empty_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    assert_error(str(tmp_path), None, "no images", "no MNIST IDX files", "png")
    np.save(tmp_path / "x.npy", np.zeros((3, 2)))
    assert_error(str(tmp_path), None, "give its path")


# --------------------------------------------------------------------------------------------
# MNIST IDX files
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("gz", "sep"), [(False, "-"), (True, "-"), (False, ".")])
def test_mnist_idx_folder(tmp_path, gz, sep):
    raw = write_mnist(tmp_path / "mnist", gz=gz, sep=sep)
    d = load_dataset(str(tmp_path / "mnist"))
    assert d.sample_shape == (1, 28, 28) and d.value_range == (0.0, 1.0)
    assert torch.equal(d.train, torch.from_numpy(raw["train"][:, None] / np.float32(255)))
    assert torch.equal(d.test, torch.from_numpy(raw["test"][:, None] / np.float32(255)))
    assert d.train_labels is not None and d.test_labels is not None
    assert d.train_labels.tolist() == raw["train_labels"].tolist()
    assert d.test_labels.tolist() == raw["test_labels"].tolist()
    assert load_dataset(str(tmp_path / "mnist"), {"limit": 2}).train.shape[0] == 2


def test_mnist_torchvision_layout_and_no_labels(tmp_path):
    write_mnist(tmp_path / "MNIST" / "raw", labels=False)
    d = load_dataset(str(tmp_path / "MNIST"))
    assert d.train.shape == (6, 1, 28, 28) and d.train_labels is None


def test_mnist_keeps_its_split(tmp_path):
    write_mnist(tmp_path)
    assert_error(str(tmp_path), {"test_fraction": 0.1}, "official", "options: limit")
    assert_error(str(tmp_path), {"size": 8}, "Options for MNIST IDX folders: limit")


def test_mnist_single_file(tmp_path):
    raw = write_mnist(tmp_path)
    d = load_dataset(str(tmp_path / "train-images-idx3-ubyte"), {"test_fraction": 0.5})
    assert d.train.shape == (3, 1, 28, 28) and d.test.shape == (3, 1, 28, 28)
    assert d.train_labels is not None
    assert rows(d.train) + rows(d.test) == rows(torch.from_numpy(raw["train"] / np.float32(255)))
    assert_error(str(tmp_path / "train-labels-idx1-ubyte"), None, "holds labels", "images file")


def test_mnist_truncated_and_corrupt(tmp_path):
    write_mnist(tmp_path / "cut")
    path = tmp_path / "cut" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    assert_error(str(tmp_path / "cut"), None, "truncated or corrupt", "download it again")
    write_mnist(tmp_path / "gzcut", gz=True)
    path = tmp_path / "gzcut" / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-30])
    assert_error(str(tmp_path / "gzcut"), None, "t10k-images-idx3-ubyte.gz")
    write_mnist(tmp_path / "magic")
    (tmp_path / "magic" / "train-images-idx3-ubyte").write_bytes(b"\x12\x34\x56\x78" + bytes(50))
    assert_error(str(tmp_path / "magic"), None, "not an IDX file", "2051")
    write_mnist(tmp_path / "labels")
    write_idx(tmp_path / "labels" / "train-labels-idx1-ubyte", np.zeros(5, dtype=np.uint8))
    assert_error(str(tmp_path / "labels"), None, "labels must be a 1-D array of 6")


def test_mnist_missing_test_images(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    assert_error(str(tmp_path), None, "t10k-images-idx3-ubyte", "needs both")


# --------------------------------------------------------------------------------------------
# Names, paths and options
# --------------------------------------------------------------------------------------------


def test_missing_path_and_unknown_name(tmp_path):
    missing = str(tmp_path / "nope.npy")
    message = assert_error(missing, None, "does not exist", SOURCES, ".npy/.npz", "MNIST IDX")
    assert message.startswith(f"Data file or folder '{missing}' does not exist;")
    assert_error("digit", None, "Did you mean 'digits'?", SOURCES)
    assert_error("", None, "No data set given", SOURCES)


def test_unknown_and_bad_options(tmp_path):
    assert_error("digits", {"sise": 4}, "'sise'", "Options for digits", "test_fraction")
    assert_error(
        "digits", {"size": 4}, "'size' applies to .npy files, .npz files and image folders"
    )
    assert_error("moons", {"nosie": "0.1"}, "Did you mean 'noise'?")
    assert_error("moons", {"n": "many"}, "Bad value", "expected an integer")
    assert_error("digits", {"test_fraction": "1.5"}, "between 0 and 1")
    assert_error("digits", {"limit": 0}, "positive integer")
    assert_error("ring", {"noise": -1}, ">= 0")
    assert_error("ring", {"n": 1}, "at least 2")
    np.save(tmp_path / "x.npy", np.zeros((4, 2)))
    assert_error(str(tmp_path / "x.npy"), {"key": "x"}, "'key' applies to .npz files")
    for i in range(3):
        save_png(tmp_path / "imgs" / f"{i}.png", np.zeros((4, 4)))
    assert_error(str(tmp_path / "imgs"), {"sizee": 8}, "Did you mean 'size'?", "crop")
    assert_error(str(tmp_path / "imgs"), {"size": "big"}, "expected an integer")


def test_data_error_is_a_usage_error():
    assert issubclass(DataError, UsageError)
    with pytest.raises(ValueError):  # UsageError is a ValueError too
        load_dataset("nonexistent-data-set")


def test_data_options_describe_every_source():
    for source in ("digits", "swiss-roll", ".npz files", "image folders", "MNIST IDX folders"):
        table = data_options(source)
        assert table and all(len(v) == 3 for v in table.values())
    assert set(data_options("image folders")) >= {"size", "channels", "crop", "limit"}
    with pytest.raises(DataError, match="Did you mean"):
        data_options("image folder")


def test_large_image_folder_uses_threads_and_stays_deterministic(tmp_path):
    for i in range(300):  # above the threshold where images are read on several threads
        save_png(tmp_path / f"{i:03d}.png", np.full((3, 3), i % 256))
    d = load_dataset(str(tmp_path))
    again = load_dataset(str(tmp_path))
    assert d.train.shape == (240, 1, 3, 3) and torch.equal(d.train, again.train)
    assert torch.equal(d.test, again.test)


# --------------------------------------------------------------------------------------------
# The paper's setups: MNIST split=paper, image holdout, scale, and naming the expected files
# --------------------------------------------------------------------------------------------


def reference_mnist_split(raw: dict, seed: int, holdout: int) -> tuple[np.ndarray, ...]:
    """The WAE reference code's MNIST split, written as it is there (datahandler.py)."""
    x = np.concatenate([raw["train"], raw["test"]])[:, None] / np.float32(255)
    y = np.concatenate([raw["train_labels"], raw["test_labels"]]).astype(np.int64)
    np.random.seed(seed)
    np.random.shuffle(x)
    np.random.seed(seed)
    np.random.shuffle(y)
    np.random.seed()
    return x[:-holdout], x[-holdout:], y[:-holdout], y[-holdout:]


@pytest.mark.parametrize("seed", [123, 7])
def test_mnist_paper_split_is_the_reference_codes(tmp_path, seed):
    raw = write_mnist(tmp_path / "mnist")
    d = load_dataset(str(tmp_path / "mnist"), {"split": "paper", "holdout": "3", "seed": seed})
    train, test, y_train, y_test = reference_mnist_split(raw, seed, 3)
    assert torch.equal(d.train, torch.from_numpy(train.astype(np.float32)))
    assert torch.equal(d.test, torch.from_numpy(test.astype(np.float32)))
    assert d.train_labels is not None and d.test_labels is not None
    assert d.train_labels.tolist() == y_train.tolist() and d.test_labels.tolist() == y_test.tolist()
    assert d.value_range == (0.0, 1.0) and "paper split" in d.description
    assert d.options == {
        "limit": None,
        "split": "paper",
        "seed": seed,
        "holdout": 3,
        "scale": "unit",
    }
    limited = load_dataset(str(tmp_path / "mnist"), {"split": "paper", "holdout": 3, "limit": 2})
    assert limited.train.shape[0] == 2 and limited.test.shape[0] == 3


def test_mnist_paper_split_defaults_and_errors(tmp_path):
    write_mnist(tmp_path)
    official = load_dataset(str(tmp_path))
    assert "seed" not in official.options and "holdout" not in official.options
    assert official.options["split"] == "official"
    # the defaults are the paper's: seed 123, 10,000 held out (more than this fake MNIST holds)
    assert_error(str(tmp_path), {"split": "paper"}, "holdout=10,000", "10 samples")
    assert_error(str(tmp_path), {"seed": 1}, "seed only applies", "split=paper")
    assert_error(str(tmp_path), {"seed": 1, "holdout": 2}, "holdout and seed only apply")
    assert_error(str(tmp_path), {"split": "papers"}, "Bad value", "'official', 'paper'")
    assert_error(str(tmp_path), {"split": "paper", "holdout": 0}, "positive integer")
    assert_error(str(tmp_path), {"split": "paper", "test_fraction": 0.2}, "split=paper")
    assert_error("digits", {"holdout": 10}, "'holdout' applies to image folders")


def test_python2_shuffle_replays_the_reference_celeba_shuffle():
    """Ground truth from Python 2.7.18: random.seed(s); random.shuffle(list(range(10)))."""
    from wae_toolkit.data.dataset import _python2_shuffle

    assert _python2_shuffle(10, 123).tolist() == [7, 1, 4, 2, 6, 5, 8, 3, 9, 0]
    assert _python2_shuffle(10, 7).tolist() == [2, 7, 4, 6, 8, 9, 0, 5, 1, 3]
    # The reference code's CelebA split in Python 2.7.18: paths = ['%.6d.jpg' % i for i in
    # 1..202599]; random.seed(123); random.shuffle(paths); test = paths[-20000:].
    order = _python2_shuffle(202_599, 123) + 1  # file numbers
    assert order[:3].tolist() == [174314, 9461, 16555]
    test = order[-20_000:]
    assert test[:3].tolist() == [114573, 19652, 28907]
    assert test[-3:].tolist() == [82506, 17664, 10609]
    assert int(test.sum()) == 2026980176


def write_numbered_images(folder: Path, n: int, size: tuple[int, int] = (6, 5)) -> None:
    """Images 000001.png ... whose pixels all equal the image's number (times 10)."""
    for i in range(1, n + 1):
        save_png(folder / f"{i:06d}.png", np.full(size, i * 10))


def test_image_folder_holdout_is_the_reference_shuffle(tmp_path):
    write_numbered_images(tmp_path, 10)
    d = load_dataset(str(tmp_path), {"holdout": 3})
    numbers = [round(float(x.max()) * 255 / 10) for x in torch.cat([d.train, d.test])]
    # Python 2.7's random.seed(123); random.shuffle(files): the last 3 are held out
    expected = [i + 1 for i in [7, 1, 4, 2, 6, 5, 8, 3, 9, 0]]
    assert numbers == expected
    assert d.train.shape[0] == 7 and d.test.shape[0] == 3
    assert d.options["holdout"] == 3 and "test_fraction" not in d.options
    other = load_dataset(str(tmp_path), {"holdout": "3", "seed": "7", "limit": 4})
    numbers = [round(float(x.max()) * 255 / 10) for x in other.test]
    assert numbers == [i + 1 for i in [5, 1, 3]] and other.train.shape[0] == 4


def test_image_folder_holdout_errors(tmp_path):
    write_numbered_images(tmp_path, 4)
    assert_error(
        str(tmp_path), {"holdout": 2, "test_fraction": 0.5}, "not both", 'data_opts={"holdout": N}'
    )
    assert_error(str(tmp_path), {"holdout": 4}, "holdout=4", "4 samples", "between 1 and 3")
    assert_error(str(tmp_path), {"holdout": "many"}, "expected an integer")


def test_scale_symmetric_maps_unit_data_to_minus_one_one(tmp_path):
    write_numbered_images(tmp_path / "imgs", 6)
    unit = load_dataset(str(tmp_path / "imgs"))
    sym = load_dataset(str(tmp_path / "imgs"), {"scale": "symmetric"})
    assert sym.value_range == (-1.0, 1.0) and "[-1, 1]" in sym.description
    torch.testing.assert_close(sym.train, 2 * unit.train - 1)
    torch.testing.assert_close(sym.test, 2 * unit.test - 1)
    assert sym.options["scale"] == "symmetric" and unit.options["scale"] == "unit"
    digits = load_dataset("digits", {"scale": "symmetric"})
    assert digits.value_range == (-1.0, 1.0)
    assert float(digits.train.min()) == -1.0 and float(digits.train.max()) == 1.0
    raw = write_mnist(tmp_path / "mnist")
    mnist = load_dataset(str(tmp_path / "mnist"), {"scale": "symmetric"})
    assert torch.equal(mnist.test, torch.from_numpy(raw["test"][:, None] / np.float32(127.5) - 1))


def test_scale_symmetric_is_refused_for_data_outside_unit_range(tmp_path):
    for name in ("moons", "ring", "swiss-roll"):
        assert_error(name, {"scale": "symmetric"}, "scale=symmetric", "[0, 1]", "unbounded")
    np.save(tmp_path / "sym.npy", np.array([[-0.5], [0.5], [0.0]]))
    assert_error(str(tmp_path / "sym.npy"), {"scale": "symmetric"}, "is in [-1, 1]")
    np.save(tmp_path / "big.npy", np.array([[0.0], [3.0], [1.0]]))
    assert_error(str(tmp_path / "big.npy"), {"scale": "symmetric"}, "unbounded")
    assert_error("digits", {"scale": "sym"}, "Bad value", "'unit', 'symmetric'")


def test_paper_celeba_options_on_an_image_folder(tmp_path):
    """The CelebA preset's options: centre crop, resize, fixed holdout, [-1, 1]."""
    for i in range(12):
        Image.new("RGB", (18, 22), (i * 20, 0, 255)).save(tmp_path / f"{i + 1:06d}.jpg")
    options = {"crop": 14, "size": 8, "holdout": 4, "scale": "symmetric"}
    d = load_dataset(str(tmp_path), options)
    assert d.sample_shape == (3, 8, 8) and d.value_range == (-1.0, 1.0)
    assert d.train.shape[0] == 8 and d.test.shape[0] == 4
    assert float(d.train.min()) >= -1.0 and float(d.train.max()) <= 1.0


def test_folders_without_the_expected_files_say_what_is_expected(tmp_path):
    from wae_toolkit.data import MNIST_FILES, expected_contents

    assert MNIST_FILES == (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    )
    mnist_files = [f"{f}(.gz)" for f in MNIST_FILES]
    assert all(f in expected_contents("mnist") for f in mnist_files)
    celeba = expected_contents("celeba")
    assert "img_align_celeba/*.jpg" in celeba and "CelebA" in celeba
    with pytest.raises(DataError, match="kinds: mnist, celeba, images"):
        expected_contents("cifar")  # type: ignore[arg-type]

    empty, other, missing = tmp_path / "empty", tmp_path / "other", tmp_path / "missing"
    empty.mkdir()
    other.mkdir()
    (other / "notes.txt").write_text("nothing")
    (other / "README.md").write_text("nothing")
    paper = {"split": "paper"}
    # without options: a generic message that still names both kinds of folder
    assert_error(str(empty), None, "is empty", "no images", *mnist_files)
    assert_error(str(other), None, "holds only other files (README.md, notes.txt)", "png")
    # the MNIST preset's options name the MNIST files
    assert_error(str(empty), paper, "is empty", "split expects", *mnist_files)
    assert_error(str(other), paper, "notes.txt", "split expects", *mnist_files)
    assert_error(str(missing), paper, "does not exist", "split expects", *mnist_files)
    # the CelebA preset's options name a folder of images
    celeba_opts = {"crop": 140, "size": 64, "holdout": 20000, "scale": "symmetric"}
    assert_error(str(empty), celeba_opts, "is empty", "crop and size expect a folder of images")
    assert_error(str(missing), celeba_opts, "does not exist", "folder of images", "jpg")
    # a caller that knows what it expects names it
    for folder in (empty, other, missing):
        for expects, opts in ((celeba, celeba_opts), (expected_contents("mnist"), paper)):
            with pytest.raises(DataError) as info:
                load_dataset(str(folder), opts, expects=expects)
            assert f"expected {expects}." in str(info.value)
    # a folder of the wrong kind
    write_numbered_images(tmp_path / "imgs", 3)
    assert_error(str(tmp_path / "imgs"), paper, "split", *mnist_files)
    write_mnist(tmp_path / "half")
    (tmp_path / "half" / "train-images-idx3-ubyte").unlink()
    assert_error(str(tmp_path / "half"), paper, "no train-images-idx3-ubyte", *mnist_files)


# --------------------------------------------------------------------------------------------
# Hostile values: NaN in any part that is used, corrupt headers, seeds, sizes beyond memory
# --------------------------------------------------------------------------------------------


def write_idx_float(path: Path, arr: np.ndarray, code: int = 0x0D) -> Path:
    """Write ``arr`` as an IDX file of big-endian float32 (0x0D) or float64 (0x0E)."""
    data = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    path.write_bytes(data + arr.astype(">f4" if code == 0x0D else ">f8").tobytes())
    return path


def test_bad_values_are_counted_in_every_chunk_and_the_first_sample_is_named(monkeypatch):
    import wae_toolkit.data.layout as layout

    monkeypatch.setattr(layout, "_CHUNK_BYTES", 16)  # two samples of 2 float32 per chunk
    x = np.zeros((100, 2), dtype=np.float64)
    x[5, 1], x[41, 0], x[77, 1], x[77, 0], x[60, 0] = np.nan, np.inf, -np.inf, 1e300, np.nan
    with pytest.raises(DataError) as info:  # 1e300 is beyond float32: it would become inf
        layout._gather(x, np.array([77, 3, 41, 5, 9]), "flat", "The part")
    message = str(info.value)
    assert message.startswith("The part holds 4 NaN or infinite values")
    assert "the first in sample 5 (counting from 0)" in message and "\n" not in message
    assert layout._gather(x, np.array([1, 2, 3]), "flat", "The part").shape == (3, 2)


def test_nan_is_refused_in_the_test_part_and_in_a_test_file(tmp_path):
    from wae_toolkit.data.dataset import _split

    x = np.random.default_rng(0).standard_normal((30, 3)).astype(np.float32)
    test_row = int(_split(30, 0.2, 123)[1][-1])
    x[test_row, 2] = np.nan
    np.save(tmp_path / "x.npy", x)
    message = assert_error(str(tmp_path / "x.npy"), None, "The test part of", "1 NaN")
    assert f"the first in sample {test_row} " in message
    np.savez(tmp_path / "x.npz", x=x)  # .npz arrays go through the same check
    assert_error(str(tmp_path / "x.npz"), None, "The test part of", f"sample {test_row} ")
    clean, test = np.zeros((10, 3)), np.zeros((4, 3))
    test[2:, 0] = np.nan
    np.save(tmp_path / "clean.npy", clean)
    np.save(tmp_path / "test.npy", test)
    assert_error(
        str(tmp_path / "clean.npy"),
        {"test": str(tmp_path / "test.npy")},
        f"The test file '{tmp_path / 'test.npy'}' holds 2 NaN",
        "the first in sample 2 ",
    )


def test_only_the_samples_used_are_read_and_checked(tmp_path):
    """With ``limit``, a bad training sample that is not used does not refuse the data."""
    from wae_toolkit.data.dataset import _split

    x = np.zeros((40, 2), dtype=np.float32)
    train_idx = _split(40, 0.2, 123)[0]
    x[train_idx[-1], 0] = np.nan
    np.save(tmp_path / "x.npy", x)
    assert load_dataset(str(tmp_path / "x.npy"), {"limit": 5}).train.shape == (5, 2)
    assert_error(str(tmp_path / "x.npy"), None, "The training part of", "1 NaN")


def test_float_idx_files_are_checked_for_nan(tmp_path):
    x = np.random.default_rng(0).random((8, 5, 5))
    x[6, 1, 1] = np.nan
    (tmp_path / "a").mkdir()
    write_idx_float(tmp_path / "a" / "train-images-idx3-ubyte", x)
    write_idx(tmp_path / "a" / "t10k-images-idx3-ubyte", np.zeros((3, 5, 5), dtype=np.uint8))
    path = tmp_path / "a" / "train-images-idx3-ubyte"
    assert_error(str(tmp_path / "a"), None, f"The IDX file '{path}' holds 1 NaN", "sample 6 ")
    big = np.zeros((4, 5, 5))
    big[1, 0, 0] = 1e300  # finite in float64, infinite in float32
    write_idx_float(tmp_path / "b-idx3-ubyte", big, code=0x0E)
    assert_error(str(tmp_path / "b-idx3-ubyte"), {"test_fraction": 0.5}, "beyond float32")


def test_corrupt_idx_headers_are_refused(tmp_path):
    def header(name: str, ndim: int, dims: list[int], payload: bytes = b"", gz: bool = False):
        data = struct.pack(">BBBB", 0, 0, 8, ndim) + struct.pack(f">{len(dims)}I", *dims)
        path = tmp_path / name
        if gz:
            with gzip.open(path, "wb") as f:
                f.write(data + payload)
        else:
            path.write_bytes(data + payload)
        return str(path)

    assert_error(header("a-idx3-ubyte", 255, [1] * 255, b"\0"), None, "announces 255 dimensions")
    assert_error(header("b-idx3-ubyte", 3, [0, 28, 28]), None, "dimension of size 0", "(0, 28")
    assert_error(header("c-idx3-ubyte", 3, [2**31] * 3), None, "truncated or corrupt")
    assert_error(header("d-idx3-ubyte", 3, [2, 28]), None, "truncated", "3 dimensions")
    # a small gzipped file that announces 600 TB is refused before it is decompressed
    huge = header("e-idx3-ubyte.gz", 3, [60000, 100000, 100000], bytes(100), gz=True)
    assert_error(huge, None, "would need about", "GB of memory", "more than this machine's")
    ok = header("f-idx3-ubyte.gz", 3, [2, 5, 5], bytes(51), gz=True)
    assert_error(ok, None, "truncated or corrupt", "holds more")


def test_seeds_are_bounded_where_their_generators_are(tmp_path):
    assert_error("moons", {"seed": 2**63}, "seed", "9223372036854775808", "to 2^63 - 1")
    assert_error("moons", {"seed": -1}, "seed=-1", "from 0 to 2^63 - 1")
    assert_error("moons", {"seed": 10**5000}, "seed", "to 2^63 - 1")  # no repr() failure
    assert_error("moons", {"limit": 10**30}, "limit", "to 2^63 - 1")
    assert load_dataset("moons", {"seed": 2**63 - 1, "n": 10}).options["seed"] == 2**63 - 1
    write_mnist(tmp_path / "m")
    paper = {"split": "paper", "holdout": 3}
    message = assert_error(str(tmp_path / "m"), {**paper, "seed": 2**32}, "np.random.seed")
    assert "seed=4294967296" in message and "0 to 4,294,967,295" in message
    assert load_dataset(str(tmp_path / "m"), {**paper, "seed": 2**32 - 1}).test.shape[0] == 3
    # the CelebA-style holdout replays Python's random.seed, which takes any integer
    write_numbered_images(tmp_path / "imgs", 4)
    d = load_dataset(str(tmp_path / "imgs"), {"holdout": 1, "seed": 2**63 - 1})
    assert d.test.shape[0] == 1


def test_sizes_beyond_memory_are_refused_before_allocating(tmp_path):
    import tracemalloc

    write_numbered_images(tmp_path / "imgs", 3)
    x = np.zeros((2, 3), dtype=np.uint8)
    with open(tmp_path / "sparse.npy", "wb") as f:  # a header announcing 100 GB, sparse on disk
        np.lib.format.write_array_header_1_0(
            f, {"descr": "|u1", "fortran_order": False, "shape": (10**10, 10)}
        )
        offset = f.tell()
    os.truncate(tmp_path / "sparse.npy", offset + 10**11)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": (10**9, 100)}
    )
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as z:  # a member announcing 800 GB
        z.writestr("x.npy", buf.getvalue() + x.tobytes())
    tracemalloc.start()
    try:
        assert_error("moons", {"n": 10**14}, "moons toy set with n=100,000,000,000,000", "GB")
        assert_error("ring", {"n": 1e14}, "more than this machine's", "smaller n")
        imgs = str(tmp_path / "imgs")
        assert_error(imgs, {"size": 100000}, "100000x100000 pixels", "smaller data_opts size")
        sparse = str(tmp_path / "sparse.npy")
        assert_error(sparse, None, "Reading 10,000,000,000 samples of shape (10,)", "GB")
        assert_error(sparse, {"limit": 5}, "Reading 2,000,000,005 samples", "test part")
        assert_error(str(tmp_path / "huge.npz"), None, "Reading array 'x' of", "GB of memory")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20
