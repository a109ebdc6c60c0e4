"""Data given in Python: every kind trains the same model as the same samples saved as a .npy file
(same seed, same split), the run records what the data were, and bad inputs are one sentence
before anything is written."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

import wae_toolkit as wt
from wae_toolkit.errors import DataError, UsageError

FAST = {"epochs": 1, "latent_dim": 2, "seed": 3, "log_every": 1}


@pytest.fixture(scope="module")
def samples() -> np.ndarray:
    return np.random.default_rng(0).random((240, 1, 8, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def from_file(tmp_path_factory, samples) -> dict[str, torch.Tensor]:
    path = tmp_path_factory.mktemp("npy") / "x.npy"
    np.save(path, samples)
    model = wt.fit(data=str(path), out=str(path.parent / "run"), **FAST)
    return model.state_dict()


class _Items(Dataset):
    """A map-style data set of ``(sample, label)`` pairs, as torchvision's data sets are."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(self.x[i]), i % 10


class _Stream(IterableDataset):
    def __init__(self, x: np.ndarray) -> None:
        self.x = x

    def __iter__(self):
        return (torch.from_numpy(row) for row in self.x)


def _kinds(x: np.ndarray) -> dict[str, object]:
    t = torch.from_numpy(x)
    return {
        "array": x,
        "tensor": t,
        "float64 tensor": t.double(),
        "pair": (x, np.arange(len(x)) % 10),
        "TensorDataset": TensorDataset(t),
        "map-style Dataset": _Items(x),
        "IterableDataset": _Stream(x),
        "shuffling DataLoader": DataLoader(TensorDataset(t, torch.arange(len(x))), 100, True),
    }


@pytest.mark.parametrize(
    "kind",
    [
        "array",
        "tensor",
        "float64 tensor",
        "pair",
        "TensorDataset",
        "map-style Dataset",
        "IterableDataset",
        "shuffling DataLoader",
    ],
)
def test_each_kind_trains_the_model_the_npy_file_trains(tmp_path, samples, from_file, kind):
    model = wt.fit(data=_kinds(samples)[kind], out=str(tmp_path / "r"), **FAST)
    mine = model.state_dict()
    assert mine.keys() == from_file.keys()
    for k, v in from_file.items():
        assert torch.equal(mine[k], v), k
    record = json.loads((tmp_path / "r" / "config.json").read_text())
    assert record["data"]["sample_shape"] == [1, 8, 8]
    assert record["data"]["train_size"] + record["data"]["test_size"] == 240
    assert isinstance(record["run"]["data"], dict) and record["run"]["data"]["kind"]


def test_the_run_records_the_array_and_loads_without_it(tmp_path, samples):
    model = wt.fit(data=samples, out=str(tmp_path / "r"), **FAST)
    described = json.loads((tmp_path / "r" / "config.json").read_text())["run"]["data"]
    assert described["kind"] == "array" and described["shape"] == [240, 1, 8, 8]
    assert described["dtype"] == "float32"
    assert described["sha256"] == hashlib.sha256(samples.tobytes()).hexdigest()
    again = wt.load(tmp_path / "r")  # no data needed
    for k, v in model.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k
    with pytest.raises(UsageError, match=r"trained on data given in Python .* cannot be repeated"):
        wt.fit(str(tmp_path / "r" / "config.json"), out=str(tmp_path / "again"))
    assert not (tmp_path / "again").exists()


def test_a_given_test_part_is_the_held_out_data(tmp_path, samples):
    model = wt.fit(
        data=samples[:200], test=torch.from_numpy(samples[200:]), out=str(tmp_path / "r"), **FAST
    )
    record = json.loads((tmp_path / "r" / "config.json").read_text())
    assert (record["data"]["train_size"], record["data"]["test_size"]) == (200, 40)
    assert record["run"]["test"]["kind"] == "tensor" and record["run"]["test"]["shape"][0] == 40
    assert model.summary["test_cost"] > 0
    with pytest.raises(UsageError, match=r"test= takes the held-out part of data given in Python"):
        wt.fit(data="digits", test=samples, out=str(tmp_path / "s"), **FAST)


class _Ragged(Dataset):
    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.zeros(3 if i < 5 else 4)


class _Records(Dataset):
    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": torch.zeros(3)}


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda x: np.array([object()] * 10), r"^The data holds Python objects"),
        (lambda x: _Ragged(), r"^The data yields samples of different shapes: item 0 is \(3,\)"),
        (
            lambda x: DataLoader(TensorDataset(torch.from_numpy(x)), batch_size=64),
            r"^The data is a DataLoader with batch_size 64 but the run's batch_size is 100",
        ),
        (
            lambda x: np.full((10, 4), np.nan),
            r"^The training part of the data holds 32 NaN or infinite values",
        ),
        (lambda x: x[:0], r"^The data has shape \(0, 1, 8, 8\); allowed are"),
        (lambda x: TensorDataset(torch.zeros(0, 3)), r"^The data is empty"),
        (lambda x: (x, np.arange(5)), r"^The labels given with the data cannot be used as labels"),
        (lambda x: _Records(), r"^Item 0 of the data is a mapping"),
    ],
)
def test_bad_data_is_one_sentence_and_nothing_is_written(tmp_path, samples, make, words):
    with pytest.raises(DataError, match=words) as info:
        wt.fit(data=make(samples), out=str(tmp_path / "r"), **FAST)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("bad", [[1, 2, 3], {"x": 1}, 3.5, b"digits"])
def test_data_of_another_type_is_refused_by_the_settings(bad):
    problems = wt.RunConfig(data=bad).problems()
    assert len(problems) == 1 and problems[0].startswith("data must be a name or path, a NumPy")


def test_a_run_on_python_data_resumes_with_the_same_data_only(tmp_path, samples):
    from wae_toolkit.api import train

    short = wt.RunConfig(data=samples, out=str(tmp_path / "r"), **{**FAST, "epochs": 1})
    train(short)
    longer = train(
        wt.RunConfig(data=samples, out=str(tmp_path / "r"), **{**FAST, "epochs": 2}), resume=True
    )
    assert longer.summary["epochs"] == 2
    with pytest.raises(UsageError, match=r"Cannot resume"):
        train(
            wt.RunConfig(data=samples * 0.5, out=str(tmp_path / "r"), **{**FAST, "epochs": 3}),
            resume=True,
        )


@pytest.mark.parametrize(
    ("shape", "options"),
    [
        ((60, 12, 10, 3), {"size": 6}),  # channels-last images, resized
        ((60, 1, 12, 12), {"crop": 8, "test_fraction": 0.25}),
        ((60, 2, 64), {}),  # signals by the layout rule
        ((60, 2, 64), {"layout": "image"}),
        ((60, 5), {"limit": 20, "seed": 9}),
    ],
)
def test_options_shape_python_data_as_they_shape_the_file(tmp_path, shape, options):
    from wae_toolkit.data import load_dataset
    from wae_toolkit.data.objects import load_objects

    x = np.random.default_rng(1).integers(0, 256, size=shape, dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    mine = load_objects(x, None, options, batch_size=100)
    file = load_dataset(str(tmp_path / "x.npy"), options)
    assert mine.sample_shape == file.sample_shape
    assert torch.equal(mine.train, file.train) and torch.equal(mine.test, file.test)
