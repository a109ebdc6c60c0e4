"""Training data larger than the memory budget stream from disk: the same samples in the same
order as the resident path (so the same weights, bit for bit on CPU), resumable mid-epoch, kept
as bytes until they are on the device, and refused in one sentence where they cannot be used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import wae_toolkit as wt
from wae_toolkit.api import train
from wae_toolkit.data import load_dataset
from wae_toolkit.data.streamed import StreamedPart, memory_budget
from wae_toolkit.engine.callbacks import Callback
from wae_toolkit.errors import DataError, UsageError

FAST = {"epochs": 2, "latent_dim": 2, "seed": 3, "log_every": 1, "checkpoint_every": 4}


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("stream") / "x.npy"
    x = np.random.default_rng(0).integers(0, 256, (400, 1, 8, 8), dtype=np.uint8)
    np.save(path, x)
    return path


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k, v in a.items():
        assert torch.equal(v, b[k]), k


@pytest.fixture(scope="module")
def resident(images, tmp_path_factory) -> wt.WAE:
    return wt.fit(data=str(images), out=str(tmp_path_factory.mktemp("r") / "run"), **FAST)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_streamed_run_equals_the_resident_run(tmp_path, images, resident, workers):
    streamed = wt.fit(
        data=str(images), out=str(tmp_path / "s"), memory_budget="2kB", workers=workers, **FAST
    )
    _same(streamed.state_dict(), resident.state_dict())
    for key in ("test_cost", "test_mmd", "test_objective"):  # the same held-out metrics
        assert streamed.summary[key] == resident.summary[key], key


def test_bytes_stay_bytes_until_the_device(images):
    with memory_budget(1000):
        data = load_dataset(str(images))
    assert isinstance(data.train, StreamedPart) and data.train.raw
    batch = data.train.read(np.array([5, 0, 3]))
    assert batch.dtype == torch.uint8 and batch.shape == (3, 1, 8, 8)
    whole = load_dataset(str(images)).train  # no budget: read whole, as float32
    torch.testing.assert_close(data.train.finish(batch), whole[[5, 0, 3]], rtol=0, atol=0)
    assert len(data.train) == len(whole) and data.train.shape == tuple(whole.shape)


class _StopAt(Callback):
    def on_step_end(self, step: int, epoch: int) -> None:
        if step == 5:  # mid-epoch: 3 steps per epoch
            self.request_stop("step 5")


def test_a_streamed_run_resumes_mid_epoch_with_the_same_order(tmp_path, images, resident):
    config = wt.RunConfig(data=str(images), out=str(tmp_path / "s"), memory_budget="2kB", **FAST)
    stopped = train(config, callback=_StopAt())
    assert stopped.summary["stopped"] == "step 5"
    resumed = train(config, resume=True)
    _same(resumed.model.state_dict(), resident.state_dict())


def test_float_data_in_python_stream_too_with_their_scale(tmp_path):
    x = np.random.default_rng(2).random((300, 6)).astype(np.float32)
    opts = {"scale": "symmetric"}
    a = wt.fit(data=x, data_opts=opts, out=str(tmp_path / "a"), **FAST)
    b = wt.fit(data=x, data_opts=opts, out=str(tmp_path / "b"), memory_budget=100, **FAST)
    _same(a.state_dict(), b.state_dict())


def test_non_finite_streamed_data_are_refused_before_anything_is_written(tmp_path):
    x = np.ones((300, 6), dtype=np.float32)
    x[17, 2] = np.nan
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(DataError, match=r"^The training part of .* holds 1 NaN or infinite value"):
        wt.fit(data=str(tmp_path / "x.npy"), memory_budget="1kB", out=str(tmp_path / "r"), **FAST)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"memory_budget": "lots"}, r"^memory_budget must be a size such as 8GB"),
        ({"memory_budget": -5}, r"^memory_budget must be a size"),
        ({"workers": -1}, r"^workers must be an integer from 0 to 256"),
    ],
)
def test_bad_streaming_settings_are_one_sentence(settings, words):
    problems = wt.RunConfig(**settings).problems()
    assert len(problems) == 1 and problems[0] and __import__("re").search(words, problems[0])


def test_pretraining_needs_the_data_in_memory(tmp_path, images):
    with pytest.raises(UsageError, match=r"^pretrain_steps needs the training data in memory"):
        wt.fit(
            data=str(images), memory_budget="1kB", pretrain_steps=3, out=str(tmp_path / "r"), **FAST
        )


def test_a_streamed_image_folder_equals_the_resident_one(tmp_path):
    from PIL import Image

    folder = tmp_path / "imgs"
    for cls in ("a", "b"):
        (folder / cls).mkdir(parents=True)
    rng = np.random.default_rng(4)
    for i in range(240):
        pixels = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "ab"[i % 2] / f"{i:04d}.png")
    opts = {"size": 8, "crop": 9}
    with memory_budget(1000):
        data = load_dataset(str(folder), opts)
    assert isinstance(data.train, StreamedPart) and data.train.raw
    assert data.train_labels is not None and len(data.train_labels) == len(data.train)
    a = wt.fit(data=str(folder), data_opts=opts, out=str(tmp_path / "a"), **FAST)
    b = wt.fit(
        data=str(folder), data_opts=opts, memory_budget="1kB", out=str(tmp_path / "b"), **FAST
    )
    _same(a.state_dict(), b.state_dict())


def test_rows_of_a_mapped_file_are_read_without_the_mapping(tmp_path):
    from wae_toolkit.data.layout import read_rows

    x = np.random.default_rng(5).random((50, 3, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    rows = np.array([7, 0, 49, 7, 13])
    assert np.array_equal(read_rows(mapped, rows), x[rows])
    assert np.array_equal(read_rows(mapped[10:], rows[:3] % 40), x[10:][rows[:3] % 40])  # a view
    assert np.array_equal(read_rows(x, rows), x[rows])


def test_byte_images_that_fit_are_held_as_bytes_and_train_as_their_floats(
    tmp_path, images, resident, sessions
):
    """A uint8 training part that fits the budget stays bytes on the device (a quarter of the
    memory), and trains the weights of the same pixels given as float32 values / 255."""
    as_bytes = wt.fit(data=str(images), out=str(tmp_path / "b"), **FAST)
    assert sessions[-1].batches.x.dtype == torch.uint8
    floats = np.load(images).astype(np.float32) / np.float32(255.0)
    as_floats = wt.fit(data=floats, out=str(tmp_path / "f"), **FAST)
    assert sessions[-1].batches.x.dtype == torch.float32
    _same(as_bytes.state_dict(), as_floats.state_dict())
    _same(as_bytes.state_dict(), resident.state_dict())
