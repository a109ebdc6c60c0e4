"""``wae export`` and ``wae_toolkit.export_model``: the files are loaded back (torch.jit.load,
onnxruntime) and must compute what the model computes, at batch sizes other than the traced one.

Tolerances: TorchScript runs the same kernels as the model, so its outputs must agree to 1e-6;
onnxruntime has its own kernels, so ONNX outputs must agree to 1e-5 (absolute and relative).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

import wae_toolkit as wt
from wae_toolkit.assembly.model import WAE
from wae_toolkit.data import load_dataset
from wae_toolkit.errors import UsageError, WaeError

from .test_cli import error_line, wae

TOL = {"torchscript": 1e-6, "onnx": 1e-5}
RUNS = {
    # name: settings of a short run
    "mlp": {"data_opts": {"limit": 200}},
    "conv-gaussian": {
        "network": "conv",
        "network_opts": {"width": 4, "depth": 2},
        "encoder": "gaussian",
        "data_opts": {"limit": 200},
    },
    "ring-unbounded": {"data": "ring", "data_opts": {"n": 200}},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    made = {}
    for name, settings in RUNS.items():
        out = root / name
        wt.fit(epochs=1, out=str(out), device="cpu", seed=1, **settings)
        made[name] = out
    return made


def _data(run_dir):
    config = json.loads((run_dir / "config.json").read_text())["run"]
    return load_dataset(config["data"], config["data_opts"]).test


def _jit_load(path, map_location=None):
    with warnings.catch_warnings():  # torch 2.13 says TorchScript is deprecated; it still works
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path), map_location=map_location)


def _runner(fmt, path):
    """A function: numpy input -> list of numpy outputs, from the exported file alone, on the CPU
    (a file exported from a CUDA model too)."""
    if fmt == "torchscript":
        module = _jit_load(path, map_location="cpu")

        def run(x):
            with torch.no_grad():
                y = module(torch.from_numpy(x))
            return [t.numpy() for t in (y if isinstance(y, tuple) else (y,))]

        return run
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {session.get_inputs()[0].name: x})


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
@pytest.mark.parametrize("name", list(RUNS))
def test_exports_compute_what_the_model_computes(runs, name, fmt, tmp_path, capsys):
    run_dir, out = runs[name], tmp_path / "exp"
    code, stdout, err = wae(capsys, "export", str(run_dir), "--format", fmt, "--out", str(out))
    assert code == 0, err
    assert err == ""  # no warnings or logs from torch's exporters
    suffix = ".pt" if fmt == "torchscript" else ".onnx"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["encoder" + suffix, "decoder" + suffix, "export.json"]
    )
    assert "encoder" + suffix in stdout and "checked against the model" in stdout

    model = wt.load(run_dir)
    x = _data(run_dir)
    encoder, decoder = (
        _runner(fmt, out / f"encoder{suffix}"),
        _runner(fmt, out / f"decoder{suffix}"),
    )
    tol = TOL[fmt]
    for batch in (1, 3, 17):  # exported with a batch of 2: the batch dimension is dynamic
        xb = x[:batch]
        with torch.no_grad():
            mean, log_var = model.encode_stats(xb)
            z = model.encode(xb, sample=False)
            x_hat = model.decode(z)
        got = encoder(xb.numpy())
        if model.gaussian:
            assert len(got) == 2
            np.testing.assert_allclose(got[0], mean.numpy(), rtol=tol, atol=tol)
            np.testing.assert_allclose(got[1], log_var.numpy(), rtol=tol, atol=tol)
        else:
            assert len(got) == 1
        np.testing.assert_allclose(got[0], z.numpy(), rtol=tol, atol=tol)
        (dec,) = decoder(z.numpy())
        assert dec.shape == (batch, *x.shape[1:])
        np.testing.assert_allclose(dec, x_hat.numpy(), rtol=tol, atol=tol)

    manifest = json.loads((out / "export.json").read_text())
    assert manifest["run"] == str(run_dir.resolve())
    assert manifest["latent_dim"] == model.latent_dim
    record = json.loads((run_dir / "config.json").read_text())
    assert manifest["data"]["sample_shape"] == record["data"]["sample_shape"]
    assert manifest["data"]["value_range"] == record["data"]["value_range"]
    entries = manifest["exports"][fmt]
    outputs = ["mean", "log_var"] if model.gaussian else ["z"]
    assert [o["name"] for o in entries["encoder"]["outputs"]] == outputs
    assert entries["encoder"]["inputs"][0]["shape"] == ["batch", *x.shape[1:]]
    assert entries["decoder"]["outputs"][0]["shape"] == ["batch", *x.shape[1:]]
    assert entries["decoder"]["inputs"] == [
        {"name": "z", "shape": ["batch", model.latent_dim], "dtype": "float32"}
    ]
    assert entries["decoder"]["max_abs_error"] <= 1e-4
    assert ("gaussian" in manifest["encoder"]) == model.gaussian


def test_the_command_line_shows_no_exporter_noise(runs, tmp_path):
    """torch's exporters log and warn on first use in a process: a fresh process shows none."""
    out = tmp_path / "exp"
    cmd = [sys.executable, "-m", "wae_toolkit", "export", str(runs["mlp"]), "-f", "onnx"]
    res = subprocess.run([*cmd, "-o", str(out)], capture_output=True, text=True)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert (out / "encoder.onnx").is_file()


def test_onnx_files_declare_named_inputs_with_a_dynamic_batch(runs, tmp_path, capsys):
    import onnx
    import onnxruntime

    out = tmp_path / "exp"
    run_dir = runs["conv-gaussian"]
    assert wae(capsys, "export", str(run_dir), "-f", "onnx", "--out", str(out))[0] == 0
    enc = onnxruntime.InferenceSession(
        str(out / "encoder.onnx"), providers=["CPUExecutionProvider"]
    )
    assert [(i.name, i.shape) for i in enc.get_inputs()] == [("x", ["batch", 1, 8, 8])]
    assert [o.name for o in enc.get_outputs()] == ["mean", "log_var"]
    assert [o.shape for o in enc.get_outputs()] == [["batch", 8], ["batch", 8]]
    dec = onnx.load(str(out / "decoder.onnx"))
    onnx.checker.check_model(dec)
    assert not (out / "decoder.onnx.data").exists()  # one self-contained file
    props = {p.key: p.value for p in dec.metadata_props}
    assert props["part"] == "decoder" and json.loads(props["sample_shape"]) == [1, 8, 8]


def test_both_formats_share_the_default_folder_and_one_manifest(runs, capsys):
    run_dir = runs["mlp"]
    assert wae(capsys, "export", str(run_dir), "--format", "torchscript")[0] == 0
    assert wae(capsys, "export", str(run_dir), "--format", "onnx", "--part", "decoder")[0] == 0
    out = run_dir / "export"
    names = {p.name for p in out.iterdir()}
    assert names == {"encoder.pt", "decoder.pt", "decoder.onnx", "export.json"}
    manifest = json.loads((out / "export.json").read_text())
    assert set(manifest["exports"]) == {"torchscript", "onnx"}
    assert set(manifest["exports"]["torchscript"]) == {"encoder", "decoder"}
    assert set(manifest["exports"]["onnx"]) == {"decoder"}
    # the run's own files are untouched, and the model still loads
    assert (run_dir / "model.safetensors").is_file()
    wt.load(run_dir)


def test_existing_files_are_replaced_only_with_overwrite(runs, tmp_path, capsys):
    run_dir, out = runs["mlp"], tmp_path / "exp"
    args = ["export", str(run_dir), "--format", "torchscript", "--out", str(out)]
    assert wae(capsys, *args)[0] == 0
    (out / "decoder.pt").write_bytes(b"mine")
    code, _, err = wae(capsys, *args)
    assert code == 2
    assert "already holds encoder.pt and decoder.pt" in error_line(err)
    assert "--overwrite" in error_line(err)
    assert (out / "decoder.pt").read_bytes() == b"mine"
    assert wae(capsys, *args, "--overwrite")[0] == 0
    assert (out / "decoder.pt").read_bytes() != b"mine"
    _jit_load(out / "decoder.pt")


def test_a_manifest_of_other_weights_or_of_the_user_is_not_replaced(runs, tmp_path, capsys):
    out = tmp_path / "exp"
    out.mkdir()
    (out / "export.json").write_text('{"mine": true}')
    args = ["export", str(runs["mlp"]), "--format", "onnx", "--out", str(out)]
    code, _, err = wae(capsys, *args)
    assert code == 2 and "does not describe an export of these weights" in error_line(err)
    assert sorted(p.name for p in out.iterdir()) == ["export.json"]
    assert json.loads((out / "export.json").read_text()) == {"mine": True}
    # an export of another run's weights in the folder: the same
    other = tmp_path / "other"
    assert (
        wae(capsys, "export", str(runs["ring-unbounded"]), "-f", "onnx", "-o", str(other))[0] == 0
    )
    code, _, err = wae(capsys, "export", str(runs["mlp"]), "-f", "torchscript", "-o", str(other))
    assert code == 2 and "does not describe an export of these weights" in error_line(err)
    assert not (other / "encoder.pt").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--format", "tflite"],
            "Unknown export format 'tflite'. Allowed: torchscript, onnx.",
        ),
        (["--format", "onxx"], "Did you mean 'onnx'?"),
        (["--format", "onnx", "--part", "head"], "Unknown export part 'head'."),
    ],
)
def test_bad_requests_get_one_sentence(runs, tmp_path, capsys, args, message):
    out = tmp_path / "exp"
    code, _, err = wae(capsys, "export", str(runs["mlp"]), *args, "--out", str(out))
    assert code == 2 and message in error_line(err)
    assert not out.exists()


def test_a_missing_run_gets_one_sentence(tmp_path, capsys):
    code, _, err = wae(capsys, "export", str(tmp_path / "nope"), "--format", "torchscript")
    assert code == 2 and "is not a run folder" in error_line(err)
    assert not (tmp_path / "nope").exists()


def test_missing_onnx_packages_name_the_extra(runs, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now fails
    out = tmp_path / "exp"
    code, _, err = wae(capsys, "export", str(runs["mlp"]), "--format", "onnx", "--out", str(out))
    line = error_line(err)
    assert code == 2
    assert "needs onnx, onnxruntime and onnxscript: pip install 'wae-toolkit[onnx]'" in line
    assert not out.exists()


def test_a_wrong_export_is_refused_and_nothing_is_left(runs, tmp_path, capsys, monkeypatch):
    from wae_toolkit.export import model_export

    real = model_export._save_torchscript

    def broken(module, example, path):  # an encoder whose codes are off by 0.01
        class Off(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = module

            def forward(self, x):
                return self.inner(x) + 0.01

        real(Off() if path.stem == "encoder" else module, example, path)

    monkeypatch.setattr(model_export, "_save_torchscript", broken)
    out = tmp_path / "exp"
    code, _, err = wae(capsys, "export", str(runs["mlp"]), "-f", "torchscript", "-o", str(out))
    line = error_line(err)
    assert code == 1 and "The exported encoder does not compute what the model does" in line
    assert "nothing was written" in line
    assert not out.exists()
    # into a folder that exists: it is left as it was
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    assert wae(capsys, "export", str(runs["mlp"]), "-f", "torchscript", "-o", str(out))[0] == 1
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_python_entry_point(runs, tmp_path):
    model = wt.load(runs["conv-gaussian"])
    result = wt.export_model(model, "torchscript", tmp_path / "a", part="encoder")
    assert [p.name for p in result.files] == ["encoder.pt", "export.json"]
    assert result.manifest["exports"]["torchscript"]["encoder"]["outputs"][1]["name"] == "log_var"
    x = torch.rand(4, 1, 8, 8)
    mean, log_var = _jit_load(result.files[0])(x)
    want_mean, want_log_var = model.encode_stats(x)
    assert torch.allclose(mean, want_mean, atol=1e-6) and torch.allclose(log_var, want_log_var)

    # a model that never had a run folder: the sample shape is needed, and out_dir
    bare = WAE(model.encoder, model.decoder, model.prior, gaussian=True)
    with pytest.raises(UsageError, match="give sample_shape"):
        wt.export_model(bare, "torchscript", tmp_path / "b")
    with pytest.raises(UsageError, match="give out_dir"):
        wt.export_model(bare, "torchscript", sample_shape=(1, 8, 8))
    with pytest.raises(UsageError, match="takes a WAE or a run folder"):
        wt.export_model(object(), "torchscript", tmp_path / "c")
    result = wt.export_model(bare, "onnx", tmp_path / "b", sample_shape=(1, 8, 8), part="decoder")
    assert result.manifest["run"] is None and result.manifest["data"]["value_range"] is None
    assert issubclass(UsageError, WaeError)


def test_the_examples_in_docs_export_md_run(runs, tmp_path, monkeypatch):
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "docs" / "export.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    for fmt in ("torchscript", "onnx"):
        wt.export_model(runs["mlp"], fmt, "runs/my-run/export")
    for i, code in enumerate(blocks):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            exec(compile(code, f"export.md[block {i + 1}]", "exec"), {})  # noqa: S102
