"""Hostile sizes and values from the audit: refused with one sentence, before anything is allocated
or written.

Every row is one audit case, run through the CLI in this process. A row holds the audit's exact
spelling and the spellings that reach the same code: ``-n 1e12`` is text that Typer refuses
itself (its usage box, exit 2), while ``-n 1000000000000``, or ``1e14`` in a TOML file (a float
that is a whole number), reach the toolkit. Each must exit 2 with ``Error:`` lines that are one
sentence each (or Typer's box), without a traceback, leave every file as it was, and, as a size
is refused by an estimate in validation, never allocate it: the test finishes, and the memory
traced while the command runs stays small.
"""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wae_toolkit.config.settings import RunConfig

from .test_data import write_idx, write_mnist
from .test_validation import assert_clean_rejection, snapshot, wae

#: More than the refused commands trace (Python and NumPy allocations), far less than any of the
#: refused sizes.
TRACED_LIMIT = 256 * 2**20


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny run (digits, one epoch) for ``wae sample`` and ``wae interpolate``."""
    from wae_toolkit.api import train

    out = tmp_path_factory.mktemp("hostile") / "run"
    train(RunConfig(epochs=1, data_opts={"limit": 200}, out=str(out), device="cpu"))
    assert (out / "model.safetensors").is_file()
    return out


# ---------------------------------------------------------------------------------------------
# inputs written by the rows


def _toml(tmp: Path, text: str) -> str:
    path = tmp / "hostile.toml"
    path.write_text(text)
    return str(path)


def _images(tmp: Path) -> str:
    folder = tmp / "images"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((6, 6), 40 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    return str(folder)


def _idx_header(path: Path, ndim: int, dims: list[int], payload: bytes = b"") -> None:
    """An IDX file of bytes (type 8) whose header announces ``ndim`` dimensions ``dims``."""
    path.write_bytes(
        struct.pack(">BBBB", 0, 0, 8, ndim) + struct.pack(f">{ndim}I", *dims) + payload
    )


def _idx_folder(tmp: Path, name: str, ndim: int, dims: list[int], payload: bytes = b"") -> str:
    """An MNIST folder whose train images file has the given header (the test file is valid)."""
    folder = tmp / name
    folder.mkdir()
    write_idx(folder / "t10k-images-idx3-ubyte", np.zeros((4, 28, 28), dtype=np.uint8))
    _idx_header(folder / "train-images-idx3-ubyte", ndim, dims, payload)
    return str(folder)


def _nan_in_test_part(tmp: Path) -> str:
    """A ``.npy`` of 50 finite vectors but one NaN, in a sample of the seeded test split."""
    from wae_toolkit.data.dataset import _split

    x = np.random.default_rng(0).standard_normal((50, 2)).astype(np.float32)
    _, test_idx = _split(len(x), 0.2, 123)  # the default test_fraction and seed
    x[test_idx[0], 1] = np.nan
    path = tmp / "nan_test.npy"
    np.save(path, x)
    return str(path)


def _nan_in_test_file(tmp: Path) -> tuple[str, str]:
    rng = np.random.default_rng(0)
    train, test = rng.standard_normal((40, 2)), rng.standard_normal((10, 2))
    test[7, 0] = np.nan
    test[8, 1] = np.inf
    np.save(tmp / "train.npy", train)
    np.save(tmp / "test.npy", test)
    return str(tmp / "train.npy"), str(tmp / "test.npy")


# ---------------------------------------------------------------------------------------------
# the table: audit case -> (tmp folder, run folder) -> [(argv, words the Error line must hold)]
# (``None``: Typer refuses the text itself, with its usage box)

Variant = tuple[list[str], list[str] | None]
MEMORY = ["GB of memory", "more than this machine's"]


def _moons_n(tmp: Path, run: Path) -> list[Variant]:
    out = ["--out", str(tmp / "out")]
    moons = ["run", "--data", "moons", *out]
    toml = _toml(tmp, 'data = "moons"\n[data_opts]\nn = 1e14\n')
    return [
        ([*moons, "--data-opt", "n=1e14"], ["'1e14'", "expected an integer"]),
        ([*moons, "--data-opt", f"n={10**14}"], ["moons", "n=100,000,000,000,000", *MEMORY]),
        (["run", "--config", toml, *out], ["moons", "n=100,000,000,000,000", *MEMORY]),
    ]


def _image_size(tmp: Path, run: Path) -> list[Variant]:
    argv = ["run", "--data", _images(tmp), "--data-opt", "size=100000", "--out", str(tmp / "o")]
    return [(argv, ["100000x100000 pixels", *MEMORY, "smaller --data-opt size"])]


def _swd_projections(tmp: Path, run: Path) -> list[Variant]:
    out = ["--out", str(tmp / "out")]
    swd = ["run", "--data", "moons", "--penalty", "swd", *out]
    toml = _toml(tmp, 'data = "moons"\npenalty = "swd"\n[penalty_opts]\nprojections = 2e9\n')
    words = ["projections=2,000,000,000", *MEMORY, "fewer projections"]
    return [
        ([*swd, "--penalty-opt", "projections=2e9"], ["'2e9'", "expected an integer"]),
        ([*swd, "--penalty-opt", "projections=2000000000"], words),
        (["run", "--config", toml, *out], words),
    ]


def _sample_n(tmp: Path, run: Path) -> list[Variant]:
    sample = ["sample", str(run), "--out", str(tmp / "s.npy")]
    words = ["-n 1,000,000,000,000", *MEMORY, "fewer samples"]
    return [
        ([*sample, "-n", "1e12"], None),
        ([*sample, "-n", str(10**12)], words),
        (["sample", str(run), "--out", str(tmp / "s.png"), "-n", str(10**12)], words),
    ]


def _interpolate_steps(tmp: Path, run: Path) -> list[Variant]:
    inter = ["interpolate", str(run), "--out", str(tmp / "i.npy")]
    return [
        ([*inter, "--steps", "1e12"], None),
        ([*inter, "--steps", str(10**12)], ["--steps 1,000,000,000,000", *MEMORY, "fewer"]),
    ]


def _seed(tmp: Path, run: Path) -> list[Variant]:
    out = ["--out", str(tmp / "out")]
    big = str(10**20)
    toml = _toml(tmp, 'data = "moons"\n[data_opts]\nseed = 1e20\n')
    data_words = ["seed", "2^63 - 1"]
    return [
        (["sample", str(run), "--out", str(tmp / "s.npy"), "--seed", "1e20"], None),
        (["sample", str(run), "--out", str(tmp / "s.npy"), "--seed", big], ["--seed", "2^63"]),
        (["run", "--data", "moons", "--data-opt", "seed=1e20", *out], ["expected an integer"]),
        (["run", "--data", "moons", "--data-opt", f"seed={big}", *out], data_words),
        (["run", "--config", toml, *out], data_words),
        (["run", "--data", "moons", "--seed", big, *out], ["seed", "9223372036854775807"]),
        (["run", "--prior", "gmm", "--prior-opt", f"seed={big}", *out], ["seed", "2^63 - 1"]),
    ]


def _idx_dims(tmp: Path, run: Path) -> list[Variant]:
    def run_on(folder: str) -> list[str]:
        return ["run", "--data", folder, "--out", str(tmp / "out")]

    many = _idx_folder(tmp, "dims255", 255, [1] * 255, b"\x00")
    huge = _idx_folder(tmp, "overflow", 3, [2**31] * 3)  # 2^93 bytes: int64 wraps to 0
    empty = _idx_folder(tmp, "zero", 3, [0, 28, 28])
    return [
        (run_on(many), ["announces 255 dimensions", "1 to 4"]),
        (run_on(huge), ["truncated or corrupt", "(2147483648, 2147483648, 2147483648)"]),
        (run_on(empty), ["(0, 28, 28)"]),
    ]


def _paper_seed(tmp: Path, run: Path) -> list[Variant]:
    write_mnist(tmp / "mnist")
    opts = ["split=paper", "holdout=3", "seed=4294967296"]
    argv = ["run", "--data", str(tmp / "mnist"), "--out", str(tmp / "out")]
    for opt in opts:
        argv += ["--data-opt", opt]
    return [(argv, ["seed=4294967296", "split=paper", "np.random.seed", "4,294,967,295"])]


def _nan_test_part(tmp: Path, run: Path) -> list[Variant]:
    from wae_toolkit.data.dataset import _split

    first = int(_split(50, 0.2, 123)[1][0])
    argv = ["run", "--data", _nan_in_test_part(tmp), "--out", str(tmp / "out")]
    return [(argv, ["The test part of", "nan_test.npy", "1 NaN", f"sample {first} "])]


def _nan_test_file(tmp: Path, run: Path) -> list[Variant]:
    train, test = _nan_in_test_file(tmp)
    argv = ["run", "--data", train, "--data-opt", f"test={test}", "--out", str(tmp / "out")]
    return [(argv, ["The test file", "test.npy", "2 NaN or infinite values", "sample 7 "])]


CASES: dict[str, Callable[[Path, Path], list[Variant]]] = {
    "data-opt n=1e14": _moons_n,
    "data-opt size=100000": _image_size,
    "penalty-opt projections=2e9": _swd_projections,
    "sample -n 1e12": _sample_n,
    "interpolate --steps 1e12": _interpolate_steps,
    "seed 1e20": _seed,
    "IDX header of 255 dims": _idx_dims,
    "seed=4294967296 with split=paper": _paper_seed,
    "NaN in the test part of a .npy": _nan_test_part,
    "NaN in --data-opt test=FILE": _nan_test_file,
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_input_is_refused_in_one_sentence(case: str, tmp_path: Path, run_dir: Path) -> None:
    variants = CASES[case](tmp_path, run_dir)
    before, run_before = snapshot(tmp_path), snapshot(run_dir)
    for argv, words in variants:
        tracemalloc.start()
        try:
            code, output = wae(*argv)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        lines = assert_clean_rejection(code, output)  # exit 2, no traceback, sentences
        if words is None:  # Typer refused the text of the flag
            assert not lines and "Invalid value" in output, output
        else:
            assert len(lines) == 1, output
            for word in words:
                assert word in lines[0], (word, lines[0])
        assert peak < TRACED_LIMIT, (argv, peak)
        assert snapshot(tmp_path) == before, argv  # nothing written, nothing changed
        assert snapshot(run_dir) == run_before, argv


def test_sinkhorn_scaling_next_to_one_is_refused() -> None:
    """Found with the audit: geomloss lists every temperature of the eps-scaling schedule first,
    ``log(diameter / blur) / log(1 / scaling)`` of them (134 GiB for scaling 1 - 1e-10)."""
    from wae_toolkit.errors import UsageError

    config = RunConfig.from_dict(
        {"data": "moons", "latent_dim": 8, "penalty": "sinkhorn"}
        | {"penalty_opts": {"scaling": 0.9999999999}}
    )
    with pytest.raises(UsageError, match="scaling further from 1") as info:
        config.validate()
    assert "eps-scaling steps" in str(info.value) and len(str(info.value).splitlines()) == 1
    RunConfig.from_dict({"data": "moons", "latent_dim": 8, "penalty": "sinkhorn"}).validate()
