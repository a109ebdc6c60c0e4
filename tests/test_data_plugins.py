"""Data sources are plugins: the built-ins are entry points like a third party's, a name or a path
resolves through the registry in the documented order, and listing imports nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from wae_toolkit.data import dataset_from_arrays, load_dataset
from wae_toolkit.data.resolve import path_sources
from wae_toolkit.data.sources import PATH_SOURCE_ORDER
from wae_toolkit.errors import DataError, PluginLoadError
from wae_toolkit.plugins import registry
from wae_toolkit.plugins.interfaces import DataSource
from wae_toolkit.plugins.testing import check_data_source

from .conftest import fake_distribution
from .test_cli import wae

BUILTIN_SOURCES = {
    "digits": "name",
    "swiss-roll": "name",
    "moons": "name",
    "ring": "name",
    "idx-folder": "folder",
    "image-folder": "folder",
    "array-file": "file",
    "idx-file": "file",
    "hf": "path",
}

SOURCES = '''
"""Fake third-party data sources."""
from pathlib import Path

import numpy as np

from wae_toolkit.data import dataset_from_arrays
from wae_toolkit.plugins.interfaces import DataSource


class TinySource(DataSource):
    """Ten points on a line, given by name.

    Args:
        n: number of points.
    """

    kind = "name"

    def __init__(self, n: int = 10) -> None:
        self.n = n

    def load(self, spec, path=None, found=None):
        x = np.linspace(0, 1, 2 * self.n).reshape(self.n, 2)
        return dataset_from_arrays(spec, x, options=self.options())


class GreedyNpySource(TinySource):
    """Claims .npy files too; the built-in array-file source comes first."""

    kind = "file"

    def claims(self, path):
        return path.suffix == ".npy"


class RaisingSource(TinySource):
    """Fails while checking .boom files."""

    kind = "file"

    def claims(self, path):
        if path.suffix == ".boom":
            raise RuntimeError("kaboom")
        return False
'''

CSV = '''
"""A fake CSV source in its own module."""
import numpy as np

from wae_toolkit.data import dataset_from_arrays
from wae_toolkit.plugins.interfaces import DataSource


class CsvSource(DataSource):
    """Comma-separated rows.

    Args:
        delimiter: between values.
        seed: seed of the split.
    """

    kind = "file"

    def __init__(self, delimiter: str = ",", seed: int = 123) -> None:
        self.delimiter = delimiter
        self.seed = seed

    def claims(self, path):
        return path.suffix == ".csv"

    def load(self, spec, path=None, found=None):
        x = np.loadtxt(path, delimiter=self.delimiter, ndmin=2)
        return dataset_from_arrays(spec, x, options=self.options(), what="csv rows")
'''


@pytest.fixture
def fake_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A distribution declaring data sources through real metadata (one of them broken)."""
    entry_points = (
        "[wae_toolkit.data]\n"
        "tiny = fakedata.sources:TinySource\n"
        "csv-rows = fakedata.csvsrc:CsvSource\n"
        "npy-too = fakedata.sources:GreedyNpySource\n"
        "raiser = fakedata.sources:RaisingSource\n"
        "broken-source = fakedata.missing:Nothing\n"
    )
    modules = {"sources": SOURCES, "csvsrc": CSV}
    with fake_distribution(
        tmp_path / "site", monkeypatch, "wae-fake-data", "0.2.0", "fakedata", modules, entry_points
    ) as root:
        yield root


def test_builtin_sources_are_entry_points_of_the_data_kind():
    infos = {i.name: i for i in registry.list_plugins("data")}
    assert set(BUILTIN_SOURCES) <= set(infos)
    for name, kind in BUILTIN_SOURCES.items():
        info = infos[name]
        assert info.builtin and info.description, name
        cls = registry.get_plugin_class("data", name)
        assert issubclass(cls, DataSource) and cls.kind == kind
    assert registry.normalize_kind("sources") == "data"
    assert "data" not in registry.KINDS  # the model's kinds; ALL_KINDS has the data sources


def test_listing_and_naming_import_only_what_is_asked_for():
    code = (
        "import sys; from wae_toolkit.plugins.registry import list_plugins; "
        "ps = list_plugins('data'); assert len(ps) >= 9; "
        "bad = [m for m in sys.modules if m.startswith('wae_toolkit.data') or m in "
        "('torch', 'datasets')]; assert not bad, bad; "
        "from wae_toolkit.data import load_dataset; load_dataset('moons', {'n': 20}); "
        "assert 'wae_toolkit.data.huggingface' not in sys.modules; "
        "assert 'datasets' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_cli_lists_and_shows_data_sources(capsys):
    code, out, _ = wae(capsys, "plugins", "list", "--kind", "data")
    assert code == 0 and "digits" in out and "image-folder" in out and "hf" in out
    code, out, _ = wae(capsys, "plugins", "show", "digits", "--kind", "data")
    assert code == 0
    for word in ("test_fraction", "seed", "limit", "scale", "--data-opt", "--data digits"):
        assert word in out
    code, out, _ = wae(capsys, "plugins", "show", "image-folder")
    assert code == 0 and "crop" in out and "--data FOLDER" in out


def _offered(folder: bool) -> list[str]:
    names: list[str] = []
    with pytest.raises(PluginLoadError, match="broken-source"):  # only after every other one
        for name, _ in path_sources(folder):
            names.append(name)
    return names


def test_paths_are_offered_to_the_builtins_in_their_order(fake_sources):
    assert _offered(True) == ["idx-folder", "image-folder", "hf"]
    files = _offered(False)
    assert files == ["array-file", "idx-file", "hf", "csv-rows", "npy-too", "raiser"]
    assert [n for n in PATH_SOURCE_ORDER if n in files] == ["array-file", "idx-file", "hf"]


def test_third_party_sources_read_names_and_paths(fake_sources, tmp_path):
    tiny = load_dataset("tiny", {"n": "6"})
    assert tiny.train.shape[1:] == (2,) and len(tiny.train) + len(tiny.test) == 6
    assert "fakedata.csvsrc" not in sys.modules  # a name imports its source only
    np.savetxt(tmp_path / "rows.csv", np.arange(12.0).reshape(6, 2), delimiter=",")
    rows = load_dataset(str(tmp_path / "rows.csv"), {"seed": 5})
    ref = dataset_from_arrays("x", np.arange(12.0).reshape(6, 2), options={"seed": 5})
    assert torch.equal(rows.train, ref.train) and rows.options["delimiter"] == ","
    np.save(tmp_path / "x.npy", np.zeros((4, 3)))
    assert "arrays from" in load_dataset(str(tmp_path / "x.npy")).description  # built-in first
    with pytest.raises(DataError, match="no option 'delimter'. Did you mean 'delimiter'"):
        load_dataset(str(tmp_path / "rows.csv"), {"delimter": ";"})
    (tmp_path / "x.boom").write_text("?")
    with pytest.raises(DataError, match="'raiser' failed while checking .*kaboom"):
        load_dataset(str(tmp_path / "x.boom"))
    (tmp_path / "x.zzz").write_text("?")
    with pytest.raises(PluginLoadError, match="broken-source"):  # nothing else claimed it
        load_dataset(str(tmp_path / "x.zzz"))


def test_builtins_only_hides_third_party_sources(fake_sources, monkeypatch):
    monkeypatch.setenv(registry.AUTOLOAD_ENV, "1")
    with pytest.raises(DataError, match="Unknown data set 'tiny'"):
        load_dataset("tiny")


def test_dataset_from_arrays_splits_as_the_npy_source(tmp_path):
    x = np.random.default_rng(1).random((20, 6, 6, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    ref = load_dataset(str(tmp_path / "x.npy"), {"limit": 5})
    d = dataset_from_arrays("mine", x, np.arange(20) % 2, options={"limit": 5, "extra": "kept"})
    assert torch.equal(d.train, ref.train) and torch.equal(d.test, ref.test)
    assert d.sample_shape == (3, 6, 6) and d.options["extra"] == "kept"
    given = dataset_from_arrays("mine", x[:15], test=x[15:], options={"limit": 3})
    assert given.train.shape[0] == 3 and torch.equal(
        given.test, torch.from_numpy(x[15:]).permute(0, 3, 1, 2)
    )
    for bad, words in (
        ({"x": np.array([[object()], [object()]])}, "Python objects"),
        ({"x": x, "labels": np.zeros(3)}, "labels"),
        ({"x": x, "options": {"scale": "wide"}}, "unit or symmetric"),
        ({"x": x, "test": np.zeros((3, 5))}, "same shape"),
    ):
        with pytest.raises(DataError, match=words):
            dataset_from_arrays("mine", **bad)


class _Everything(DataSource):
    """Claims every path."""

    def claims(self, path):
        return True

    def load(self, spec, path=None, found=None):
        return dataset_from_arrays(spec, np.zeros((4, 2)))


class _Unseeded(DataSource):
    """Draws new points at every load."""

    kind = "name"

    def load(self, spec, path=None, found=None):
        return dataset_from_arrays(spec, np.random.random((8, 2)))


def test_the_kit_catches_sources_that_break_the_contract(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(AssertionError, match="must be false"):
        check_data_source(_Everything(), tmp_path / "a.txt")
    with pytest.raises(AssertionError, match="another train part"):
        check_data_source(_Unseeded())
    with pytest.raises(AssertionError, match="give check_data_source a small example"):
        check_data_source(_Everything())
