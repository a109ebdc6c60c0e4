"""A notebook user's first day: the model's methods take arrays of any float dtype, and errors
name settings as the reader gives them (``out=`` in Python, ``--out`` on the command line)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import wae_toolkit as wt
from wae_toolkit.api import train
from wae_toolkit.assembly.components import build_components
from wae_toolkit.config.settings import RunConfig
from wae_toolkit.errors import RunExistsError, UsageError, cli_wording, setting, setting_name

from .test_cli import error_line, wae

TINY = {"data_opts": {"limit": 200}, "epochs": 1, "device": "cpu"}


@pytest.fixture(scope="module")
def model():
    """An untrained digits model (samples of shape (1, 8, 8), codes of dimension 8)."""
    return build_components(RunConfig(device="cpu"), (1, 8, 8), (0.0, 1.0)).model.eval()


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished one-epoch run (it has a checkpoint to resume from)."""
    out = tmp_path_factory.mktemp("first-day") / "run"
    train(RunConfig(out=str(out), **TINY))
    return out


# ---------------------------------------------------------------------------------------------
# model.encode(np_array) and friends


def test_the_model_takes_numpy_arrays_lists_and_any_float_dtype(model):
    x = np.random.default_rng(0).random((3, 1, 8, 8))  # float64, as NumPy makes them
    expected = model.encode(torch.as_tensor(x, dtype=torch.float32), sample=False)
    for given in (
        x,
        x.astype(np.float32),
        x.tolist(),
        x.reshape(3, 64),  # flat rows of the same values, as before shapes were checked
        torch.as_tensor(x),  # float64
        torch.as_tensor(x, dtype=torch.float16),
        torch.as_tensor(x, dtype=torch.bfloat16),
    ):
        z = model.encode(given, sample=False)
        assert z.dtype == torch.float32 and z.shape == (3, 8)
        tol = 1e-6 if not (isinstance(given, torch.Tensor) and given.itemsize == 2) else 0.05
        torch.testing.assert_close(z, expected, atol=tol, rtol=tol)
    assert model.decode(np.zeros((2, 8))).shape == (2, 1, 8, 8)
    assert model.reconstruct(x).shape == (3, 1, 8, 8)
    assert model.interpolate(x, x[::-1].copy(), steps=4).shape == (3, 4, 1, 8, 8)
    assert model.sample(np.int64(2)).shape == (2, 1, 8, 8)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda m: m.encode(np.zeros((3, 1, 8, 8), dtype=np.uint8)),
            "encode() takes x as floating-point values, as the model was trained on; got a NumPy "
            "array of uint8 (8-bit images were divided by 255 when the data were read: x / 255).",
        ),
        (
            lambda m: m.decode(torch.zeros(2, 8, dtype=torch.int64)),
            "decode() takes z as floating-point values, as the model was trained on; got a "
            "tensor of int64.",
        ),
        (
            lambda m: m.encode(np.zeros((1, 8, 8))),
            "encode() takes x of shape (B, 1, 8, 8), a batch of samples; got shape (1, 8, 8); "
            "for one sample, add the batch dimension (x[None]).",
        ),
        (
            lambda m: m.reconstruct(np.zeros((3, 60))),
            "encode() takes x of shape (B, 1, 8, 8), a batch of samples; got shape (3, 60).",
        ),
        (
            lambda m: m.decode(np.zeros((2, 3))),
            "decode() takes z of shape (B, 8), a batch of codes; got shape (2, 3).",
        ),
        (
            lambda m: m.encode("digits.png"),
            "encode() takes x as a torch tensor or a NumPy array of floats; got a str.",
        ),
        (lambda m: m.sample(2.5), "sample() takes n as an integer >= 1; got 2.5."),
        (
            lambda m: m.interpolate(np.zeros((3, 1, 8, 8)), np.zeros((2, 1, 8, 8))),
            "interpolate() takes x0 and x1 with as many samples each; got 3 and 2.",
        ),
    ],
)
def test_bad_inputs_get_one_sentence(model, call, message):
    with pytest.raises(UsageError) as info:
        call(model)
    assert str(info.value) == message


# ---------------------------------------------------------------------------------------------
# errors name the Python arguments in Python, the flags on the command line


def test_setting_names_a_setting_as_each_reader_gives_it():
    cases = [
        (("out",), "out=", "--out"),
        (("overwrite", True), "overwrite=True", "--overwrite"),
        (("lam",), "lam=", "--lambda"),
        (("encoder", "gaussian"), 'encoder="gaussian"', "--encoder gaussian"),
        (("data_opts", "limit=N"), 'data_opts={"limit": N}', "--data-opt limit=N"),
        (("data_opts", "split=paper"), 'data_opts={"split": "paper"}', "--data-opt split=paper"),
        (("track", "mlflow"), 'track=["mlflow"]', "--track mlflow"),
        (("batch_size", 7), "batch_size=7", "--batch-size 7"),
    ]
    for args, python, cli in cases:
        assert setting(*args) == python
        with cli_wording():
            assert setting(*args) == cli
    assert setting_name("device") == "device"
    with cli_wording():
        assert setting_name("device") == "--device"
    assert setting("out") == "out="  # the wording is restored afterwards


def test_an_existing_run_folder_is_named_by_out_and_overwrite(tmp_path, capsys):
    folder = tmp_path / "taken"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"wae_toolkit_version": "0", "run": {}}))
    with pytest.raises(RunExistsError) as info:
        wt.fit(out=str(folder), **TINY)
    assert str(info.value) == (
        f"The folder '{folder}' already holds a run; choose another out=, or pass "
        "overwrite=True to replace that run's files."
    )
    code, _, err = wae(capsys, "run", "--out", str(folder), "--epochs", "1")
    assert code == 2
    assert "already holds a run; choose another --out, or pass --overwrite to replace" in (
        " ".join(error_line(err).split())
    )


def test_a_resume_with_changed_settings_names_what_may_change(finished, capsys):
    with pytest.raises(UsageError) as info:
        train(RunConfig(out=str(finished), lam=2.0, **TINY), resume=True)
    message = str(info.value)
    assert "lam: 5.0 in the checkpoint, 2.0 now" in message
    assert message.endswith(
        "Training settings cannot change on resume (only threads=, device= and a larger epochs= "
        "may): restore config.json, or start a new run in another out=."
    )
    record = json.loads((finished / "config.json").read_text())
    record["run"]["lam"] = 2.0
    (finished / "config.json").write_text(json.dumps(record))
    code, _, err = wae(capsys, "run", "--resume", str(finished))
    line = " ".join(error_line(err).split())
    assert code == 2 and "lam: 5.0 in the checkpoint, 2.0 now" in line
    assert line.endswith(
        "(only --threads, --device, --nproc and a larger --epochs may): restore config.json, "
        "or start a new run with --config."
    )


@pytest.mark.parametrize(
    ("settings", "flags", "python", "cli"),
    [
        (
            {"logvar_l1": 1.0},
            ["--logvar-l1", "1"],
            'logvar_l1 applies to a Gaussian encoder only; add encoder="gaussian".',
            "logvar_l1 applies to a Gaussian encoder only; add --encoder gaussian.",
        ),
        (
            {"lam": -1.0},
            ["--lambda", "-1"],
            "lam must be a finite number >= 0; got -1.0.",
            "lam (--lambda) must be a finite number >= 0; got -1.0.",
        ),
    ],
)
def test_a_bad_value_names_the_setting_as_each_reader_gives_it(
    tmp_path, capsys, settings, flags, python, cli
):
    with pytest.raises(UsageError) as info:
        wt.fit(out=str(tmp_path / "py"), **TINY, **settings)
    assert python in str(info.value)
    code, _, err = wae(capsys, "run", *flags, "--out", str(tmp_path / "cli"))
    assert code == 2 and cli in " ".join(err.split())
    assert not (tmp_path / "py").exists() and not (tmp_path / "cli").exists()


def test_a_diverged_run_names_python_arguments_in_python():
    from wae_toolkit.engine.faults import BadSteps

    bad = BadSteps(torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))]), 0)
    message = bad.message(5, ["loss"])
    assert "a lower lam or lr" in message and "skip_bad_steps=N" in message
    assert "--" not in message
    with cli_wording():
        message = bad.message(5, ["loss"])
    assert "a lower --lambda or --lr" in message and "--skip-bad-steps N" in message
