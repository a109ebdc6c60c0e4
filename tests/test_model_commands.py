"""``wae sample/encode/reconstruct/interpolate``, ``wae runs list`` and the Python API
(``fit``, ``load``), checked against the model computed directly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import wae_toolkit as wt
from wae_toolkit.config.settings import RunConfig
from wae_toolkit.data import load_dataset

from .test_cli import error_line, wae


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmd") / "run"
    model = wt.fit(epochs=2, data_opts={"limit": 300}, out=str(out), device="cpu", seed=1)
    assert model.run_dir == out and model.summary["steps"] == 6
    return out


def _test_split():
    return load_dataset("digits", {"limit": 300}).test


def test_sample_writes_png_and_npy_reproducibly(run_dir, tmp_path, capsys):
    a, b, c = (tmp_path / f"{k}.npy" for k in "abc")
    assert wae(capsys, "sample", str(run_dir), "-n", "5", "--out", str(a), "--seed", "3")[0] == 0
    assert wae(capsys, "sample", str(run_dir), "-n", "5", "--out", str(b), "--seed", "3")[0] == 0
    assert wae(capsys, "sample", str(run_dir), "-n", "5", "--out", str(c), "--seed", "4")[0] == 0
    xa, xb, xc = np.load(a), np.load(b), np.load(c)
    assert xa.shape == (5, 1, 8, 8) and 0 <= xa.min() and xa.max() <= 1
    assert np.array_equal(xa, xb) and not np.array_equal(xa, xc)
    model = wt.load(run_dir)
    gen = torch.Generator().manual_seed(3)
    assert np.allclose(xa, model.sample(5, generator=gen).numpy(), atol=1e-6)
    png = tmp_path / "s.png"
    assert wae(capsys, "sample", str(run_dir), "-n", "16", "--out", str(png))[0] == 0
    img = Image.open(png)
    assert img.mode == "RGB" and img.size[0] > 8 * 48


def test_outputs_are_never_replaced_silently(run_dir, tmp_path, capsys):
    target = tmp_path / "mine.npy"
    target.write_bytes(b"precious")
    code, _, err = wae(capsys, "sample", str(run_dir), "--out", str(target))
    assert code == 2 and "exists; choose another --out or pass --overwrite" in error_line(err)
    assert target.read_bytes() == b"precious"
    assert wae(capsys, "sample", str(run_dir), "--out", str(target), "--overwrite")[0] == 0
    assert np.load(target).shape == (64, 1, 8, 8)


def test_encode_and_reconstruct_equal_the_model_on_the_held_out_split(run_dir, tmp_path, capsys):
    model, x = wt.load(run_dir), _test_split()
    codes = tmp_path / "z.npy"
    assert wae(capsys, "encode", str(run_dir), "--out", str(codes))[0] == 0
    assert np.allclose(np.load(codes), model.encode(x, sample=False).detach().numpy(), atol=1e-6)
    rec = tmp_path / "r.npy"
    assert wae(capsys, "reconstruct", str(run_dir), "-n", "7", "--out", str(rec))[0] == 0
    assert np.allclose(np.load(rec), model.reconstruct(x[:7]).numpy(), atol=1e-6)
    png = tmp_path / "r.png"
    assert wae(capsys, "reconstruct", str(run_dir), "-n", "7", "--out", str(png))[0] == 0
    assert Image.open(png).size[1] > Image.open(png).size[0] / 8  # two rows per row of inputs


def test_interpolations_start_and_end_at_the_reconstructions(run_dir, tmp_path, capsys):
    model, x = wt.load(run_dir), _test_split()
    path = tmp_path / "i.npy"
    args = ["interpolate", str(run_dir), "--pairs", "3", "--steps", "5", "--out", str(path)]
    assert wae(capsys, *args)[0] == 0
    inter = np.load(path)
    assert inter.shape == (3, 5, 1, 8, 8)
    assert np.allclose(inter[:, 0], model.reconstruct(x[:3]).numpy(), atol=1e-5)
    assert np.allclose(inter[:, -1], model.reconstruct(x[3:6]).numpy(), atol=1e-5)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["encode", "--data", "ring", "--out", "{tmp}/z.npy"], "this run's model takes (1, 8, 8)"),
        (["encode", "--out", "{tmp}/z.png"], "--out must end in .npy"),
        (["sample", "-n", "0", "--out", "{tmp}/s.png"], "-n must be an integer >= 1"),
        (["interpolate", "--pairs", "500", "--out", "{tmp}/i.npy"], "needs 1000 samples"),
        (
            ["reconstruct", "--split", "val", "--out", "{tmp}/r.npy"],
            "--split must be test or train",
        ),
        (["sample", "--out", "{tmp}/no/such/s.png"], "does not exist"),
    ],
)
def test_bad_requests_get_one_sentence(run_dir, tmp_path, capsys, args, message):
    argv = [args[0], str(run_dir), *[a.replace("{tmp}", str(tmp_path)) for a in args[1:]]]
    code, _, err = wae(capsys, *argv)
    assert code == 2 and message in error_line(err)


def test_a_png_needs_image_or_signal_data(tmp_path, capsys):
    out = tmp_path / "ring"
    wt.fit(data="ring", data_opts={"n": 200}, epochs=1, out=str(out), device="cpu")
    code, _, err = wae(capsys, "sample", str(out), "--out", str(tmp_path / "s.png"))
    assert code == 2 and "A .png draws images or signals; this run's samples are vectors" in (
        error_line(err)
    )
    signals = tmp_path / "sig"
    x = np.sin(np.linspace(0, 6, 64))[None, None] * np.ones((120, 2, 1), dtype=np.float32)
    wt.fit(data=x.astype(np.float32), network="conv1d", epochs=1, out=str(signals), device="cpu")
    plot = tmp_path / "sig.png"
    assert wae(capsys, "sample", str(signals), "-n", "4", "--out", str(plot))[0] == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert wae(capsys, "sample", str(out), "--out", str(tmp_path / "s.npy"))[0] == 0
    assert np.load(tmp_path / "s.npy").shape == (64, 2)


def test_runs_list_shows_finished_and_stopped_runs(run_dir, tmp_path, capsys, monkeypatch):
    from wae_toolkit.cli import model_cmds as cli_model

    monkeypatch.setattr(cli_model.out, "width", 200)  # one line per run
    stopped = run_dir.parent / "stopped"
    stopped.mkdir()
    (stopped / "config.json").write_text(json.dumps({"run": {"data": "x", "penalty": "kl"}}))
    code, stdout, _ = wae(capsys, "runs", "list", str(run_dir.parent))
    assert code == 0
    rows = {line.split("│")[1].strip(): line for line in stdout.splitlines() if "│" in line}
    assert "finished" in rows["run"] and "mmd-imq" in rows["run"] and "6" in rows["run"]
    assert "no checkpoint" in rows["stopped"]
    code, _, err = wae(capsys, "runs", "list", str(tmp_path / "none"))
    assert code == 2 and "is not a folder" in error_line(err)


def test_fit_takes_a_config_a_file_or_keywords(tmp_path):
    (tmp_path / "exp.toml").write_text("epochs = 1\nlambda = 3.0\n[data_opts]\nlimit = 200\n")
    from_file = wt.fit(tmp_path / "exp.toml", out=str(tmp_path / "a"), device="cpu")
    assert from_file.summary["steps"] == 2
    record = json.loads((tmp_path / "a" / "config.json").read_text())
    assert record["run"]["lam"] == 3.0 and record["sources"]["lam"].startswith("file ")
    cfg = RunConfig(epochs=1, data_opts={"limit": 200}, seed=5, device="cpu")
    a = wt.fit(cfg, out=str(tmp_path / "b"))
    b = wt.fit(cfg, out=str(tmp_path / "c"))
    x = _test_split()[:4]
    assert torch.equal(a.reconstruct(x), b.reconstruct(x))  # same config, same model
    loaded = wt.load(tmp_path / "b")
    assert torch.allclose(loaded.reconstruct(x), a.reconstruct(x), atol=1e-6)
    with pytest.raises(wt.WaeError, match="takes a RunConfig, a configuration file's path"):
        wt.fit(42)
